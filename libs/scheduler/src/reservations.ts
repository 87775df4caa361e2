import type { AllocationRecord, Resources } from '@berth/core';
import { MILLI, requestMiB, requestMillicores } from './quantity.js';

/*
 * A node's reservation record (`/berth/allocations/<node>`) holds, per bound
 * pod, what the leader reserved for it in integer units. Its sum is what the
 * scheduler and the API call the node's `allocated`.
 */

/** One pod's entry in a reservation record: its request rounded up to whole millicores and MiB. */
export function reservationFor(request: Resources): AllocationRecord['pods'][string] {
  return { cpuMillis: requestMillicores(request.cpu), memoryMiB: requestMiB(request.memoryMiB) };
}

/** The sum of a reservation record, in cores and MiB (a missing record reserves nothing). */
export function reservedTotal(record: Pick<AllocationRecord, 'pods'> | undefined): Resources {
  let cpuMillis = 0;
  let memoryMiB = 0;
  for (const r of Object.values(record?.pods ?? {})) {
    cpuMillis += r.cpuMillis;
    memoryMiB += r.memoryMiB;
  }
  return { cpu: cpuMillis / MILLI, memoryMiB };
}

/**
 * Exact resource arithmetic. Cores arrive as decimals (0.1, 0.25) whose binary
 * floats do not add up (0.1 + 0.2 > 0.3), so the scheduler works in integer
 * millicores and integer MiB, like Kubernetes' `resource.Quantity`.
 *
 * A value is first snapped to a millionth of its unit, which removes the float
 * noise of sums such as 0.1 + 0.2, and then rounded to a whole unit in the
 * safe direction: requests and allocations up, capacities down. A request
 * finer than a millicore therefore costs a whole millicore, and a node is
 * never credited with capacity it does not have.
 */

/** Millicores per core. */
export const MILLI = 1000;

/** Rounds `value * scale` to an integer, `up` for demands and `down` for supplies, ignoring float noise below 1e-6 unit. */
export function quantise(value: number, scale: number, direction: 'up' | 'down'): number {
  const micro = Math.round(value * scale * 1e6);
  return direction === 'up' ? Math.ceil(micro / 1e6) : Math.floor(micro / 1e6);
}

/** Cores -> integer millicores for a request or allocation (rounded up, so it is never under-counted). */
export function requestMillicores(cores: number): number {
  return quantise(cores, MILLI, 'up');
}

/** Cores -> integer millicores for a capacity (rounded down, so it is never over-credited). */
export function capacityMillicores(cores: number): number {
  return quantise(cores, MILLI, 'down');
}

/** MiB -> integer MiB for a request or allocation (rounded up). */
export function requestMiB(mib: number): number {
  return quantise(mib, 1, 'up');
}

/** MiB -> integer MiB for a capacity (rounded down). */
export function capacityMiB(mib: number): number {
  return quantise(mib, 1, 'down');
}

/** Why a request cannot be scheduled anywhere, whatever the cluster, or undefined when it is well formed. */
export function invalidRequest(cpu: number, memoryMiB: number): string | undefined {
  if (typeof cpu !== 'number' || !Number.isFinite(cpu) || cpu < 0) return `invalid request: cpu must be a finite number >= 0, got ${String(cpu)}`;
  if (typeof memoryMiB !== 'number' || !Number.isFinite(memoryMiB) || memoryMiB < 0) {
    return `invalid request: memoryMiB must be a finite number >= 0, got ${String(memoryMiB)}`;
  }
  return undefined;
}

/**
 * Free integer capacity of one resource on a node: capacity (down) minus
 * allocation (up). A broken figure (NaN, Infinity) counts as no room at all:
 * a comparison with NaN is false, which would otherwise read as "fits".
 */
export function freeUnits(capacity: number, allocated: number, scale: number): number {
  const free = quantise(capacity, scale, 'down') - quantise(allocated, scale, 'up');
  return Number.isFinite(free) ? free : -1;
}

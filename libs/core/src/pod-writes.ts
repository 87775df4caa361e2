import { BerthError } from './errors.js';
import { canTransition } from './pod-state.js';
import type { PodRecord, PodStatus } from './types.js';

/**
 * Who writes a pod record. Each owns different fields:
 * - `user` (the API on any replica): `desired`, `restartRequestedAt`,
 *   `deletionRequested`; creates pods and deletes unbound ones.
 * - `leader` (fenced): the binding, i.e. `status.nodeId` with the phase
 *   edges into and out of `Pending`, and the reason it gives for either;
 *   `status.eviction` on a bound pod (the first half of an eviction; the
 *   unbinding clears it); deletes marked pods whose node is gone. For
 *   services (the service controller): creates pods, marks a service's pod
 *   for deletion (`deletionRequested`), and deletes unbound ones.
 * - `agent` (the bound node's): every other part of `status`, along the
 *   transition table, never to or from `Pending`; deletes marked pods.
 * Nobody changes `id`, `name`, `service`, `spec` or `createdAt`.
 */
export type PodWriter = 'user' | 'leader' | 'agent';

/** Top-level fields a user may change. */
const USER_FIELDS: ReadonlySet<string> = new Set(['desired', 'restartRequestedAt', 'deletionRequested']);
/** Status fields the leader writes with a binding, an unbinding or a scheduling reason. */
const LEADER_STATUS: ReadonlySet<string> = new Set(['phase', 'nodeId', 'reason', 'message', 'startedAt', 'restarts', 'eviction', 'ready']);
/** Status fields the agent may not write: the binding and the eviction are the leader's. */
const AGENT_FORBIDDEN_STATUS: ReadonlySet<string> = new Set(['nodeId', 'eviction']);

/** Keys whose values differ between two JSON objects (a key missing on one side counts). */
function changedKeys(a: object, b: object): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) {
    const x = (a as Record<string, unknown>)[k];
    const y = (b as Record<string, unknown>)[k];
    // Writers spread the record they change, so untouched fields (the spec) are the same object: no stringify.
    if (x !== y && JSON.stringify(x) !== JSON.stringify(y)) out.push(k);
  }
  return out;
}

function refuse(writer: PodWriter, pod: PodRecord, what: string): never {
  // A writer overstepping is a bug in Berth, not a user error: it must never reach etcd.
  throw new BerthError('INTERNAL', `${writer} may not ${what} (pod ${pod.name})`, { writer, pod: pod.id });
}

/**
 * Checks that `writer` may replace `prev` with `next`: only its own fields
 * change, and a phase change follows the transition table and belongs to it.
 * Throws INVALID_TRANSITION for a phase change the table forbids and
 * INTERNAL for a field the writer does not own. Pure: the store calls it
 * before every pod write, so no writer can skip it.
 */
export function checkPodWrite(writer: PodWriter, prev: PodRecord, next: PodRecord): void {
  const top = changedKeys(prev, next).filter((k) => k !== 'status');
  for (const k of top) {
    if (writer === 'user' && USER_FIELDS.has(k)) continue;
    // The service controller scales down and replaces pods the way a user deletes one: by marking it for its agent.
    if (writer === 'leader' && k === 'deletionRequested' && prev.service !== undefined && prev.deletionRequested === undefined) continue;
    refuse(writer, prev, `change ${k}`);
  }
  if (prev.deletionRequested !== undefined && next.deletionRequested === undefined) refuse(writer, prev, 'take back a deletion');
  const status = changedKeys(prev.status, next.status) as Array<keyof PodStatus>;
  if (status.length === 0) return;
  if (writer === 'user') refuse(writer, prev, `change status.${status[0]}`);
  const from = prev.status.phase;
  const to = next.status.phase;
  if (from !== to && !canTransition(from, to)) {
    throw new BerthError('INVALID_TRANSITION', `pod ${prev.name} cannot go from ${from} to ${to}`);
  }
  if (writer === 'leader') {
    for (const k of status) if (!LEADER_STATUS.has(k)) refuse(writer, prev, `change status.${k}`);
    const bind = from === 'Pending' && to === 'Scheduled' && prev.status.nodeId === null && next.status.nodeId !== null;
    const unbind = to === 'Pending' && prev.status.nodeId !== null && next.status.nodeId === null;
    const annotate = from === to && from === 'Pending' && next.status.nodeId === null && status.every((k) => k === 'reason' || k === 'message');
    // Marking a bound pod for eviction changes nothing else: its node, phase and reservation stay until its agent stopped it.
    const evict = from === to && prev.status.nodeId !== null && prev.status.eviction === undefined && next.status.eviction !== undefined && status.every((k) => k === 'eviction');
    if (!bind && !unbind && !annotate && !evict) refuse(writer, prev, `write status ${from} -> ${to} (the leader only binds, unbinds, evicts and explains Pending pods)`);
    if (unbind && next.status.eviction !== undefined) refuse(writer, prev, 'keep an eviction on an unbound pod');
    // Readiness is the agent's verdict: the leader only drops it with the binding.
    if (status.includes('ready') && !(unbind && next.status.ready === undefined)) refuse(writer, prev, 'change status.ready (only an unbinding drops it)');
    // Unbinding a marked pod would leave it Pending and marked, where no agent ever deletes it.
    if (unbind && prev.deletionRequested !== undefined) refuse(writer, prev, 'unbind a pod marked for deletion (delete it instead)');
    return;
  }
  // agent
  for (const k of status) if (AGENT_FORBIDDEN_STATUS.has(k)) refuse(writer, prev, `change status.${k}`);
  if (prev.status.nodeId === null) refuse(writer, prev, 'write an unbound pod');
  if (from === 'Pending' || to === 'Pending') refuse(writer, prev, `write status ${from} -> ${to} (Pending is the leader's)`);
}

/**
 * Checks that `writer` may delete `pod`: a user only while no agent holds
 * it (unbound, or `nodeGone`), the agent and the leader only once deletion
 * was requested (the leader for nodes that are gone, where no agent will).
 */
export function checkPodDelete(writer: PodWriter, pod: PodRecord, nodeGone = false): void {
  if (writer === 'user') {
    if (pod.status.nodeId !== null && !nodeGone) refuse(writer, pod, `delete a pod bound to node ${pod.status.nodeId} (mark it; its agent removes it)`);
    return;
  }
  // An unbound pod of a service runs nowhere: the service controller removes it outright when it scales down.
  if (writer === 'leader' && pod.service !== undefined && pod.status.nodeId === null) return;
  if (pod.deletionRequested === undefined) refuse(writer, pod, 'delete a pod nobody asked to delete');
}

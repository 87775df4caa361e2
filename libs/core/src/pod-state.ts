import type { PodPhase } from './types.js';
import { BerthError } from './errors.js';

/**
 * The pod state machine as one explicit table; the pod repository checks
 * every write against it (with who may take which edge: `pod-writes.ts`).
 * `Pending` is reachable from every bound phase because the leader unbinds
 * pods of dead or drained nodes, preemption victims, and finished pods a
 * user restarts. `Succeeded` and `Failed` lead nowhere else: a finished pod
 * holds no reservation, so it runs again only through the scheduler.
 */
export const POD_TRANSITIONS: Readonly<Record<PodPhase, readonly PodPhase[]>> = {
  Pending: ['Scheduled'],
  Scheduled: ['Starting', 'Stopped', 'Failed', 'Pending'],
  Starting: ['Running', 'Succeeded', 'Failed', 'Stopping', 'Stopped', 'Pending'],
  Running: ['Paused', 'Stopping', 'Starting', 'Succeeded', 'Failed', 'Pending'],
  Paused: ['Stopping', 'Running', 'Starting', 'Pending'],
  Stopping: ['Stopped', 'Failed', 'Pending'],
  Stopped: ['Starting', 'Pending'],
  Succeeded: ['Pending'],
  Failed: ['Pending'],
};

/** Phases whose pods no longer hold their node's resources. */
export const TERMINAL_PHASES: ReadonlySet<PodPhase> = new Set<PodPhase>(['Succeeded', 'Failed']);

/** True when `from -> to` is allowed (staying put is always allowed). */
export function canTransition(from: PodPhase, to: PodPhase): boolean {
  return from === to || POD_TRANSITIONS[from].includes(to);
}

/** Throws INVALID_TRANSITION (409) unless `from -> to` is in the table. */
export function assertTransition(from: PodPhase, to: PodPhase, podName: string): void {
  if (!canTransition(from, to)) {
    throw new BerthError('INVALID_TRANSITION', `pod ${podName} cannot go from ${from} to ${to}`);
  }
}

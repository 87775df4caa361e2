import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Fence, LeaderElector } from '@berth/store';
import type { ClusterState } from './cluster-state.js';

/** A leader-only loop (node lifecycle, scheduler): acts for a term from `start` until `stop`. */
export interface LeaderLoop {
  start(fence: Fence): void;
  stop(): void;
}

/** Where this replica's leader loops are: not leading, leading but waiting for its caches, or running. */
export type LeaderPhase = 'following' | 'catching-up' | 'running';

/** Events of the start sequence, for metrics and tests. */
export interface LeaderLoopsEvents {
  /** The loops started for a term, `waitedMs` after the election, once every cache had applied `revision`. */
  started: [{ term: number; revision: number; waitedMs: number }];
}

/** How often a leader still waiting for its caches says so, naming the caches behind. */
const STILL_WAITING_MS = 5000;
/** A leader whose caches have not caught up by then gives the office up: another replica may do better. */
const GIVE_UP_MS = 30_000;

/**
 * Starts and stops the leader loops with the elector. A new leader's caches
 * are synced, but they follow separate watches that may lag each other by
 * any amount (a re-watch replays one prefix while another is current): the
 * reservations cache can show a binding the pods cache does not yet, and
 * a release decided on that pair frees a live pod's reservation. So the
 * loops start only once every cache reflects etcd at the revision of the
 * term's first fenced write (the leader record), which every write of an
 * earlier leader precedes: from then on each cache has seen everything the
 * last leader did. Deposed while waiting, the wait is abandoned.
 */
export class LeaderLoops extends EventEmitter<LeaderLoopsEvents> {
  private waiting: AbortController | undefined;
  private current: LeaderPhase = 'following';
  /** How long the last term that started its loops waited for its caches (ms). */
  lastWaitMs = 0;

  constructor(
    private readonly elector: LeaderElector,
    private readonly state: ClusterState,
    private readonly loops: readonly LeaderLoop[],
    private readonly log: Logger,
  ) {
    super();
    elector.on('elected', (fence, revision) => void this.begin(fence, revision));
    elector.on('deposed', (reason) => this.end(reason));
  }

  get phase(): LeaderPhase {
    return this.current;
  }

  private async begin(fence: Fence, revision: number): Promise<void> {
    this.waiting?.abort();
    const waiting = (this.waiting = new AbortController());
    this.current = 'catching-up';
    const electedAt = Date.now();
    this.log.info({ term: fence.term, revision }, 'leadership acquired: waiting for every cache to reach the term\'s first write');
    const slow = setInterval(() => {
      const behind = this.state.behind(revision);
      const waitedMs = Date.now() - electedAt;
      this.log.warn({ term: fence.term, revision, behind, waitedMs }, 'leader loops still waiting for caches to catch up');
      // Holding the office without acting would block failover for as long: resign, and let another replica try.
      if (waitedMs >= GIVE_UP_MS && this.elector.fence === fence) void this.elector.resign(`caches did not catch up within ${GIVE_UP_MS / 1000} s (${behind.join(', ')})`);
    }, STILL_WAITING_MS);
    let caughtUp: boolean;
    try {
      caughtUp = await this.state.caughtUp(revision, waiting.signal);
    } finally {
      clearInterval(slow);
    }
    if (!caughtUp || waiting.signal.aborted || this.elector.fence !== fence) return;
    this.waiting = undefined;
    const waitedMs = (this.lastWaitMs = Date.now() - electedAt);
    this.current = 'running';
    this.log.info({ term: fence.term, revision, waitedMs }, 'caches caught up: starting leader loops');
    for (const loop of this.loops) loop.start(fence);
    this.emit('started', { term: fence.term, revision, waitedMs });
  }

  private end(reason: string): void {
    this.waiting?.abort();
    this.waiting = undefined;
    for (const loop of this.loops) loop.stop();
    this.current = 'following';
    this.log.warn({ reason }, 'leadership lost: leader loops stopped');
  }
}

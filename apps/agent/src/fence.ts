import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Runtime } from './runtime.js';

/** One node as the fence sees it (a `NodeAgent`). */
export interface FenceSubject {
  readonly opts: { readonly name: string; readonly runtime: Runtime };
  /** The node id while it is registered and has held a heartbeat; undefined before (nothing runs yet) and once stopped. */
  readonly fenceableId: string | undefined;
  /** Ms since the send time of the last keepalive etcd acknowledged for the node's heartbeat lease. */
  silentMs(now: number): number;
  /** True while the heartbeat key is on a lease this agent keeps alive. */
  holdsHeartbeat(): boolean;
  /** True while the node record says Dead: the leader may run its pods elsewhere at any moment. */
  readonly declaredDead: boolean;
}

/** What the fence asks of the pod reconciler. */
export interface FenceTarget {
  /** Stop starting or writing anything for the node. */
  fence(nodeId: string): void;
  /** Re-read the node's bindings, record why, run what is still bound to it; false when it must stay fenced. */
  unfence(nodeId: string, stopped: Set<string>, why: string, stillClear: () => boolean): Promise<boolean>;
}

export interface FencerOptions {
  /** `--fence-after`: no keepalive acknowledged this long and every pod of the node is killed. */
  fenceAfterMs: number;
  /** Bound on killing them (SIGKILL, then wait this long for the exits). */
  forceStopMs: number;
  log: Logger;
  /** How often nodes are checked; short, so a fence is taken on time even when the event loop lags. */
  checkEveryMs?: number;
}

interface Fenced {
  /** `performance.now()` of the last acknowledged keepalive's send before the fence. */
  lastAckedAt: number;
  /** Pods the fence killed, until lifting the fence has handled them. */
  stopped: Set<string>;
  /** A sweep or the lifting under way. */
  busy?: Promise<void>;
  /** When the last sweep ran: while fenced, anything found running is killed again, at most once a second. */
  sweptAt: number;
  /** Why, when it is not etcd's silence. */
  why?: string;
}

/** Beyond the force-stop bound, how long a sweep may wait on its runtime before the next one may run. */
const HUNG_AFTER_MS = 2000;
/** Re-sweeps of a fenced node's runtime, in case something started after the first. */
const RESWEEP_MS = 1000;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Agent self-fencing. A node whose heartbeat lease had no keepalive
 * acknowledged for `--fence-after` (from the keepalive's send time, so the
 * lease, and the heartbeat key, surely outlived it) may be declared Dead by
 * the leader once its fence budget is over, and its pods bound elsewhere: so
 * the agent kills every pod of the node first (SIGKILL, no grace) and starts
 * nothing for it while fenced. When the node holds a heartbeat again, the
 * reconciler records why, re-reads the bindings from etcd and runs only what
 * is still bound to the node.
 */
export class Fencer {
  private readonly fenced = new Map<string, Fenced>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly subjects: () => Iterable<FenceSubject>,
    private readonly target: FenceTarget,
    private readonly opts: FencerOptions,
  ) {}

  /** Nodes fenced now, for tests. */
  get fencedNodes(): string[] {
    return [...this.fenced.keys()];
  }

  start(): void {
    this.timer ??= setInterval(() => this.check(), this.opts.checkEveryMs ?? 100);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look at every node. */
  check(): void {
    const now = performance.now();
    for (const s of this.subjects()) {
      const id = s.fenceableId;
      if (id === undefined) continue;
      const silent = s.silentMs(now);
      const f = this.fenced.get(id);
      if (f === undefined) {
        if (silent >= this.opts.fenceAfterMs || s.declaredDead) this.fence(s, id, silent, now);
        continue;
      }
      if (f.busy !== undefined) continue;
      if (silent < this.opts.fenceAfterMs && s.holdsHeartbeat() && !s.declaredDead) this.lift(s, id, f, now - silent);
      else if (now - f.sweptAt >= RESWEEP_MS) this.sweep(s, f, false);
    }
  }

  private fence(s: FenceSubject, id: string, silent: number, now: number): void {
    this.target.fence(id);
    // A node the leader declared Dead (its heartbeat was gone past its budget, whatever this agent saw) is fenced
    // like a silent one: its pods may be bound elsewhere any moment.
    const dead = silent < this.opts.fenceAfterMs;
    const f: Fenced = { lastAckedAt: now - silent, stopped: new Set(), sweptAt: now, ...(dead ? { why: 'the leader declared the node Dead' } : {}) };
    this.fenced.set(id, f);
    this.opts.log.error(
      { node: s.opts.name, silentMs: Math.round(silent), fenceAfterMs: this.opts.fenceAfterMs },
      dead
        ? 'NODE FENCED: the leader declared the node Dead: killing every pod of the node (no grace), starting nothing until it is Ready again'
        : `NODE FENCED: etcd acknowledged no keepalive for ${seconds(silent)} (--fence-after ${this.opts.fenceAfterMs / 1000} s): killing every pod of the node (no grace), starting nothing until etcd answers`,
    );
    this.sweep(s, f, true);
  }

  /** Kills whatever runs on the node; the first sweep says how long it took against the force-stop bound. */
  private sweep(s: FenceSubject, f: Fenced, first: boolean): void {
    const began = performance.now();
    f.sweptAt = began;
    const work = (async () => {
      const { runtime, name } = s.opts;
      const live = (await runtime.list()).filter((p) => p.state === 'running' || p.state === 'paused');
      for (const p of live) f.stopped.add(p.id);
      const ended = await Promise.all(
        live.map((p) =>
          runtime.kill(p.id, this.opts.forceStopMs).catch((err: unknown) => {
            this.opts.log.error({ err, pod: p.id }, 'fence: could not kill a pod');
            return false;
          }),
        ),
      );
      const tookMs = Math.round(performance.now() - began);
      const stuck = live.filter((_, i) => !ended[i]).map((p) => p.id);
      if (stuck.length > 0) {
        this.opts.log.error({ node: name, pods: stuck, tookMs }, `fence: pods did not end within the force-stop bound (${this.opts.forceStopMs} ms) after SIGKILL`);
      } else if (first) {
        this.opts.log.error({ node: name, killed: live.length, tookMs }, `fence: ${live.length} pods killed in ${tookMs} ms`);
      } else if (live.length > 0) {
        this.opts.log.error({ node: name, pods: live.map((p) => p.id) }, 'fence: pods were running on a fenced node; killed');
      }
    })().then(
      () => 'done' as const,
      (err: unknown) => {
        this.opts.log.error({ err, node: s.opts.name }, 'fence: could not kill the pods; trying again');
        return 'failed' as const;
      },
    );
    // A runtime that hangs (an engine that no longer answers) must not stop the next sweeps, nor go unsaid.
    // (The timer resolves, never rejects: the race's loser must not become an unhandled rejection.)
    const hung = sleep(this.opts.forceStopMs + HUNG_AFTER_MS, 'hung' as const, { ref: false });
    f.busy = Promise.race([work, hung])
      .then((outcome) => {
        if (outcome === 'hung') this.opts.log.error({ node: s.opts.name }, `fence: the runtime did not answer within ${this.opts.forceStopMs + HUNG_AFTER_MS} ms; trying again`);
      })
      .finally(() => (f.busy = undefined));
  }

  /** Lifts the fence once etcd acknowledges the node's heartbeat again; retried on the next check if it fails. */
  private lift(s: FenceSubject, id: string, f: Fenced, ackedAt: number): void {
    const why = f.why ?? `etcd acknowledged no keepalive for ${seconds(ackedAt - f.lastAckedAt)} (--fence-after ${this.opts.fenceAfterMs / 1000} s)`;
    f.busy = (async () => {
      this.opts.log.warn({ node: s.opts.name, silentMs: Math.round(ackedAt - f.lastAckedAt) }, `etcd answers again after ${seconds(ackedAt - f.lastAckedAt)}: re-reading the node's bindings before lifting its fence`);
      const clear = () => s.fenceableId === id && s.holdsHeartbeat() && !s.declaredDead && s.silentMs(performance.now()) < this.opts.fenceAfterMs;
      if (await this.target.unfence(id, f.stopped, why, clear)) this.fenced.delete(id);
    })()
      .catch((err: unknown) => this.opts.log.warn({ err, node: s.opts.name }, 'could not lift the fence yet; trying again'))
      .finally(() => (f.busy = undefined));
  }
}

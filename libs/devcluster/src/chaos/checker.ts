import type { NodeRecord, PodRecord } from '@berth/core';
import type { EtcdSnapshot } from './etcd-reader.js';
import type { ProcSample } from './proc-sampler.js';

/*
 * The chaos run's invariants, checked on what the machine and etcd show and
 * on nothing Berth computes: process samples (the process table), etcd
 * snapshots (one revision each, read between two process samples) and the
 * load generator's ledger of acknowledged requests. Pure: the run feeds it,
 * the unit test feeds it synthetic samples.
 *
 * Most invariants hold at every instant (a binding and its reservation are
 * one transaction), so one sample that breaks one is a violation. Three
 * hold only once the cluster had time to act, and are given a window after
 * the last fault event (`settleMs`): a Pending pod that fits is bound, a
 * reservation whose pod is gone, finished or elsewhere is released (the
 * release necessarily follows the pod's change: releasing first would
 * overcommit). Every violation is an episode per subject (a pod, a node, a
 * term): it opens on the first sample that shows it and closes on the first
 * that does not, so durations are at most one sample period long.
 */

/** Kinds of violation, in report order. */
export const VIOLATION_KINDS = {
  'double-run': 'a pod running in two places (two process groups)',
  'double-run-simulated': 'a pod running in two places (a process group and a simulated node it is bound to)',
  'ghost-run': 'a pod running where it is not bound (its process group outlives its binding)',
  'overcommit-machine': 'a node whose running pods exceed its capacity (process table)',
  'overcommit-reserved': 'a node whose reservations exceed its capacity (etcd)',
  'overcommit-bound': 'a node whose bound live pods exceed its capacity (etcd)',
  'reserved-twice': 'a pod reserved on two nodes',
  'unreserved-bound': 'a bound live pod without a reservation on its node',
  'dangling-reservation': 'a reservation without its live pod, past the settle window',
  'lost-create': 'an acknowledged create lost (the pod vanished without a delete)',
  'duplicate-create': 'an acknowledged create duplicated (two pods of one name)',
  'pending-fits': 'a Pending pod that fits a node, not bound within the settle window',
  'leadership-churn': 'a new leader term no leader fault explains',
  'process-crash': 'a Berth or etcd process exited that the run did not stop',
} as const;
export type ViolationKind = keyof typeof VIOLATION_KINDS;

/** One violation: a subject breaking one invariant from `startedAt` to `endedAt`. */
export interface Episode {
  kind: ViolationKind;
  subject: string;
  startedAt: number;
  endedAt: number;
  durationMs: number;
  detail: string;
}

/** What the load generator acknowledged (read by the checker, never written). */
export interface Ledger {
  /** Pods whose create was answered 201, with the time of the answer. */
  acked(): Iterable<{ id: string; name: string; ackedAt: number }>;
  /** When a delete of the pod was first sent, if ever. */
  deleteSentAt(id: string): number | undefined;
  /** Names that two different 201 answers gave two different ids. */
  duplicateAcks(): Array<{ name: string; ids: string[] }>;
}

export interface CheckerOptions {
  /** The window after the last fault event within which Pending pods must be bound and dangling reservations released. */
  settleMs: number;
  /** How often etcd is read (for the slack of a leader-fault window). */
  etcdIntervalMs: number;
}

interface Open {
  since: number;
  lastSeen: number;
  detail: string;
  violated: boolean;
}

const TERMINAL = new Set(['Succeeded', 'Failed']);
const RUNNING_PHASES = new Set(['Starting', 'Running', 'Paused', 'Stopping']);
const millis = (cores: number) => Math.round(cores * 1000);

/** Whether a bound pod holds (must hold) a reservation on its node. */
function live(p: PodRecord): boolean {
  return p.status.nodeId !== null && !TERMINAL.has(p.status.phase);
}

export class InvariantChecker {
  private readonly open = new Map<string, Open>();
  readonly episodes: Episode[] = [];
  private lastFaultAt = 0;
  private readonly termWindows: Array<{ from: number; to: number }> = [];
  private lastTerm: { term: number; version: number } | undefined;
  /** Terms seen taking office; term 0 is one only the leader record's version shows. */
  terms: Array<{ term: number; at: number; leaderId: string; explained: boolean }> = [];
  private readonly specs = new Map<string, { name: string; cpuMillis: number; memoryMiB: number }>();
  private readonly lost = new Set<string>();
  private latest: EtcdSnapshot | undefined;
  procSamples = 0;
  snapshots = 0;

  constructor(
    private readonly opts: CheckerOptions,
    private readonly ledger: Ledger,
  ) {}

  /** A fault was injected or healed at `at`: the settle windows restart. */
  noteFault(at: number): void {
    this.lastFaultAt = Math.max(this.lastFaultAt, at);
  }

  /**
   * A leader fault began at `from`: new terms from then until the window is
   * closed (the run saw the new leader; `close(at)` leaves one etcd sample
   * period and a second of slack) or, if never closed, `maxMs` later are
   * explained. Any other term change is leadership churn.
   */
  expectNewLeader(from: number, maxMs: number): { close: (at: number) => void } {
    const w = { from, to: from + maxMs };
    this.termWindows.push(w);
    return {
      close: (at: number) => {
        w.to = Math.min(w.to, at + this.opts.etcdIntervalMs + 1000);
      },
    };
  }

  /** A violation seen once (e.g. a process crash). */
  record(kind: ViolationKind, subject: string, at: number, detail: string): void {
    this.episodes.push({ kind, subject, startedAt: at, endedAt: at, durationMs: 0, detail });
  }

  /**
   * Opens, continues or closes the episodes of `kind`: `active` holds the
   * subjects breaking it now. A subject becomes a violation once `at`
   * reaches `deadline(since)` (at once by default).
   */
  private track(kind: ViolationKind, active: Map<string, string>, at: number, deadline: (since: number) => number = (s) => s): void {
    const prefix = `${kind}\0`;
    for (const [subject, detail] of active) {
      const key = prefix + subject;
      let o = this.open.get(key);
      if (o === undefined) {
        o = { since: at, lastSeen: at, detail, violated: false };
        this.open.set(key, o);
      }
      o.lastSeen = at;
      o.detail = detail;
      if (!o.violated && at >= deadline(o.since)) o.violated = true;
    }
    for (const [key, o] of this.open) {
      if (!key.startsWith(prefix) || active.has(key.slice(prefix.length))) continue;
      this.close(key, o, at);
    }
  }

  private close(key: string, o: Open, at: number): void {
    this.open.delete(key);
    if (!o.violated) return;
    const [kind, subject] = key.split('\0') as [ViolationKind, string];
    this.episodes.push({ kind, subject, startedAt: o.since, endedAt: at, durationMs: at - o.since, detail: o.detail });
  }

  private afterSettle = (since: number) => Math.max(since, this.lastFaultAt) + this.opts.settleMs;

  /** A process sample: a pod in two process groups at once. */
  onProcSample(s: ProcSample): void {
    this.procSamples += 1;
    const twice = new Map<string, string>();
    for (const [podId, groups] of s.groups) {
      if (groups.length < 2) continue;
      twice.set(podId, `${this.nameOf(podId)}: process groups ${groups.map((g) => `${g.pgid} on ${g.node ?? 'an unknown node'}`).join(', ')}`);
    }
    this.track('double-run', twice, s.at);
  }

  private nameOf(podId: string): string {
    return this.specs.get(podId)?.name ?? podId;
  }

  /**
   * An etcd snapshot read between two process samples: the etcd invariants
   * at its revision, and those that compare etcd with the machine, using only
   * process groups present in both samples (alive while etcd was read).
   */
  onSnapshot(snap: EtcdSnapshot, before: ProcSample, after: ProcSample): void {
    this.snapshots += 1;
    this.latest = snap;
    const at = snap.answeredAt;
    for (const p of snap.pods.values()) this.specs.set(p.id, { name: p.name, cpuMillis: millis(p.spec.cpu), memoryMiB: p.spec.memoryMiB });
    this.checkReservations(snap, at);
    this.checkCreates(snap, at);
    this.checkPending(snap, at);
    this.checkTerms(snap, at);
    this.checkMachine(snap, before, after, at);
  }

  private checkReservations(snap: EtcdSnapshot, at: number): void {
    const reservedOn = new Map<string, string[]>();
    const overReserved = new Map<string, string>();
    const overBound = new Map<string, string>();
    const dangling = new Map<string, string>();
    const unreserved = new Map<string, string>();
    for (const [nodeId, a] of snap.allocations) {
      const cap = snap.nodes.get(nodeId)?.capacity;
      let cpu = 0;
      let mem = 0;
      for (const [podId, r] of Object.entries(a.pods)) {
        cpu += r.cpuMillis;
        mem += r.memoryMiB;
        reservedOn.set(podId, [...(reservedOn.get(podId) ?? []), nodeId]);
        const p = snap.pods.get(podId);
        if (p === undefined || !live(p) || p.status.nodeId !== nodeId) {
          const state = p === undefined ? 'gone' : p.status.nodeId === nodeId ? p.status.phase : `on ${p.status.nodeId ?? 'no node'} (${p.status.phase})`;
          dangling.set(`${nodeId}/${podId}`, `reservation of ${this.nameOf(podId)} on node ${nodeId}, pod ${state}`);
        }
      }
      if (cap !== undefined && (cpu > millis(cap.cpu) || mem > cap.memoryMiB)) {
        overReserved.set(nodeId, `node ${nodeId}: reserved ${cpu}m/${mem}Mi of ${millis(cap.cpu)}m/${cap.memoryMiB}Mi`);
      }
    }
    const twice = new Map<string, string>();
    for (const [podId, nodes] of reservedOn) if (nodes.length > 1) twice.set(podId, `${this.nameOf(podId)} reserved on ${nodes.join(' and ')}`);
    const boundSum = new Map<string, { cpu: number; mem: number }>();
    for (const p of snap.pods.values()) {
      if (!live(p)) continue;
      const nodeId = p.status.nodeId!;
      const s = boundSum.get(nodeId) ?? { cpu: 0, mem: 0 };
      s.cpu += millis(p.spec.cpu);
      s.mem += p.spec.memoryMiB;
      boundSum.set(nodeId, s);
      if (snap.allocations.get(nodeId)?.pods[p.id] === undefined) unreserved.set(p.id, `${p.name} ${p.status.phase} on ${nodeId} with no reservation there`);
    }
    for (const [nodeId, s] of boundSum) {
      const cap = snap.nodes.get(nodeId)?.capacity;
      if (cap !== undefined && (s.cpu > millis(cap.cpu) || s.mem > cap.memoryMiB)) {
        overBound.set(nodeId, `node ${nodeId}: bound live pods need ${s.cpu}m/${s.mem}Mi of ${millis(cap.cpu)}m/${cap.memoryMiB}Mi`);
      }
    }
    this.track('overcommit-reserved', overReserved, at);
    this.track('overcommit-bound', overBound, at);
    this.track('reserved-twice', twice, at);
    this.track('unreserved-bound', unreserved, at);
    this.track('dangling-reservation', dangling, at, this.afterSettle);
  }

  private checkCreates(snap: EtcdSnapshot, at: number): void {
    for (const c of this.ledger.acked()) {
      if (this.lost.has(c.id) || snap.pods.has(c.id) || c.ackedAt >= snap.sentAt) continue;
      const del = this.ledger.deleteSentAt(c.id);
      if (del !== undefined && del <= snap.answeredAt) continue;
      this.lost.add(c.id);
      this.record('lost-create', c.id, at, `${c.name} (${c.id}) acknowledged at ${new Date(c.ackedAt).toISOString()} is not in etcd at revision ${snap.revision} and was never deleted`);
    }
    const byName = new Map<string, string[]>();
    for (const p of snap.pods.values()) byName.set(p.name, [...(byName.get(p.name) ?? []), p.id]);
    const dup = new Map<string, string>();
    for (const [name, ids] of byName) if (ids.length > 1) dup.set(name, `${ids.length} pods named ${name}: ${ids.join(', ')}`);
    this.track('duplicate-create', dup, at);
  }

  /** Whether `pod` fits some node as etcd shows it now: Ready, heartbeating, schedulable, selector, free capacity. */
  static fitsSomewhere(pod: PodRecord, snap: EtcdSnapshot): boolean {
    for (const n of snap.nodes.values()) if (InvariantChecker.fits(pod, n, snap)) return true;
    return false;
  }

  private static fits(pod: PodRecord, n: NodeRecord, snap: EtcdSnapshot): boolean {
    if (n.status !== 'Ready' || n.cordoned || n.draining || n.deregisteredAt !== undefined) return false;
    const hb = snap.heartbeats.get(n.id);
    if (hb === undefined || hb.runtime?.ready === false) return false;
    for (const [k, v] of Object.entries(pod.spec.nodeSelector ?? {})) if (n.labels[k] !== v) return false;
    let cpu = 0;
    let mem = 0;
    for (const r of Object.values(snap.allocations.get(n.id)?.pods ?? {})) {
      cpu += r.cpuMillis;
      mem += r.memoryMiB;
    }
    return millis(pod.spec.cpu) <= millis(n.capacity.cpu) - cpu && pod.spec.memoryMiB <= n.capacity.memoryMiB - mem;
  }

  private checkPending(snap: EtcdSnapshot, at: number): void {
    const waiting = new Map<string, string>();
    for (const p of snap.pods.values()) {
      if (p.status.phase !== 'Pending' || p.deletionRequested !== undefined || !InvariantChecker.fitsSomewhere(p, snap)) continue;
      waiting.set(p.id, `${p.name} Pending (${p.status.reason}: ${p.status.message}) although a node has room`);
    }
    this.track('pending-fits', waiting, at, this.afterSettle);
  }

  private checkTerms(snap: EtcdSnapshot, at: number): void {
    const rec = snap.leader;
    if (rec === undefined) return;
    const prev = this.lastTerm;
    this.lastTerm = { term: rec.value.term, version: rec.version };
    if (prev === undefined || prev.term === rec.value.term) return;
    // The record is written once per term: its version counts terms even when a sample missed some.
    const n = Math.max(1, rec.version - prev.version);
    for (let i = 0; i < n; i++) {
      const seen = i === n - 1;
      const explained = this.termWindows.some((w) => at >= w.from && at <= w.to);
      this.terms.push({ term: seen ? rec.value.term : 0, at, leaderId: seen ? rec.value.leaderId : '?', explained });
      if (!explained) {
        const subject = seen ? `term ${rec.value.term}` : `term ${i + 1} of ${n} after ${prev.term}`;
        const what = seen ? `term ${rec.value.term} (${rec.value.leaderId})` : 'a term no sample saw';
        this.record('leadership-churn', subject, at, `${what} began with no leader fault in progress (previous term seen: ${prev.term})`);
      }
    }
  }

  private checkMachine(snap: EtcdSnapshot, before: ProcSample, after: ProcSample, at: number): void {
    const nodeByName = new Map([...snap.nodes.values()].map((n) => [n.name, n]));
    const ghosts = new Map<string, string>();
    const withSim = new Map<string, string>();
    const load = new Map<string, { cpu: number; mem: number; pods: string[] }>();
    for (const [podId, groups] of after.groups) {
      const earlier = new Set((before.groups.get(podId) ?? []).map((g) => g.pgid));
      const lasting = groups.filter((g) => earlier.has(g.pgid));
      if (lasting.length === 0) continue;
      const p = snap.pods.get(podId);
      const boundTo = p?.status.nodeId ?? null;
      for (const g of lasting) {
        const node = g.node === undefined ? undefined : nodeByName.get(g.node);
        const where = node?.name ?? g.node ?? 'an unknown node';
        if (p === undefined || boundTo === null || (node !== undefined && boundTo !== node.id)) {
          const state = p === undefined ? 'gone from etcd' : boundTo === null ? `${p.status.phase}, unbound` : `bound to ${snap.nodes.get(boundTo)?.name ?? boundTo}`;
          ghosts.set(`${podId}/${g.pgid}`, `${this.nameOf(podId)}: process group ${g.pgid} runs on ${where}; the pod is ${state}`);
        }
        if (node !== undefined) {
          const spec = this.specs.get(podId);
          const l = load.get(node.id) ?? { cpu: 0, mem: 0, pods: [] };
          l.cpu += spec?.cpuMillis ?? 0;
          l.mem += spec?.memoryMiB ?? 0;
          l.pods.push(this.nameOf(podId));
          load.set(node.id, l);
        }
      }
      const sim = boundTo === null ? undefined : snap.nodes.get(boundTo);
      if (p !== undefined && sim?.runtime === 'simulated' && RUNNING_PHASES.has(p.status.phase)) {
        withSim.set(podId, `${p.name}: ${p.status.phase} on simulated node ${sim.name} while process group ${lasting.map((g) => g.pgid).join(', ')} runs`);
      }
    }
    const over = new Map<string, string>();
    for (const [nodeId, l] of load) {
      const cap = snap.nodes.get(nodeId)?.capacity;
      if (cap !== undefined && (l.cpu > millis(cap.cpu) || l.mem > cap.memoryMiB)) {
        over.set(nodeId, `node ${snap.nodes.get(nodeId)?.name}: running pods need ${l.cpu}m/${l.mem}Mi of ${millis(cap.cpu)}m/${cap.memoryMiB}Mi (${l.pods.length} pods)`);
      }
    }
    this.track('ghost-run', ghosts, at);
    this.track('double-run-simulated', withSim, at);
    this.track('overcommit-machine', over, at);
  }

  /** Closes every open episode at `at` and adds the ledger's duplicate acknowledgements. */
  finish(at: number): void {
    for (const [key, o] of [...this.open]) this.close(key, o, Math.max(at, o.lastSeen));
    for (const d of this.ledger.duplicateAcks()) this.record('duplicate-create', d.name, at, `two creates of ${d.name} were both acknowledged: ${d.ids.join(', ')}`);
  }

  /** The latest snapshot checked. */
  get lastSnapshot(): EtcdSnapshot | undefined {
    return this.latest;
  }

  /** Violations per kind: episodes, total and longest duration. */
  summary(): Record<ViolationKind, { episodes: number; totalMs: number; maxMs: number; subjects: number }> {
    const out = {} as Record<ViolationKind, { episodes: number; totalMs: number; maxMs: number; subjects: number }>;
    for (const kind of Object.keys(VIOLATION_KINDS) as ViolationKind[]) {
      const eps = this.episodes.filter((e) => e.kind === kind);
      out[kind] = {
        episodes: eps.length,
        totalMs: eps.reduce((s, e) => s + e.durationMs, 0),
        maxMs: eps.reduce((m, e) => Math.max(m, e.durationMs), 0),
        subjects: new Set(eps.map((e) => e.subject)).size,
      };
    }
    return out;
  }
}

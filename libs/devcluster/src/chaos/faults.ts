import type { PodRecord } from '@berth/core';
import { delay } from '../wait.js';
import type { InvariantChecker } from './checker.js';
import type { ChaosAgent, ChaosCluster, ChaosController } from './cluster.js';
import { officeOf, type EtcdReader } from './etcd-reader.js';
import type { ProcSample } from './proc-sampler.js';

/*
 * The faults of a chaos run, one at a time: each injects, measures how the
 * cluster recovers (from etcd read directly and from the process table, never
 * from Berth's own view), heals, and returns what it measured. A measure that
 * did not happen in its time is null (reported as a miss, never as a time).
 */

export const FAULT_KINDS = ['leader-kill', 'leader-stop', 'agent-kill', 'agent-cut', 'agent-partition', 'controller-partition', 'etcd-kill', 'slow-etcd'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const FAULT_DESCRIPTIONS: Record<FaultKind, string> = {
  'leader-kill': 'SIGKILL of the leader controller, then restarted',
  'leader-stop': 'SIGSTOP of the leader past its lease, then SIGCONT',
  'agent-kill': 'SIGKILL of an agent, restarted once its pods ran elsewhere (or after budget + 30 s)',
  'agent-cut': "an agent's etcd connections closed by its proxy (loud partition) for budget + 6 s or until its pods ran elsewhere",
  'agent-partition': "an agent's packets dropped in its network namespace (silent partition), as long as agent-cut",
  'controller-partition': "the controller in a network namespace, made leader first, silently partitioned for lease TTL + 6 s",
  'etcd-kill': 'SIGKILL of an etcd member (the raft leader every other time), restarted after 3 s',
  'slow-etcd': "every client's etcd answers delayed 0.5-1.5 s one way",
};

/** What one fault measured (ms; null: did not happen in time). */
export interface FaultRecord {
  kind: FaultKind;
  target: string;
  startedAt: number;
  healedAt: number;
  metrics: Record<string, number | null>;
  /** Per pod of the node: fault to Running elsewhere (agent faults). */
  perPodMs?: number[];
  /** Counts (not times), e.g. terms that began while etcd was slow. */
  counts?: Record<string, number>;
  notes: string[];
}

export interface FaultContext {
  cluster: ChaosCluster;
  reader: EtcdReader;
  checker: InvariantChecker;
  latestProc: () => ProcSample;
  /** Heartbeat TTL + node grace: when the leader gives a silent node's pods away. */
  budgetMs: number;
  leaseTtlMs: number;
  slowHoldMs: number;
  log: (msg: string) => void;
}

const POLL_MS = 50;

async function until<T>(timeoutMs: number, intervalMs: number, check: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch {
      /* etcd may be away: try again */
    }
    await delay(intervalMs);
  }
  return undefined;
}

/** The controller in office (its leader record written), waiting for one. */
async function office(ctx: FaultContext): Promise<{ c: ChaosController; term: number }> {
  const o = await until(60_000, 100, async () => {
    const s = officeOf(await ctx.reader.snapshot());
    return s?.inOffice ? s : undefined;
  });
  if (o === undefined) throw new Error('no controller took office within 60 s');
  return { c: ctx.cluster.controller(o.id), term: o.term };
}

/** ms from t0 until a leader record of a newer term, or null. */
async function newTerm(ctx: FaultContext, term: number, t0: number, timeoutMs: number): Promise<number | null> {
  const at = await until(timeoutMs, POLL_MS, async () => ((await ctx.reader.leaderRecord())?.value.term ?? 0) > term ? Date.now() : undefined);
  return at === undefined ? null : at - t0;
}

/** Live pods bound to any node named in `names`. */
async function podsOn(ctx: FaultContext, names: string[]): Promise<Map<string, string>> {
  const snap = await ctx.reader.snapshot();
  const ids = new Set([...snap.nodes.values()].filter((n) => names.includes(n.name)).map((n) => n.id));
  const out = new Map<string, string>();
  for (const p of snap.pods.values()) {
    if (p.status.nodeId !== null && ids.has(p.status.nodeId) && p.status.phase !== 'Succeeded' && p.status.phase !== 'Failed') out.set(p.id, p.status.nodeId);
  }
  return out;
}

/** Per pod: ms from t0 until it runs on another node (pods deleted meanwhile drop out); all: until the last did, or null. */
async function runningElsewhere(ctx: FaultContext, pods: Map<string, string>, t0: number, timeoutMs: number): Promise<{ perPod: number[]; all: number | null }> {
  const waiting = new Map(pods);
  const perPod: number[] = [];
  const deadline = t0 + timeoutMs;
  while (waiting.size > 0 && Date.now() < deadline) {
    let now: Map<string, PodRecord> | undefined;
    try {
      now = await ctx.reader.pods();
    } catch {
      /* etcd away */
    }
    const at = Date.now();
    for (const [id, from] of now === undefined ? [] : [...waiting]) {
      const p = now!.get(id);
      if (p === undefined) waiting.delete(id);
      else if (p.status.nodeId !== null && p.status.nodeId !== from && p.status.phase === 'Running') {
        waiting.delete(id);
        perPod.push(at - t0);
      }
    }
    if (waiting.size > 0) await delay(200);
  }
  return { perPod, all: waiting.size === 0 ? Math.max(0, ...perPod) : null };
}

/** Process groups of `node` in a sample. */
function groupsIn(s: ProcSample, node: string): number {
  let n = 0;
  for (const groups of s.groups.values()) n += groups.filter((g) => g.node === node).length;
  return n;
}

/**
 * Watches the node's process groups from t0 for `windowMs`: ms from t0 to the
 * last sample that still showed one (null: some still ran at the end of the
 * window; undefined: none was seen at all, nothing to measure).
 */
async function processesGone(ctx: FaultContext, node: string, t0: number, windowMs: number): Promise<number | null | undefined> {
  let lastSeen: number | undefined;
  let present = false;
  while (Date.now() < t0 + windowMs) {
    const s = ctx.latestProc();
    present = groupsIn(s, node) > 0;
    if (present) lastSeen = s.at;
    await delay(100);
  }
  if (present) return null;
  return lastSeen === undefined ? undefined : Math.max(0, lastSeen - t0);
}

/** ms from t0 until every node of the agent is Ready, or null. */
async function nodesReady(ctx: FaultContext, a: ChaosAgent, t0: number, timeoutMs: number): Promise<number | null> {
  const at = await until(timeoutMs, 200, async () => {
    const snap = await ctx.reader.snapshot();
    const ready = [...snap.nodes.values()].filter((n) => a.nodes.includes(n.name) && n.status === 'Ready' && snap.heartbeats.has(n.id));
    return ready.length === a.nodes.length ? Date.now() : undefined;
  });
  return at === undefined ? null : at - t0;
}

/** ms from t0 until the cluster is settled: a leader in office, every node Ready, every controller up; or null. */
export async function settled(ctx: FaultContext, t0: number, timeoutMs: number): Promise<number | null> {
  const names = ctx.cluster.agents.flatMap((a) => a.nodes);
  const at = await until(timeoutMs, 200, async () => {
    if (!ctx.cluster.controllers.every((c) => c.controller.process.running)) return undefined;
    const snap = await ctx.reader.snapshot();
    if (!officeOf(snap)?.inOffice) return undefined;
    const ready = [...snap.nodes.values()].filter((n) => names.includes(n.name) && n.status === 'Ready' && snap.heartbeats.has(n.id));
    return ready.length === names.length ? Date.now() : undefined;
  });
  return at === undefined ? null : at - t0;
}

function record(kind: FaultKind, target: string, startedAt: number, metrics: Record<string, number | null>, extra: Partial<FaultRecord> = {}): FaultRecord {
  return { kind, target, startedAt, healedAt: Date.now(), metrics, notes: [], ...extra };
}

async function leaderKill(ctx: FaultContext): Promise<FaultRecord> {
  const { c, term } = await office(ctx);
  const t0 = Date.now();
  const window = ctx.checker.expectNewLeader(t0, 30_000);
  ctx.checker.noteFault(t0);
  ctx.cluster.signal(c.controller.process, 'SIGKILL');
  const leader = await newTerm(ctx, term, t0, 30_000);
  window.close(Date.now());
  await c.controller.process.waitExit();
  await ctx.cluster.startController(c);
  return record('leader-kill', c.id, t0, { 'new leader': leader });
}

async function leaderStop(ctx: FaultContext): Promise<FaultRecord> {
  const { c, term } = await office(ctx);
  const t0 = Date.now();
  const window = ctx.checker.expectNewLeader(t0, ctx.leaseTtlMs + 20_000);
  ctx.checker.noteFault(t0);
  ctx.cluster.signal(c.controller.process, 'SIGSTOP');
  const leader = await newTerm(ctx, term, t0, ctx.leaseTtlMs + 20_000);
  window.close(Date.now());
  // Past its lease for sure, and a moment under the new leader.
  await delay(Math.max(0, t0 + ctx.leaseTtlMs + 2000 - Date.now(), 1000));
  ctx.cluster.signal(c.controller.process, 'SIGCONT');
  return record('leader-stop', c.id, t0, { 'new leader': leader });
}

/** Rotates targets per kind. */
const turns = new Map<string, number>();
function nextOf<T>(kind: string, list: T[]): T {
  const i = turns.get(kind) ?? 0;
  turns.set(kind, i + 1);
  return list[i % list.length]!;
}

async function agentFault(ctx: FaultContext, kind: 'agent-kill' | 'agent-cut' | 'agent-partition', a: ChaosAgent): Promise<FaultRecord> {
  const pods = await podsOn(ctx, a.nodes);
  const groups = a.simulated ? 0 : groupsIn(ctx.latestProc(), a.name);
  const t0 = Date.now();
  if (kind === 'agent-kill') ctx.cluster.signal(a.agent.process, 'SIGKILL');
  else if (kind === 'agent-cut') for (const p of a.proxies) p.cut();
  else a.link!.partition();
  ctx.checker.noteFault(t0);
  // Processes must be gone within the budget (the agent fences itself, or they die with it): a little
  // more is a measurement; what runs on past that is a miss (and, once rebound, a double run).
  const [gone, elsewhere] = await Promise.all([
    a.simulated ? Promise.resolve(undefined) : processesGone(ctx, a.name, t0, ctx.budgetMs + 5000),
    runningElsewhere(ctx, pods, t0, ctx.budgetMs + 30_000),
  ]);
  // A partition lasts past the budget in any case (the node must be declared dead for it to count).
  if (kind !== 'agent-kill') await delay(Math.max(0, t0 + ctx.budgetMs + 6000 - Date.now()));
  const healAt = Date.now();
  ctx.checker.noteFault(healAt);
  if (kind === 'agent-kill') {
    await a.agent.process.waitExit();
    await ctx.cluster.startAgent(a);
  } else if (kind === 'agent-cut') for (const p of a.proxies) p.restore();
  else a.link!.heal();
  const ready = await nodesReady(ctx, a, healAt, 60_000);
  const metrics: Record<string, number | null> = {
    'pods running elsewhere': elsewhere.all,
    ...(gone === undefined ? {} : { 'pod processes gone': gone }),
    [kind === 'agent-kill' ? 'node Ready after restart' : 'node Ready after heal']: ready,
  };
  return record(kind, a.name, t0, metrics, { perPodMs: elsewhere.perPod, notes: [`${pods.size} pods bound to the node, ${groups} process groups on it`] });
}

/** Makes the namespaced controller (c3) lead, by SIGTERM (resignation) of those ahead of it. */
async function makeLeader(ctx: FaultContext, target: ChaosController): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const { c, term } = await office(ctx);
    if (c === target) return;
    const window = ctx.checker.expectNewLeader(Date.now(), 30_000);
    ctx.cluster.signal(c.controller.process, 'SIGTERM');
    await c.controller.process.waitExit();
    await newTerm(ctx, term, Date.now(), 30_000);
    window.close(Date.now());
    await ctx.cluster.startController(c);
  }
}

async function controllerPartition(ctx: FaultContext): Promise<FaultRecord> {
  const c = ctx.cluster.controllers.find((x) => x.link !== undefined)!;
  await makeLeader(ctx, c);
  const { c: leading, term } = await office(ctx);
  const t0 = Date.now();
  const hold = ctx.leaseTtlMs + 6000;
  const window = leading === c ? ctx.checker.expectNewLeader(t0, hold) : undefined;
  c.link!.partition();
  ctx.checker.noteFault(t0);
  const leader = leading === c ? await newTerm(ctx, term, t0, hold) : null;
  window?.close(Date.now());
  await delay(Math.max(0, t0 + hold - Date.now()));
  const healAt = Date.now();
  ctx.checker.noteFault(healAt);
  c.link!.heal();
  return record('controller-partition', `${c.id}${leading === c ? ' (leader)' : ' (follower)'}`, t0, leading === c ? { 'new leader': leader } : {}, {
    notes: leading === c ? [] : ['the namespaced controller could not be made leader'],
  });
}

async function etcdKill(ctx: FaultContext): Promise<FaultRecord> {
  const etcd = ctx.cluster.etcd;
  const statuses = await Promise.all(
    etcd.members.map(async (m) => {
      try {
        const res = await fetch(`http://127.0.0.1:${m.clientPort}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2000) });
        const s = (await res.json()) as { header: { member_id: string }; leader: string };
        return { m, leader: s.header.member_id === s.leader };
      } catch {
        return { m, leader: false };
      }
    }),
  );
  const wantLeader = nextOf('etcd-kill', [true, false]);
  const victim = (statuses.find((s) => s.leader === wantLeader) ?? statuses[0]!).m;
  const others = etcd.members.filter((m) => m !== victim);
  const t0 = Date.now();
  victim.process.signal('SIGKILL');
  ctx.checker.noteFault(t0);
  // Losing etcd's raft leader stalls every write for an election and the clients' move to another member. When
  // that outlasts what Berth's leader can prove of its lease (TTL - margin - 500 ms: 3 s by default; more often
  // under CPU load), it steps down by design: a new term then is this fault's (its "new terms" row), not churn.
  if (statuses.find((s) => s.m === victim)?.leader === true) ctx.checker.expectNewLeader(t0, ctx.leaseTtlMs + 10_000);
  const serving = await until(30_000, POLL_MS, async () => {
    for (const m of others) {
      const res = await fetch(`http://127.0.0.1:${m.clientPort}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/berth/leader').toString('base64') }), signal: AbortSignal.timeout(500) }).catch(() => undefined);
      if (res?.ok) return Date.now();
    }
    return undefined;
  });
  await victim.process.waitExit();
  await delay(Math.max(0, t0 + 3000 - Date.now()));
  const restartAt = Date.now();
  ctx.checker.noteFault(restartAt);
  let healthy: number | null = null;
  try {
    await etcd.restart(victim, 60_000);
    healthy = Date.now() - restartAt;
  } catch (err) {
    ctx.log(`etcd member ${victim.name} did not come back: ${(err as Error).message}`);
  }
  return record('etcd-kill', `${victim.name}${wantLeader && statuses.find((s) => s.m === victim)?.leader ? ' (raft leader)' : ''}`, t0, {
    'etcd serving reads': serving === undefined ? null : serving - t0,
    'member healthy after restart': healthy,
  });
}

async function slowEtcd(ctx: FaultContext): Promise<FaultRecord> {
  const proxies = ctx.cluster.allProxies;
  const t0 = Date.now();
  for (const p of proxies) p.setDelay({ minMs: 500, maxMs: 1500 });
  ctx.checker.noteFault(t0);
  await delay(ctx.slowHoldMs);
  for (const p of proxies) p.setDelay(undefined);
  const healAt = Date.now();
  ctx.checker.noteFault(healAt);
  return record('slow-etcd', `all ${proxies.length} client proxies`, t0, {});
}

/** How each kind of fault is injected, measured and healed (a full record: a new kind without one does not compile). */
const RUNNERS: Record<FaultKind, (ctx: FaultContext) => Promise<FaultRecord>> = {
  'leader-kill': leaderKill,
  'leader-stop': leaderStop,
  'agent-kill': (ctx) => agentFault(ctx, 'agent-kill', nextOf('agent-kill', ctx.cluster.agents)),
  'agent-cut': async (ctx) => {
    // The host agent with the most pods: a cut of an empty node measures nothing.
    const candidates = ctx.cluster.agents.filter((a) => !a.simulated && a.link === undefined);
    const counts = await Promise.all(candidates.map(async (a) => (await podsOn(ctx, a.nodes)).size));
    return agentFault(ctx, 'agent-cut', candidates[counts.indexOf(Math.max(...counts))]!);
  },
  'agent-partition': (ctx) => agentFault(ctx, 'agent-partition', ctx.cluster.agents.find((a) => !a.simulated && a.link !== undefined)!),
  'controller-partition': controllerPartition,
  'etcd-kill': etcdKill,
  'slow-etcd': slowEtcd,
};

/** Injects one fault of `kind`, waits for its recovery, heals; then waits until the cluster settled again. */
export async function runFault(ctx: FaultContext, kind: FaultKind): Promise<FaultRecord> {
  const r = await RUNNERS[kind](ctx);
  ctx.checker.noteFault(r.healedAt);
  r.metrics.settled = await settled(ctx, r.healedAt, 60_000);
  return r;
}

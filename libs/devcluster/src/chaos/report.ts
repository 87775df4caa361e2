import { machineSummary } from '../machine.js';
import { VIOLATION_KINDS, type Episode, type ViolationKind } from './checker.js';
import { FAULT_DESCRIPTIONS, type FaultKind, type FaultRecord } from './faults.js';
import type { RequestStats } from './load.js';

/** Percentiles of a sample (nearest rank); null fields for an empty one. */
export interface Stat {
  n: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

export function stat(values: number[]): Stat {
  const s = [...values].sort((a, b) => a - b);
  const rank = (p: number) => (s.length === 0 ? null : s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!);
  return { n: s.length, p50: rank(0.5), p99: rank(0.99), max: s.length === 0 ? null : s[s.length - 1]! };
}


export interface ChaosReport {
  machine: string;
  startedAt: string;
  durationS: number;
  config: Record<string, unknown>;
  budget: { heartbeatTtlS: number; nodeGraceS: number; budgetS: number; formula: string; targetS: number };
  faults: Partial<Record<FaultKind, { description: string; count: number; metrics: Record<string, Stat & { misses: number }>; podsRunningElsewhere?: Stat; counts: Record<string, number> }>>;
  faultLog: Array<Omit<FaultRecord, 'startedAt' | 'healedAt'> & { startedAt: string; healedAt: string }>;
  invariants: Record<ViolationKind, { description: string; episodes: number; subjects: number; totalMs: number; maxMs: number; examples: Array<Omit<Episode, 'startedAt' | 'endedAt'> & { startedAt: string }> }>;
  violations: number;
  /** Violations by the fault in progress when they began (from its start to the next fault's), by kind. */
  violationsByFault: Record<string, Partial<Record<ViolationKind, number>>>;
  /** Every violation. */
  allViolations: Array<Omit<Episode, 'startedAt' | 'endedAt'> & { startedAt: string }>;
  leadership: { terms: number; minutes: number; termsPerMinute: number; unexplained: number };
  load: Record<'create' | 'delete' | 'restart', { ok: number; failed: number; unknown: number; latency: Stat }> & { lastErrors: string[] };
  checker: { processSamples: number; etcdSnapshots: number; etcdReadFailures: number; maxSnapshotGapMs: number };
  skipped: string[];
  harnessErrors: string[];
}

export interface ReportInput {
  startedAt: number;
  endedAt: number;
  config: Record<string, unknown>;
  heartbeatTtlS: number;
  nodeGraceS: number;
  faults: FaultRecord[];
  episodes: Episode[];
  terms: Array<{ explained: boolean }>;
  load: Record<'create' | 'delete' | 'restart', RequestStats>;
  loadErrors: string[];
  checker: ChaosReport['checker'];
  skipped: string[];
  harnessErrors: string[];
}

const iso = (ms: number) => new Date(ms).toISOString();

export function buildReport(i: ReportInput): ChaosReport {
  const faults: ChaosReport['faults'] = {};
  for (const f of i.faults) {
    const entry = (faults[f.kind] ??= { description: FAULT_DESCRIPTIONS[f.kind], count: 0, metrics: {}, counts: {} });
    entry.count += 1;
    for (const [k, v] of Object.entries(f.counts ?? {})) entry.counts[k] = (entry.counts[k] ?? 0) + v;
  }
  for (const kind of Object.keys(faults) as FaultKind[]) {
    const list = i.faults.filter((f) => f.kind === kind);
    const names = new Set(list.flatMap((f) => Object.keys(f.metrics)));
    for (const name of names) {
      const values = list.map((f) => f.metrics[name]).filter((v) => v !== undefined);
      const hit = values.filter((v): v is number => v !== null);
      faults[kind]!.metrics[name] = { ...stat(hit), misses: values.length - hit.length };
    }
    const perPod = list.flatMap((f) => f.perPodMs ?? []);
    if (perPod.length > 0) faults[kind]!.podsRunningElsewhere = stat(perPod);
  }
  const invariants = {} as ChaosReport['invariants'];
  for (const kind of Object.keys(VIOLATION_KINDS) as ViolationKind[]) {
    const eps = i.episodes.filter((e) => e.kind === kind);
    invariants[kind] = {
      description: VIOLATION_KINDS[kind],
      episodes: eps.length,
      subjects: new Set(eps.map((e) => e.subject)).size,
      totalMs: eps.reduce((s, e) => s + e.durationMs, 0),
      maxMs: eps.reduce((m, e) => Math.max(m, e.durationMs), 0),
      examples: eps.slice(0, 10).map(({ startedAt, endedAt: _e, ...rest }) => ({ ...rest, startedAt: iso(startedAt) })),
    };
  }
  const byFault: ChaosReport['violationsByFault'] = {};
  const sorted = [...i.faults].sort((a, b) => a.startedAt - b.startedAt);
  for (const e of i.episodes) {
    const f = [...sorted].reverse().find((x) => x.startedAt <= e.startedAt);
    const bucket = (byFault[f?.kind ?? 'before any fault'] ??= {});
    bucket[e.kind] = (bucket[e.kind] ?? 0) + 1;
  }
  const minutes = (i.endedAt - i.startedAt) / 60_000;
  const budgetS = i.heartbeatTtlS + i.nodeGraceS;
  const load = (s: RequestStats) => ({ ok: s.ok, failed: s.failed, unknown: s.unknown, latency: stat(s.latenciesMs) });
  return {
    machine: machineSummary(),
    startedAt: iso(i.startedAt),
    durationS: Math.round((i.endedAt - i.startedAt) / 1000),
    config: i.config,
    budget: {
      heartbeatTtlS: i.heartbeatTtlS,
      nodeGraceS: i.nodeGraceS,
      budgetS,
      formula: 'a silent node\'s pods are given away after heartbeat TTL + node grace',
      targetS: budgetS + 1,
    },
    faults,
    faultLog: i.faults.map((f) => ({ ...f, startedAt: iso(f.startedAt), healedAt: iso(f.healedAt) })),
    invariants,
    violations: i.episodes.length,
    violationsByFault: byFault,
    allViolations: i.episodes.map(({ startedAt, endedAt: _e, ...rest }) => ({ ...rest, startedAt: iso(startedAt) })),
    leadership: {
      terms: i.terms.length,
      minutes: Number(minutes.toFixed(2)),
      termsPerMinute: Number((i.terms.length / Math.max(minutes, 1 / 60)).toFixed(2)),
      unexplained: i.terms.filter((t) => !t.explained).length,
    },
    load: { create: load(i.load.create), delete: load(i.load.delete), restart: load(i.load.restart), lastErrors: i.loadErrors.slice(-10) },
    checker: i.checker,
    skipped: i.skipped,
    harnessErrors: i.harnessErrors,
  };
}

const ms = (v: number | null) => (v === null ? '-' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);

/** The report as Markdown. */
export function renderMarkdown(r: ChaosReport): string {
  const out: string[] = [];
  out.push(`# Chaos run: ${r.violations === 0 ? '0 violations' : `${r.violations} violations`}`, '');
  out.push(`- machine: ${r.machine}`);
  out.push(`- started ${r.startedAt}, ran ${r.durationS} s (${r.leadership.minutes} min)`);
  out.push(`- config: \`${JSON.stringify(r.config)}\``);
  out.push(`- fence budget: ${r.budget.budgetS} s (${r.budget.formula}: ${r.budget.heartbeatTtlS} s + ${r.budget.nodeGraceS} s); target for pods running elsewhere: budget + 1 s = ${r.budget.targetS} s`);
  out.push(`- checker: ${r.checker.processSamples} process-table samples, ${r.checker.etcdSnapshots} etcd snapshots (${r.checker.etcdReadFailures} reads failed, longest gap between snapshots ${ms(r.checker.maxSnapshotGapMs)})`);
  if (r.skipped.length > 0) out.push(`- skipped: ${r.skipped.join('; ')}`);
  if (r.harnessErrors.length > 0) out.push(`- harness errors: ${r.harnessErrors.join('; ')}`);
  out.push('', '## Invariants', '', '| invariant | violations | subjects | total duration | longest |', '|---|---|---|---|---|');
  for (const v of Object.values(r.invariants)) out.push(`| ${v.description} | ${v.episodes} | ${v.subjects} | ${ms(v.totalMs)} | ${ms(v.maxMs)} |`);
  const byFault = Object.entries(r.violationsByFault);
  if (byFault.length > 0) {
    const kinds = Object.keys(r.invariants).filter((k) => byFault.some(([, v]) => (v as Record<string, number>)[k] !== undefined));
    out.push('', 'Violations by the fault in progress when they began (from its start to the next fault\'s start):', '');
    out.push(`| fault | ${kinds.join(' | ')} |`, `|---|${kinds.map(() => '---|').join('')}`);
    for (const [fault, v] of byFault) out.push(`| ${fault} | ${kinds.map((k) => (v as Record<string, number>)[k] ?? 0).join(' | ')} |`);
  }
  out.push('', `Leadership: ${r.leadership.terms} new terms in ${r.leadership.minutes} min (${r.leadership.termsPerMinute} per minute), ${r.leadership.unexplained} not explained by a leader fault.`);
  out.push('', '## Faults and recovery', '', '| fault | count | measure | n | p50 | p99 | max | misses |', '|---|---|---|---|---|---|---|---|');
  for (const [kind, f] of Object.entries(r.faults)) {
    const rows = Object.entries(f.metrics);
    if (f.podsRunningElsewhere) rows.push(['per pod: running elsewhere', { ...f.podsRunningElsewhere, misses: 0 }]);
    rows.forEach(([name, s], idx) => {
      out.push(`| ${idx === 0 ? `${kind}` : ''} | ${idx === 0 ? f.count : ''} | ${name} | ${s.n} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.max)} | ${s.misses} |`);
    });
    const counts = Object.entries(f.counts).filter(([, n]) => n > 0);
    if (counts.length > 0) out.push(`| | | ${counts.map(([k, n]) => `${k}: ${n}`).join(', ')} (total) | | | | | |`);
  }
  out.push('', 'Measures: *new leader* = fault to the first leader record of a newer term; *pods running elsewhere* = fault to the last of the node\'s pods Running on another node; *pod processes gone* = fault to no process of the node\'s pods in the process table; *settled* = heal to a leader in office and every node Ready. A miss is a measure that did not happen in its time (agent faults: budget + 5 s for processes, budget + 30 s for pods).');
  out.push('', '| fault | what it is |', '|---|---|');
  for (const [kind, f] of Object.entries(r.faults)) out.push(`| ${kind} | ${f.description} |`);
  out.push('', '## Load', '', '| request | ok | failed | unknown outcome | p50 | p99 |', '|---|---|---|---|---|---|');
  for (const k of ['create', 'delete', 'restart'] as const) {
    const l = r.load[k];
    out.push(`| ${k} | ${l.ok} | ${l.failed} | ${l.unknown} | ${ms(l.latency.p50)} | ${ms(l.latency.p99)} |`);
  }
  const bad = Object.entries(r.invariants).filter(([, v]) => v.episodes > 0);
  if (bad.length > 0) {
    out.push('', '## Violations (first examples)', '');
    for (const [kind, v] of bad) {
      out.push(`### ${kind}: ${v.description}`, '');
      for (const e of v.examples.slice(0, 5)) out.push(`- ${e.startedAt} (${ms(e.durationMs)}): ${e.detail.replace(/\n/g, ' ').slice(0, 400)}`);
      out.push('');
    }
  }
  return out.join('\n') + '\n';
}

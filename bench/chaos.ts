#!/usr/bin/env node
/**
 * The chaos run: a real cluster (3-member etcd, 3 controllers, 3
 * process-runtime agents and a simulated one) under continuous pod load,
 * faults injected on a schedule, and an independent checker reading the
 * process table and etcd. Writes a Markdown and a JSON report and exits
 * non-zero on any violation (or a fault the harness could not inject).
 *
 *   npm run chaos                     # medium schedule (29 faults, about 7 minutes)
 *   npm run chaos -- --short          # about two minutes of faults (what npm test runs)
 *   npm run chaos -- --full --report docs/chaos-report.md
 *   npm run chaos -- --leader-kill 5 --agent-partition 2 ...   # any counts (others 0 when one is given)
 *   npm run chaos -- --agent-arg=--fence-after --agent-arg=4  # flags for every agent (or --controller-arg)
 *
 * Needs root for the silent partitions (network namespaces, iptables); --no-netns skips them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FAULT_KINDS, killChildrenOnSignals, PROFILES, renderMarkdown, runChaos, type FaultCounts, runDir } from '@berth/devcluster';

killChildrenOnSignals();
const faultFlags = Object.fromEntries(FAULT_KINDS.map((k) => [k, { type: 'string' as const }]));
const { values } = parseArgs({
  options: {
    short: { type: 'boolean', default: false },
    full: { type: 'boolean', default: false },
    ...faultFlags,
    pods: { type: 'string', default: '24' },
    simulate: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    settle: { type: 'string', default: '10' },
    'heartbeat-ttl': { type: 'string', default: '4' },
    'node-grace': { type: 'string', default: '5' },
    'lease-ttl': { type: 'string', default: '4' },
    'slow-hold': { type: 'string' },
    gap: { type: 'string', default: '2000' },
    'proc-interval': { type: 'string', default: '150' },
    'etcd-interval': { type: 'string', default: '1000' },
    'no-netns': { type: 'boolean', default: false },
    'agent-arg': { type: 'string', multiple: true, default: [] },
    'controller-arg': { type: 'string', multiple: true, default: [] },
    out: { type: 'string' },
    report: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  const doc = fs.readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]!.split('/**')[1] ?? '';
  console.log(doc.replace(/^ \*( |$)/gm, ''));
  process.exit(0);
}

function num(name: string, raw: string | undefined, min = 0): number {
  const n = Number(raw);
  if (raw === undefined || !Number.isFinite(n) || n < min) {
    console.error(`--${name} must be a number >= ${min}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const given = FAULT_KINDS.filter((k) => (values as Record<string, unknown>)[k] !== undefined);
let faults: FaultCounts;
if (given.length > 0) faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, given.includes(k) ? num(k, (values as Record<string, unknown>)[k] as string) : 0])) as FaultCounts;
else faults = PROFILES[values.full ? 'full' : values.short ? 'short' : 'medium'];

const options = {
  faults,
  pods: num('pods', values.pods, 1),
  simulate: num('simulate', values.simulate, 1),
  seed: num('seed', values.seed),
  settleS: num('settle', values.settle, 1),
  heartbeatTtlS: num('heartbeat-ttl', values['heartbeat-ttl'], 1),
  nodeGraceS: num('node-grace', values['node-grace'], 1),
  leaseTtlS: num('lease-ttl', values['lease-ttl'], 2),
  slowHoldS: num('slow-hold', values['slow-hold'] ?? (values.short ? '10' : '20'), 1),
  gapMs: num('gap', values.gap),
  procIntervalMs: num('proc-interval', values['proc-interval'], 20),
  etcdIntervalMs: num('etcd-interval', values['etcd-interval'], 100),
  netns: !values['no-netns'],
  agentArgs: values['agent-arg'],
  controllerArgs: values['controller-arg'],
};
const dir = values.out ?? runDir('berth-chaos-');
fs.mkdirSync(dir, { recursive: true });
const stamp = () => new Date().toISOString().slice(11, 23);
try {
  const report = await runChaos({
    ...options,
    dir,
    log: (line) => console.log(`${stamp()} ${line}`),
  });
  const md = renderMarkdown(report);
  if (values.report !== undefined) {
    fs.mkdirSync(path.dirname(values.report), { recursive: true });
    fs.writeFileSync(values.report, md);
    fs.writeFileSync(values.report.replace(/\.md$/, '') + '.json', JSON.stringify(report, null, 2) + '\n');
  }
  console.log(`\n${md}`);
  console.log(`report: ${path.join(dir, 'chaos-report.md')} and .json${values.report ? `, copied to ${values.report}` : ''}; logs in ${dir}`);
  process.exit(report.violations === 0 && report.harnessErrors.length === 0 ? 0 : 1);
} catch (err) {
  console.error(`chaos run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  console.error(`logs in ${dir}`);
  process.exit(2);
}

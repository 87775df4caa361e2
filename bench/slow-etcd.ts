/**
 * A slow etcd: three controllers and two agents reach etcd through a proxy
 * that delays everything etcd sends by a random one-way latency (in order),
 * under a steady load of pod creates and deletes. Reports whether any
 * process exited, how many terms went by, how the API answered, and what
 * the controllers and agents logged about their etcd streams, leases and
 * nodes. The controllers run the product's default lease TTL (`--lease-ttl`
 * to compare another).
 *
 *   node bench/dist/slow-etcd.js [--seconds 60] [--min-ms 75] [--max-ms 225] [--lease-ttl S]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AgentProcess, ControllerProcess, EtcdServer, killChildrenOnSignals, TcpProxy, waitFor, runDir } from '@berth/devcluster';
import { machineSummary } from './machine.js';

killChildrenOnSignals();
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    'min-ms': { type: 'string', default: '75' },
    'max-ms': { type: 'string', default: '225' },
    'lease-ttl': { type: 'string' },
  },
});
const leaseTtl = values['lease-ttl'] === undefined ? undefined : Number(values['lease-ttl']);
const seconds = Number(values.seconds);
const delay = { minMs: Number(values['min-ms']), maxMs: Number(values['max-ms']) };

const dir = runDir('berth-slow-etcd-');
const etcd = await EtcdServer.start({ dataDir: path.join(dir, 'etcd'), logDir: dir });
const proxy = await TcpProxy.start(etcd.clientPort);
const controllers = await Promise.all(['c1', 'c2', 'c3'].map((id) => ControllerProcess.start({ id, etcd: proxy.endpoint, logDir: dir, ...(leaseTtl === undefined ? {} : { leaseTtl }) })));
const agents = await Promise.all(['n1', 'n2'].map((name) => new AgentProcess({ name, etcd: proxy.endpoint, logDir: dir, runtime: 'simulated', cpu: 64, memoryMiB: 65536 }).start()));
await waitFor(async () => (await controllers[0]!.request('GET', '/v1/nodes')).body.items?.filter((n: { status: string }) => n.status === 'Ready').length === 2, { what: 'nodes Ready' });
const termOf = async () => (await controllers[0]!.request('GET', '/v1/leader')).body.term as number;
const firstTerm = await termOf();
const termsTaken = async () => (await Promise.all(controllers.map((c) => c.metric('berth_leader_terms_total')))).reduce<number>((sum, n) => sum + (n ?? 0), 0);
const termsBefore = await termsTaken();
const logFiles = [...controllers.map((c) => `${c.id}.log`), ...agents.map((a) => `agent-${a.name}.log`)];
const logLines = () => new Map(logFiles.map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8').split('\n')]));
const linesBefore = logLines();
proxy.setDelay(delay);
console.log(`# ${machineSummary()}`);
console.log(`# etcd answers delayed ${delay.minMs}-${delay.maxMs} ms one way for ${seconds} s; logs in ${dir}`);

const until = Date.now() + seconds * 1000;
let ok = 0;
let failed = 0;
const deletes = new Map<string, number>();
const latencies: number[] = [];
let n = 0;
while (Date.now() < until) {
  const c = controllers[n % 3]!;
  const name = `p${n++}`;
  const t0 = Date.now();
  try {
    const res = await c.request('POST', '/v1/pods', { name, command: ['sleep', '1'], cpu: 0.1 });
    if (res.status === 201) ok += 1;
    else failed += 1;
    if (n > 5) {
      const del = await c.request('DELETE', `/v1/pods/p${n - 5}`);
      deletes.set(String(del.status), (deletes.get(String(del.status)) ?? 0) + 1);
    }
  } catch {
    failed += 1;
  }
  latencies.push(Date.now() - t0);
  const dead = [...controllers.map((x) => x.process), ...agents.map((a) => a.process)].filter((p) => !p.running);
  if (dead.length > 0) {
    console.log(`PROCESS EXITED: ${dead.map((p) => p.name).join(', ')}`);
    for (const p of dead) console.log(p.recentOutput(30));
    break;
  }
}
proxy.setDelay(undefined);
const lastTerm = await termOf().catch(() => NaN);
const newTerms = (await termsTaken().catch(() => NaN)) - termsBefore;
// What the controllers and agents logged while etcd was slow (before any shutdown message).
const WARNINGS = [
  'no longer leader',
  'informer watch disconnected',
  'election lease keepalive failed',
  'campaign failed',
  'etcd unreachable',
  'etcd watch stream fault contained',
  'lease not renewed within its TTL',
  'lease keepalives went unanswered',
  'lease keepalive stream dropped',
  're-establishing heartbeat',
];
const logged = new Map<string, number>();
for (const [file, lines] of logLines()) {
  for (const line of lines.slice(linesBefore.get(file)?.length ?? 0)) {
    for (const what of WARNINGS) if (line.includes(`"msg":"${what}`)) logged.set(what, (logged.get(what) ?? 0) + 1);
    const status = /"status":"(NotReady|Dead)".*"msg":"node status changed"/.exec(line)?.[1];
    if (status !== undefined) logged.set(`node ${status}`, (logged.get(`node ${status}`) ?? 0) + 1);
  }
}
const exited = [...controllers.map((x) => x.process), ...agents.map((a) => a.process)].filter((p) => !p.running).map((p) => p.name);
latencies.sort((a, b) => a - b);
const q = (f: number) => latencies[Math.min(latencies.length - 1, Math.floor(f * latencies.length))];
console.log(`creates answered 201: ${ok}, failed: ${failed}; create+delete p50 ${q(0.5)} ms, p99 ${q(0.99)} ms`);
console.log(`deletes by status: ${[...deletes].map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'}`);
console.log(`terms during the run: ${firstTerm} -> ${lastTerm}; terms taken: ${newTerms}`);
console.log(`logged: ${[...logged].map(([k, v]) => `${k}: ${v}`).join(', ') || 'no stream, lease, leadership or node warnings'}`);
console.log(`processes exited: ${exited.length === 0 ? 'none' : exited.join(', ')}`);
for (const a of agents) await a.process.stop('SIGTERM');
for (const c of controllers) await c.process.stop('SIGTERM');
await proxy.close();
await etcd.destroy();
process.exit(exited.length === 0 ? 0 : 1);

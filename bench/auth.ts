#!/usr/bin/env node
/**
 * The cost of authentication on the hot path: GET /v1/pods/:name (a read
 * from the watch cache) on three replicas of one etcd, one with auth off,
 * one with auth on (a bearer token hashed and looked up per request, the
 * role checked) and limits off, and one with auth and the per-token rate
 * limiter on (with a limit no run reaches, so its bookkeeping is measured,
 * not its refusals). Runs alternate (off, on, on+limits) for several rounds,
 * so a slow stretch of the machine hits each alike; the median round counts.
 *
 *   npm run bench:auth -- [--concurrency 16] [--seconds 5] [--rounds 3] [--pods 50]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ControllerProcess, EtcdServer, killChildrenOnSignals, runDir } from '@berth/devcluster';
import { closedLoop, type LoadResult } from './load.js';
import { machineSummary, summarize } from './machine.js';

const { values: o } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    pods: { type: 'string', default: '50' },
  },
});
const concurrency = Number(o.concurrency);
const durationMs = Number(o.seconds) * 1000;
const warmupMs = Number(o.warmup) * 1000;
const rounds = Number(o.rounds);
const podCount = Number(o.pods);

killChildrenOnSignals();
const dir = runDir('berth-bench-auth-');
const etcd = await EtcdServer.start({ dataDir: path.join(dir, 'etcd'), logDir: dir });
const tokenFile = path.join(dir, 'admin-token');
const noLimits = ['--rate-limit-read', '0', '--rate-limit-write', '0'];
const controllers: ControllerProcess[] = [];
try {
  const open = await ControllerProcess.start({ id: 'open', etcd: etcd.endpoint, logDir: dir });
  controllers.push(open);
  const authed = await ControllerProcess.start({ id: 'auth', etcd: etcd.endpoint, logDir: dir, adminTokenFile: tokenFile, extraArgs: noLimits });
  controllers.push(authed);
  const limited = await ControllerProcess.start({ id: 'limits', etcd: etcd.endpoint, logDir: dir, adminTokenFile: tokenFile, extraArgs: ['--rate-limit-read', '1000000', '--rate-limit-write', '1000000'] });
  controllers.push(limited);
  for (const c of controllers) await c.waitReady();
  // A viewer token, as a dashboard or a monitoring script would hold (not the bootstrap admin).
  const created = await authed.request('POST', '/v1/tokens', { name: 'bench-viewer', role: 'viewer' });
  if (created.status !== 201) throw new Error(`POST /v1/tokens: ${created.status} ${JSON.stringify(created.body)}`);
  const viewer = (created.body as { token: string }).token;
  for (let i = 0; i < podCount; i++) {
    const res = await authed.request('POST', '/v1/pods', { name: `bench-${i}`, command: ['sleep', '60'], cpu: 0.1, memoryMiB: 16, nodeSelector: { fits: 'nowhere' } });
    if (res.status !== 201) throw new Error(`POST /v1/pods: ${res.status} ${JSON.stringify(res.body)}`);
  }
  const podPath = `/v1/pods/bench-${Math.floor(podCount / 2)}`;
  // Every replica's cache must hold the pods before it is measured.
  for (const c of controllers) await c.request('GET', podPath).then((r) => r.status);

  const variants = [
    { name: 'auth off', c: open, headers: undefined },
    { name: 'auth on (viewer token), no rate limits', c: authed, headers: { authorization: `Bearer ${viewer}` } },
    { name: 'auth on (viewer token), rate limiter on', c: limited, headers: { authorization: `Bearer ${viewer}` } },
  ];
  const results = new Map<string, LoadResult[]>(variants.map((v) => [v.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const res = await closedLoop({ origin: v.c.url, path: podPath, concurrency, durationMs, warmupMs, ...(v.headers === undefined ? {} : { headers: v.headers }) });
      if (res.non2xx > 0 || res.errors > 0) throw new Error(`${v.name}: ${res.non2xx} non-2xx, ${res.errors} errors`);
      results.get(v.name)!.push(res);
      console.error(`round ${r + 1} ${v.name}: ${res.perSecond.toFixed(0)} req/s, p50 ${res.p50.toFixed(2)} ms, p99 ${res.p99.toFixed(2)} ms`);
    }
  }
  const median = (name: string) => summarize(results.get(name)!.map((x) => x.perSecond)).median;
  const p99 = (name: string) => summarize(results.get(name)!.map((x) => x.p99)).median;
  const base = median('auth off');
  console.log(`# auth on the hot path: GET ${podPath.replace(/bench-\d+/, 'NAME')} — ${new Date().toISOString().slice(0, 10)}`);
  console.log(`# machine: ${machineSummary()}`);
  console.log(`# one etcd, three replicas (one per variant), ${podCount} pods in the cache; closed loop, concurrency ${concurrency}, ${durationMs / 1000} s after ${warmupMs / 1000} s warm-up, ${rounds} rounds alternating the variants`);
  console.log('| variant | req/s (median of rounds) | p99 ms (median) | vs auth off |');
  console.log('|---|---|---|---|');
  for (const v of variants) console.log(`| ${v.name} | ${median(v.name).toFixed(0)} | ${p99(v.name).toFixed(2)} | ${(median(v.name) / base).toFixed(2)} x |`);
  console.log(`\nauth on / off: ${(median(variants[1]!.name) / base).toFixed(2)} x, with the rate limiter ${(median(variants[2]!.name) / base).toFixed(2)} x (target >= 0.9 x)`);
} finally {
  for (const c of controllers) await c.process.stop('SIGTERM');
  await etcd.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

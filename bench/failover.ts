#!/usr/bin/env node
/**
 * Failover benchmark: N leader SIGKILLs and N leader SIGTERMs on a local
 * 3-replica cluster. Measures the time from the signal to the new leader's
 * first fenced write (its leader record, seen through an etcd watch).
 *
 *   npm run build && node bench/dist/failover.js [--kills 20] [--terms 20] [--ttl 2]
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { leaderRecordKey, type LeaderRecord } from '@berth/core';
import { createEtcdClient, Informer } from '@berth/store';
import { killChildrenOnSignals, LocalCluster, waitFor } from '@berth/devcluster';
import { machineSummary, summarize } from './machine.js';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '20' },
    terms: { type: 'string', default: '20' },
    ttl: { type: 'string', default: '2' },
  },
});
const kills = Number(values.kills);
const terms = Number(values.terms);
const ttl = Number(values.ttl);

killChildrenOnSignals();
const cluster = await LocalCluster.start({ leaseTtl: ttl });
const client = createEtcdClient(cluster.etcd.endpoint);
const records = new Informer<LeaderRecord>(client, leaderRecordKey, pino({ level: 'silent' }));
await records.start();

/** Resolves with the time the first record of a term above `term` arrived. */
function nextRecord(term: number): Promise<{ at: number; record: LeaderRecord }> {
  return new Promise((resolve) => {
    const onChange = () => {
      const rec = records.list()[0]?.value;
      if (rec && rec.term > term) {
        records.off('change', onChange);
        resolve({ at: performance.now(), record: rec });
      }
    };
    records.on('change', onChange);
    onChange();
  });
}

async function round(signal: 'SIGKILL' | 'SIGTERM'): Promise<number> {
  const leader = await cluster.waitForAgreedLeader({ timeoutMs: 30_000 });
  await Promise.all(cluster.controllers.map((c) => c.waitReady()));
  const term = (await leader.leader()).term ?? 0;
  const next = nextRecord(term);
  const t0 = performance.now();
  leader.process.signal(signal);
  const { at, record } = await next;
  await leader.process.waitExit();
  if (record.leaderId === leader.id) throw new Error('the killed replica wrote a new term');
  await leader.start(); // back to three replicas before the next round
  return at - t0;
}

const results: Record<string, number[]> = { SIGKILL: [], SIGTERM: [] };
try {
  for (let i = 0; i < kills; i++) results.SIGKILL!.push(await round('SIGKILL'));
  for (let i = 0; i < terms; i++) results.SIGTERM!.push(await round('SIGTERM'));
} finally {
  await records.stop();
  client.close();
  await cluster.stop();
}

console.log(`# failover benchmark (lease TTL ${ttl} s, 3 replicas, 1 etcd)`);
console.log(`# machine: ${machineSummary()}`);
console.log('| signal | n | median ms | p95 ms | max ms | target |');
console.log('|---|---|---|---|---|---|');
for (const [signal, target] of [
  ['SIGKILL', `p95 <= ${ttl * 1000 + 500} ms (TTL + 0.5 s)`],
  ['SIGTERM', 'p95 <= 150 ms'],
] as const) {
  const s = summarize(results[signal]!);
  if (s.n === 0) continue;
  console.log(`| ${signal} | ${s.n} | ${s.median.toFixed(0)} | ${s.p95.toFixed(0)} | ${s.max.toFixed(0)} | ${target} |`);
}
await waitFor(() => true);

#!/usr/bin/env node
/**
 * Failover of the compose cluster by `docker kill`: brings compose.ha.yml up
 * (host-network variant, 3 etcd members, c1..c3, two docker-runtime agents)
 * and runs the failover demo (`berth demo failover`) N times, each killing
 * whichever replica leads then. Reports the demo's own numbers: time from just
 * before `docker kill` until every surviving replica names the same new leader,
 * and time from `docker start` until the killed replica serves as a follower.
 *
 *   bash scripts/dockerd.sh start && eval "$(bash scripts/dockerd.sh env)"
 *   deploy/docker/build-local-image.sh && deploy/docker/build-etcd-image.sh && deploy/docker/build-test-images.sh
 *   npm run build && node bench/dist/compose-failover.js [--rounds 20] [--pods 2]
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ComposeStack, repoRoot } from '@berth/devcluster';
import { machineSummary, summarize } from './machine.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' },
    pods: { type: 'string', default: '2' },
    image: { type: 'string', default: 'berth-test/busybox:local' },
  },
});
const rounds = Number(values.rounds);
const CLI = path.join(repoRoot, 'apps/cli/dist/main.js');

function demo(stack: ComposeStack): Promise<string> {
  const args = ['demo', 'failover', '--servers', stack.controllerUrls.join(','), '--project', stack.project, '--image', values.image!, '--pods', values.pods!];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 180_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`demo failed (${err.message}):\n${stdout}\n${stderr}`)) : resolve(stdout),
    );
  });
}

const stack = await ComposeStack.create();
const elected: number[] = [];
const rejoined: number[] = [];
try {
  const up = performance.now();
  await stack.compose('up', '-d', '--no-build');
  await stack.agreedLeader();
  console.log(`stack up and a leader agreed in ${((performance.now() - up) / 1000).toFixed(1)} s`);
  for (let i = 1; i <= rounds; i++) {
    const out = await demo(stack);
    const e = /✔ (c\d) elected ([\d.]+) s after the kill/.exec(out);
    const r = /✔ (c\d) rejoined as a follower after ([\d.]+) s/.exec(out);
    if (!e || !r || !out.includes('PASS')) throw new Error(`round ${i}: a claim failed:\n${out}`);
    elected.push(Number(e[2]) * 1000);
    rejoined.push(Number(r[2]) * 1000);
    console.log(`round ${i}: killed ${r[1]}, ${e[1]} elected after ${e[2]} s, ${r[1]} back as a follower after ${r[2]} s`);
  }
} finally {
  await stack.destroy();
}

const row = (name: string, v: number[]) => {
  const s = summarize(v);
  return `| ${name} | ${s.n} | ${s.min.toFixed(0)} | ${s.median.toFixed(0)} | ${s.p95.toFixed(0)} | ${s.max.toFixed(0)} |`;
};
console.log(`\nMachine: ${machineSummary()}; etcd: 3 members in containers`);
console.log('| measure | n | min ms | median ms | p95 ms | max ms |');
console.log('|---|---|---|---|---|---|');
console.log(row('docker kill -> all survivors name the new leader', elected));
console.log(row('docker start -> killed replica serves as follower', rejoined));

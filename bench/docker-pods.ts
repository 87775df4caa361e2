#!/usr/bin/env node
/**
 * Docker pods: one controller (the leader), one etcd and one agent with the
 * docker runtime against a private Docker engine started for this run
 * (BERTH_DOCKERD_DIR=/tmp/berth-dockerd-bench). P busybox pods are created
 * through the REST API (POST /v1/pods, a few in flight); per pod it measures
 * create-to-Running, from the POST being sent to the phase Running seen through
 * a pods Informer in this process, with the time to the binding and to the
 * agent's Starting on the way. In the same run, P bare sequential
 * `docker run -d --network host` of the same image against the same engine give
 * the engine's share. Every container is removed and the engine is stopped at
 * the end, also on errors.
 *
 *   npm run build && node bench/dist/docker-pods.js [--pods 50] [--in-flight 5] [--rate PODS_PER_S]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AgentProcess, killChildrenOnSignals, LocalCluster, repoRoot, waitFor, runDir } from '@berth/devcluster';
import { machineSummary } from './machine.js';
import { measurePodStarts, pct, watchNodesAndPods } from './pod-starts.js';

const { values } = parseArgs({
  options: { pods: { type: 'string', default: '50' }, 'in-flight': { type: 'string', default: '5' }, rate: { type: 'string', default: '0' } },
});
/** Pods created per second (0: as fast as the in-flight limit allows, i.e. a burst). */
const rate = Number(values.rate);
const podCount = Number(values.pods);
const inFlight = Number(values['in-flight']);
const IMAGE = 'berth-test/busybox:local';
const ENGINE_DIR = '/tmp/berth-dockerd-bench'; // never the shared /tmp/berth-dockerd

const engineEnv = { ...process.env, BERTH_DOCKERD_DIR: ENGINE_DIR };
const sh = (script: string, env: NodeJS.ProcessEnv = engineEnv) =>
  execFileSync('bash', [path.join(repoRoot, script.split(' ')[0]!), ...script.split(' ').slice(1)], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();

// The engine is stopped on every way out: normally in `finally`, and from an
// 'exit' handler after an uncaught error or a signal (killChildrenOnSignals exits).
let engineStarted = false;
const stopEngine = () => {
  if (!engineStarted) return;
  engineStarted = false;
  try {
    sh('scripts/dockerd.sh stop');
  } catch (err) {
    console.error(`stopping the bench engine failed: ${(err as Error).message}`);
  }
};
process.on('exit', stopEngine);
killChildrenOnSignals();

engineStarted = true;
sh('scripts/dockerd.sh start');
const dockerHost = /DOCKER_HOST=(\S+)/.exec(sh('scripts/dockerd.sh env'))?.[1];
if (dockerHost === undefined) throw new Error('scripts/dockerd.sh env printed no DOCKER_HOST');
const dockerEnv = { ...process.env, DOCKER_HOST: dockerHost };
const docker = (...args: string[]) => execFileSync('docker', args, { env: dockerEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const bareIds: string[] = [];
const removeBerthContainers = () => {
  const ids = docker('ps', '-aq', '--filter', 'label=berth.pod').split('\n').filter(Boolean);
  if (ids.length > 0) docker('rm', '-f', ...ids);
  return ids.length;
};

let dir: string | undefined;
let cluster: LocalCluster | undefined;
let agent: AgentProcess | undefined;
try {
  sh('deploy/docker/build-test-images.sh', dockerEnv);
  const engine = docker('version', '--format', '{{.Server.Version}}');
  const driver = docker('info', '--format', '{{.Driver}}');

  // The engine's share: bare sequential `docker run -d` of the same image, same engine.
  const bare: number[] = [];
  for (let i = 0; i < podCount; i++) {
    const t = performance.now();
    bareIds.push(docker('run', '-d', '--network', 'host', IMAGE, 'sleep', '3600'));
    bare.push(performance.now() - t);
  }
  docker('rm', '-f', ...bareIds.splice(0));

  dir = runDir('berth-bench-docker-');
  cluster = await LocalCluster.start({ dir, controllers: 1, controllerArgs: ['--log-level', 'warn'] });
  const leader = await cluster.waitForAgreedLeader();
  const { nodes, pods, close } = await watchNodesAndPods(cluster.etcd.endpoint);
  agent = new AgentProcess({
    name: 'dock', etcd: cluster.etcd.endpoint, logDir: dir, runtime: 'docker', cpu: 64, memoryMiB: 65536,
    env: { DOCKER_HOST: dockerHost },
  });
  await agent.start();
  await waitFor(() => nodes.list().some((i) => i.value.name === 'dock' && i.value.status === 'Ready'), { what: 'node dock Ready', timeoutMs: 30_000 });

  const { toRunning, toBound, toStarting, startingToRunning, wallMs: wall } = await measurePodStarts({
    leader, pods, count: podCount, inFlight, rate,
    name: (i) => `bench-${i}`,
    body: (name) => ({ name, image: IMAGE, command: ['sleep', '3600'], cpu: 0.1, memoryMiB: 32 }),
  });
  const containers = docker('ps', '-q', '--filter', 'label=berth.pod').split('\n').filter(Boolean).length;

  await close();

  const ms = (v: number) => v.toFixed(0);
  console.log(`\n# docker pods (1 controller = leader, 1 etcd, 1 agent --runtime docker; ${podCount} pods of ${IMAGE} sleep 3600, 0.1 core, 32 MiB, ${inFlight} POSTs in flight, ${rate > 0 ? `${rate} pods/s` : 'burst'})`);
  console.log(`# machine: ${machineSummary()}, dockerd ${engine} (${driver})`);
  console.log(`# containers running with label berth.pod: ${containers}`);
  console.log(`# p50 / p99 ms of the way there: POST to bound ${ms(pct(toBound, 0.5))} / ${ms(pct(toBound, 0.99))}, POST to Starting ${ms(pct(toStarting, 0.5))} / ${ms(pct(toStarting, 0.99))}, Starting to Running (the agent's docker create + start) ${ms(pct(startingToRunning, 0.5))} / ${ms(pct(startingToRunning, 0.99))}`);
  console.log(`# first POST to last Running: ${ms(wall)} ms for ${podCount} pods; ${podCount} bare runs back to back: ${ms(bare.reduce((a, b) => a + b, 0))} ms`);
  console.log('| pods | p50 create-to-Running ms | p99 ms | max ms | bare `docker run -d` p50 ms | p99 ms |');
  console.log('|---|---|---|---|---|---|');
  console.log(`| ${podCount} | ${ms(pct(toRunning, 0.5))} | ${ms(pct(toRunning, 0.99))} | ${ms(Math.max(...toRunning))} | ${ms(pct(bare, 0.5))} | ${ms(pct(bare, 0.99))} |`);
} finally {
  if (agent) await agent.process.stop('SIGTERM', 10_000);
  try {
    if (bareIds.length > 0) docker('rm', '-f', ...bareIds);
    const n = removeBerthContainers();
    console.log(`# removed ${n} Berth containers`);
  } catch (err) {
    console.error(`removing containers failed: ${(err as Error).message}`);
  }
  if (cluster) await cluster.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  stopEngine();
}

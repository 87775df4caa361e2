#!/usr/bin/env node
import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { FORCE_STOP_MS, isBerthError } from '@berth/core';
import { createEtcdClient, EventRecorder, LeaseKeeper, onWatchIncident, urlHost } from '@berth/store';
import { parseConfig } from './config.js';
import { NodeCredential } from './credential.js';
import { Fencer } from './fence.js';
import { NodeAgent } from './node-agent.js';
import { OwnKeyWatcher } from './own-keys.js';
import { PodReconciler } from './pod-reconciler.js';
import { DockerRuntime } from './docker-runtime.js';
import { PodIsolation } from './isolation/pod-isolation.js';
import { PodUidAllocator } from './isolation/users.js';
import { ProcessRuntime } from './process-runtime.js';
import { SimulatedRuntime, type Runtime } from './runtime.js';
import { buildAgentServer } from './server.js';
import { UsageSampler } from './usage.js';

const config = await parseConfig(process.argv);
const log = pino({ level: config.logLevel, base: { agent: config.name } });
if (config.addressPlan.warning !== undefined) log.warn({ advertise: config.advertiseHost }, config.addressPlan.warning);
onWatchIncident((incident) => log.warn({ incident }, 'etcd watch stream fault contained'));
const client = createEtcdClient(config.etcd, config.etcdCredentials ? { credentials: config.etcdCredentials } : {});
const credential = new NodeCredential();
const keeper = new LeaseKeeper(client, config.heartbeatIntervalMs, log.child({ component: 'leases' }));
const agents: NodeAgent[] = [];
let stopping = false;
// One reconciler (one pod watch cache) for every node of the process: thousands of simulated nodes share it.
const reconciler = new PodReconciler({
  client,
  log: log.child({ component: 'pods' }),
  stopTimeoutMs: config.stopTimeoutMs,
  restartBackoffMaxMs: config.restartBackoffMaxMs,
  ...(config.runtime === 'docker' ? { usageIntervalMs: config.reportIntervalMs } : {}),
});

/**
 * Ends and removes every pod a node's runtime holds (they leave the node for
 * good): killed at once, or stopped with `graceMs` of grace.
 */
async function clearNode(a: NodeAgent, how: { graceMs: number } | 'kill'): Promise<void> {
  const { runtime } = a.opts;
  const pods = await runtime.list().catch(() => []);
  await Promise.allSettled(
    pods.map(async (p) => {
      if (how === 'kill') await runtime.kill(p.id, FORCE_STOP_MS);
      else if (p.state === 'running' || p.state === 'paused') await runtime.stop(p.id, how.graceMs);
      await runtime.remove(p.id);
    }),
  );
  if (pods.length > 0) log.warn({ node: a.opts.name, pods: pods.length, how: how === 'kill' ? 'killed' : 'stopped' }, 'ended every pod of a node this agent no longer runs');
}

async function shutdown(reason: string, deregister: boolean, code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ reason, deregister }, 'agent stopping');
  // Long enough for the leader to evict every pod (each stop takes up to --stop-timeout) and the rest below.
  const force = setTimeout(() => process.exit(code || 1), config.stopTimeoutMs + 15_000);
  force.unref();
  if (deregister) {
    // The node leaves the cluster like a drained one: marked deregistered, the leader evicts its pods,
    // this agent stops each and says so, and only then are they rescheduled: never two copies at once.
    await Promise.allSettled(
      agents.map(async (a) => {
        await a.markDeregistered();
        if (!(await reconciler.drained(a.id, config.stopTimeoutMs + 3000))) log.warn({ node: a.opts.name }, 'pods were not all evicted in time (no leader?); stopping them here');
      }),
    );
  }
  // (The fence guards the pods until here: a leader may still be evicting them.)
  fencer.stop();
  await reconciler.stop().catch((err: unknown) => log.warn({ err }, 'pod reconciler did not stop cleanly'));
  if (deregister) {
    // What is left (no leader evicted it) is stopped here (3 s grace at most): it stays bound to the node,
    // which the leader declares Dead after the grace, and only then reschedules. Otherwise (a crash, a fatal
    // error) docker containers keep running for the next agent instance to adopt; process-runtime pods end
    // with this process.
    await Promise.allSettled(agents.map((a) => clearNode(a, { graceMs: 3000 })));
  }
  await Promise.allSettled(agents.map((a) => a.stop(deregister)));
  for (const a of agents) a.opts.runtime.close?.();
  keeper.close();
  client.close();
  process.exit(code);
}

const ownKeys = new OwnKeyWatcher(client, config.simulate > 1 ? 'prefixes' : 'keys', log, () => {
  for (const a of agents) a.verify().catch((err: unknown) => log.warn({ err }, 'could not verify node keys'));
});
keeper.on('lost', (leaseId) => agents.find((a) => a.lease === leaseId)?.onLeaseLost(leaseId));

const server = buildAgentServer(() => agents, log.child({ component: 'api' }), reconciler, credential);
await server.listen({ host: config.host, port: config.port });
const port = (server.server.address() as { port: number }).port;
const address = `http://${urlHost(config.advertiseHost)}:${port}`;

const sampler = new UsageSampler();
// One uid allocator for every node of this process; claims are host-wide files (several agents may share a host).
const uids = config.runtime === 'process' && config.runAs.kind === 'per-pod' ? new PodUidAllocator(config.runAs, fs.existsSync('/run') ? '/run/berth/pod-uids' : path.join(os.tmpdir(), 'berth-pod-uids')) : undefined;
/** A process-runtime node's runtime, with its pods' isolation; a configuration that cannot work ends the agent. */
function processRuntime(name: string): ProcessRuntime {
  const nodeLog = log.child({ component: 'process-runtime', node: name });
  try {
    const isolation = new PodIsolation({ node: name, runAs: config.runAs, ...(uids ? { uids } : {}), limits: config.podLimits, pidsLimit: config.pidsLimit, log: nodeLog });
    return new ProcessRuntime(config.simulate > 0 ? path.join(config.dataDir, name) : config.dataDir, nodeLog, isolation);
  } catch (err) {
    log.fatal({ err }, (err as Error).message);
    process.exit(2);
  }
}
const names = config.simulate > 0 ? Array.from({ length: config.simulate }, (_, i) => `${config.name}-${i}`) : [config.name];
for (const name of names) {
  let runtime: Runtime;
  if (config.runtime === 'simulated') runtime = new SimulatedRuntime();
  else if (config.runtime === 'process') runtime = processRuntime(name);
  else {
    // The node id is known once the agent registered; the runtime is first used after that (reconciler.addNode).
    runtime = new DockerRuntime({ nodeId: () => agents.find((a) => a.opts.runtime === runtime)!.id, log: log.child({ node: name, component: 'docker' }), pidsLimit: config.pidsLimit, requestTimeoutMs: config.runtimeRequestTimeoutMs });
  }
  const capacity = { cpu: config.cpu, memoryMiB: config.memoryMiB };
  agents.push(
    new NodeAgent(
      {
        client,
        keeper,
        ownKeys,
        log: log.child({ node: name }),
        onFatal: (node, reason, deleted) => {
          log.error({ node, reason }, 'node cannot continue');
          // Its pods are no longer this process's to run (another agent holds the node, or it was deleted).
          const gone = agents.find((a) => a.opts.name === node);
          if (gone !== undefined) reconciler.removeNode(gone.id);
          // A deleted node's pods are rescheduled once the leader's budget for it is over: kill them now
          // (docker containers would outlive this process), before that. A new holder adopts docker
          // containers on a shared engine; process-runtime pods it cannot adopt, and starts again itself.
          const end = gone !== undefined && (deleted || gone.opts.runtime.kind === 'process');
          const killed = end ? clearNode(gone, 'kill') : Promise.resolve();
          if (config.simulate === 0) void killed.then(() => shutdown(reason, false, 3));
        },
        onRuntimeBack: (nodeId) => reconciler.resyncNode(nodeId),
      },
      {
        name,
        capacity,
        labels: config.labels,
        runtime,
        address,
        heartbeatTtlSeconds: config.heartbeatTtlSeconds,
        reportIntervalMs: config.reportIntervalMs,
        fenceAfterMs: config.fenceAfterMs,
        forceStopMs: FORCE_STOP_MS,
        usage: runtime.usage ? () => runtime.usage!(capacity) : () => sampler.sample(),
        credential: credential.secret,
      },
    ),
  );
}

// Watches every node from the moment it holds a heartbeat: one cut off from etcd kills its pods before the leader moves them.
const fencer = new Fencer(() => agents, reconciler, { fenceAfterMs: config.fenceAfterMs, forceStopMs: FORCE_STOP_MS, log: log.child({ component: 'fence' }) });
fencer.start();

process.on('SIGTERM', () => void shutdown('SIGTERM', true, 0));
process.on('SIGINT', () => void shutdown('SIGINT', true, 0));

// Register in bounded parallel batches: thousands of simulated nodes must not open thousands of requests at once.
/** Starts a node, retrying while etcd is unreachable (like a kubelet waiting for its API server). */
async function startWithRetry(a: NodeAgent): Promise<void> {
  for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
    try {
      return await a.start();
    } catch (err) {
      if (!isBerthError(err, 'ETCD_UNAVAILABLE') || stopping) throw err;
      log.warn({ node: a.opts.name, err }, 'etcd unavailable; retrying registration');
      await sleep(delay);
    }
  }
}
/** Registers a node, then hands it to the pod reconciler (after the pod cache's first list). */
async function startNode(a: NodeAgent): Promise<void> {
  await startWithRetry(a);
  await reconciler.addNode({ id: a.id, name: a.opts.name, runtime: a.opts.runtime, events: new EventRecorder(client, a.opts.name, log.child({ node: a.opts.name })) });
}
// The pod cache lists while nodes register; addNode waits for it (its list retries while etcd is away).
void reconciler.start();
const BATCH = 200;
for (let i = 0; i < agents.length; i += BATCH) {
  await Promise.all(agents.slice(i, i + BATCH).map(startNode));
}
log.info({ nodes: agents.length, address, listen: config.host, addressFrom: config.advertiseHost === config.addressPlan.advertise ? config.addressPlan.source : '--advertise-host', runtime: config.runtime, isolation: agents[0]?.opts.runtime.isolationReport?.() }, 'agent running');

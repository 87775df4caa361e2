#!/usr/bin/env node
import path from 'node:path';
import pino from 'pino';
import { isBerthError } from '@berth/core';
import { createEtcdClient, LeaseKeeper } from '@berth/store';
import { parseConfig } from './config.js';
import { NodeAgent } from './node-agent.js';
import { OwnKeyWatcher } from './own-keys.js';
import { ProcessRuntime } from './process-runtime.js';
import { SimulatedRuntime, type Runtime } from './runtime.js';
import { buildAgentServer } from './server.js';
import { UsageSampler } from './usage.js';

const config = parseConfig(process.argv);
const log = pino({ level: config.logLevel, base: { agent: config.name } });
const client = createEtcdClient(config.etcd);
const keeper = new LeaseKeeper(client, config.heartbeatIntervalMs, log.child({ component: 'leases' }));
const agents: NodeAgent[] = [];
let stopping = false;

async function shutdown(reason: string, deregister: boolean, code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ reason, deregister }, 'agent stopping');
  const force = setTimeout(() => process.exit(code || 1), 5000);
  force.unref();
  await Promise.allSettled(agents.map((a) => a.stop(deregister)));
  keeper.close();
  client.close();
  process.exit(code);
}

const ownKeys = new OwnKeyWatcher(client, config.simulate > 1 ? 'prefixes' : 'keys', log, () => {
  for (const a of agents) a.verify().catch((err: unknown) => log.warn({ err: String(err) }, 'could not verify node keys'));
});
keeper.on('lost', (leaseId) => agents.find((a) => a.lease === leaseId)?.onLeaseLost(leaseId));

const server = buildAgentServer(() => agents, log.child({ component: 'api' }));
await server.listen({ host: config.host, port: config.port });
const port = (server.server.address() as { port: number }).port;
const address = `http://${config.advertiseHost}:${port}`;

const sampler = new UsageSampler();
const names = config.simulate > 0 ? Array.from({ length: config.simulate }, (_, i) => `${config.name}-${i}`) : [config.name];
for (const name of names) {
  let runtime: Runtime;
  if (config.runtime === 'simulated') runtime = new SimulatedRuntime();
  else if (config.runtime === 'process') runtime = new ProcessRuntime(config.simulate > 0 ? path.join(config.dataDir, name) : config.dataDir);
  else {
    log.fatal('the docker runtime is not available in this build yet; use --runtime process or simulated');
    process.exit(2);
  }
  const capacity = { cpu: config.cpu, memoryMiB: config.memoryMiB };
  agents.push(
    new NodeAgent(
      {
        client,
        keeper,
        ownKeys,
        log: log.child({ node: name }),
        onFatal: (node, reason) => {
          log.error({ node, reason }, 'node cannot continue');
          if (config.simulate === 0) void shutdown(reason, false, 3);
        },
      },
      {
        name,
        capacity,
        labels: config.labels,
        runtime,
        address,
        heartbeatTtlSeconds: config.heartbeatTtlSeconds,
        reportIntervalMs: config.reportIntervalMs,
        usage: runtime.usage ? () => runtime.usage!(capacity) : () => sampler.sample(),
      },
    ),
  );
}

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
      log.warn({ node: a.opts.name, err: err.message }, 'etcd unavailable; retrying registration');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
const BATCH = 200;
for (let i = 0; i < agents.length; i += BATCH) {
  await Promise.all(agents.slice(i, i + BATCH).map(startWithRetry));
}
log.info({ nodes: agents.length, address, runtime: config.runtime }, 'agent running');

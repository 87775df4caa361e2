import path from 'node:path';
import type { Test } from 'tap';
import { keyOf, nameKey, type NodeRecord, type PodSpec } from '@berth/core';
import { AgentProcess } from '@berth/devcluster';
import { agentCaller } from './agent-api.js';
import { clientFor, etcdFor, tempDir } from './fixtures.js';
import { LeaderStandIn } from './leader-stand-in.js';
import { killPodProcesses, removeNodeCgroups } from './pod-processes.js';

/**
 * One real process-runtime agent over its own real etcd, with no controller:
 * a `LeaderStandIn` creates and binds its pods. Every pod created through
 * `createPod` is killed at teardown should one outlive the test (pods die
 * with their agent; this only keeps a failed test from leaking one).
 */
export async function processAgent(t: Test, node: string, extraArgs: readonly string[]) {
  const etcd = await etcdFor(t);
  const client = clientFor(t, etcd.endpoint);
  const logDir = tempDir(t, `berth-${node}-`);
  const dataDir = path.join(logDir, `agent-${node}-data`);
  const agent = new AgentProcess({ name: node, etcd: etcd.endpoint, logDir, runtime: 'process', extraArgs: ['--stop-timeout', '1', '--heartbeat-interval', '500', ...extraArgs] });
  const ids = new Set<string>();
  t.teardown(async () => {
    if (!t.passing()) t.comment(agent.process.recentOutput(60));
    // SIGTERM: the agent deregisters, stops its pods and exits cleanly (and writes its coverage).
    await agent.process.stop('SIGTERM', 5000);
    killPodProcesses(ids);
    const left = removeNodeCgroups(node);
    if (left.length > 0) t.comment(`cgroups left: ${left.join(', ')}`);
  });
  await agent.start();
  const nodeId = JSON.parse((await client.get(nameKey('nodes', node)).string())!) as string;
  const stand = new LeaderStandIn(client, () => nodeId, {});
  /** The agent's API, read from its node record each time (a restarted agent listens elsewhere). */
  const agentUrl = async () => (JSON.parse((await client.get(keyOf('nodes', nodeId)).string())!) as NodeRecord).address;
  /** Calls the agent's API with its node credential, as a controller does. */
  const agentApi = agentCaller(client, () => nodeId);
  return {
    etcd,
    client,
    logDir,
    dataDir,
    agent,
    nodeId,
    stand,
    /** Pod ids created through `createPod`. */
    ids,
    agentUrl,
    agentApi,
    async createPod(name: string, spec: Partial<PodSpec>): Promise<string> {
      const id = await stand.createPod(name, spec);
      ids.add(id);
      return id;
    },
    /** The pid the agent's runtime reports for a pod (its main process). */
    async pidOf(id: string): Promise<number | undefined> {
      const body = (await (await agentApi('/v1/nodes')).json()) as { items: Array<{ pods: Array<{ id: string; pid?: number }> }> };
      return body.items[0]?.pods.find((p) => p.id === id)?.pid;
    },
  };
}

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { ClusterView, CreatePodRequest } from '@berth/core';
import { BerthClient, type NodeView, type PodView } from './client.js';
import type { Palette } from './render.js';

/** `berth demo failover`: what to talk to and what to create. */
export interface FailoverDemoOptions {
  /** Every controller replica's API URL (the demo maps each to its replica id). */
  servers: string[];
  token?: string;
  /** How many pods to create before the kill. */
  pods: number;
  /** Image of the demo pods (they run `sleep 3600`). */
  image: string;
  /** Compose project whose leader container is killed; found from the containers' labels when unset. */
  project?: string;
  /** The docker CLI (it talks to the engine in DOCKER_HOST, like compose does). */
  docker: string;
  /** Leave the demo pods behind instead of deleting them at the end. */
  keep: boolean;
  /** How long to wait for pods to run and for the killed replica to rejoin. */
  timeoutMs: number;
}

/** One thing the demo set out to show, and whether it held. */
interface Claim {
  ok: boolean;
  text: string;
}

type Out = (line: string) => void;

const POLL_MS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the docker CLI; rejects with its stderr. */
function dockerCli(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout.trim());
    });
  });
}

/** Polls until `check` returns a value; undefined after the timeout. Errors count as "not yet". */
async function poll<T>(check: () => Promise<T | undefined>, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch {
      /* not yet: the replica is down or has no answer yet */
    }
    if (Date.now() >= deadline) return undefined;
    await sleep(POLL_MS);
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/**
 * The failover demo of SPEC.md section 1: shows the leader, creates pods,
 * `docker kill`s the leader's container, times the election of the next
 * leader, checks that every pod is still Running and bound exactly once (one
 * node's reservation, one container), restarts the killed container and waits
 * for it to rejoin as a follower. Returns true when every claim held.
 */
export async function failoverDemo(o: FailoverDemoOptions, out: Out, c: Palette): Promise<boolean> {
  const claims: Claim[] = [];
  const claim = (ok: boolean, text: string) => {
    claims.push({ ok, text });
    out(`  ${ok ? c.green('✔') : c.red('✘')} ${text}`);
  };
  const step = (n: number, text: string) => out(`\n${c.bold(`[${n}/6] ${text}`)}`);
  const shell = (args: string[]) => out(c.dim(`  $ ${o.docker} ${args.join(' ')}`));
  const clients = o.servers.map((s) => new BerthClient(s, o.token, 2_000));

  out(c.bold('Berth failover demo: docker kill the leader, watch the cluster carry on'));

  // 1. Who is who: each URL's replica id, the leader, the nodes.
  step(1, 'The cluster');
  const views = await Promise.all(clients.map((api) => api.get<ClusterView>('/v1/cluster').catch(() => undefined)));
  const byId = new Map<string, BerthClient>();
  views.forEach((v, i) => {
    if (v) byId.set(v.self.id, clients[i]!);
  });
  const first = views.find((v): v is ClusterView => v !== undefined);
  if (!first) throw new Error(`no controller answers at ${o.servers.join(', ')}: is the cluster up (docker compose -f compose.ha.yml ps)?`);
  const oldLeader = first.leader.leaderId;
  if (oldLeader === null) throw new Error('the cluster has no leader right now; run the demo again in a few seconds');
  const ttl = first.leaseTtlSeconds;
  for (const r of first.replicas.sort((a, b) => a.id.localeCompare(b.id))) {
    const line = `${r.id.padEnd(6)}${(r.leader ? 'leader' : 'follower').padEnd(10)}`;
    out(`  ${r.leader ? c.green(c.bold(line)) : line}${c.dim(r.address)}`);
  }
  out(`  term ${first.leader.term}, election lease TTL ${ttl} s`);
  const api0 = [...byId.values()][0]!;
  const nodes = (await api0.nodes()).filter((n) => n.status === 'Ready');
  out(`  nodes Ready: ${nodes.map((n) => n.name).join(', ') || c.red('none')}`);
  if (nodes.length === 0) throw new Error('no node is Ready: the demo pods could not run');
  const survivors = [...byId.entries()].filter(([id]) => id !== oldLeader);
  if (survivors.length === 0) throw new Error(`only the leader (${oldLeader}) is reachable at ${o.servers.join(', ')}: pass every replica's URL with --servers`);

  // Find the leader's container before anything is created, so a wrong project fails early.
  const container = await leaderContainer(o, oldLeader);

  // 2. Pods.
  step(2, `Creating ${o.pods} pods`);
  const prefix = `demo-${randomBytes(2).toString('hex')}`;
  const names = Array.from({ length: o.pods }, (_, i) => `${prefix}-${i + 1}`);
  const cleanup = async () => {
    if (o.keep) return out(c.dim(`\n  kept the demo pods: berth delete pod ${names.join(' ')}`));
    const api = (await firstAnswering(clients)) ?? api0;
    await Promise.all(names.map((n) => api.request('DELETE', `/v1/pods/${n}`).catch(() => undefined)));
    out(c.dim(`\n  deleted the demo pods (${names.join(', ')})`));
  };
  try {
    for (const name of names) {
      const body: CreatePodRequest = { name, image: o.image, command: ['sleep', '3600'], cpu: 0.05, memoryMiB: 32 };
      await api0.request('POST', '/v1/pods', body);
    }
    const running = await poll(async () => {
      const pods = await Promise.all(names.map((n) => api0.pod(n)));
      return pods.every((p) => p.status.phase === 'Running') ? pods : undefined;
    }, o.timeoutMs);
    if (!running) {
      const pods = await Promise.all(names.map((n) => api0.pod(n).catch(() => undefined)));
      throw new Error(`the demo pods did not all reach Running in ${o.timeoutMs / 1000} s: ${pods.map((p) => (p ? `${p.name} ${p.status.phase} (${p.status.message})` : '?')).join('; ')}`);
    }
    const nodeName = new Map(nodes.map((n) => [n.id, n.name]));
    const before = new Map(running.map((p) => [p.name, p.status.nodeId]));
    for (const p of running) out(`  ${p.name}  ${c.green('Running')} on ${nodeName.get(p.status.nodeId ?? '') ?? p.status.nodeId}`);

    // 3. The kill.
    step(3, `Killing the leader's container (${oldLeader})`);
    shell(['kill', container.name]);
    const killedAt = Date.now();
    await dockerCli(o.docker, ['kill', container.id]);

    // 4. The election.
    step(4, 'Waiting for a new leader');
    const limitMs = ttl * 1000 + 1000;
    const elected = await poll(async () => {
      const seen = await Promise.all(survivors.map(([, api]) => api.get<ClusterView>('/v1/cluster').catch(() => undefined)));
      const ids = new Set(seen.map((v) => v?.leader.leaderId));
      const id = seen[0]?.leader.leaderId;
      // Every surviving replica names the same new leader, from etcd.
      return ids.size === 1 && id !== null && id !== undefined && id !== oldLeader ? { id, at: Date.now(), term: seen[0]!.leader.term } : undefined;
    }, Math.max(limitMs * 5, 15_000));
    if (!elected) {
      claim(false, `no new leader within ${seconds(Math.max(limitMs * 5, 15_000))} of the kill`);
    } else {
      const took = elected.at - killedAt;
      claim(took <= limitMs, `${elected.id} elected ${c.bold(seconds(took))} after the kill (term ${elected.term}; limit: lease TTL ${ttl} s + 1 s)`);
    }

    // 5. The pods.
    step(5, 'Checking the pods');
    const api = survivors[0]![1];
    const [pods, nodesAfter] = await Promise.all([Promise.all(names.map((n) => api.pod(n))), api.nodes()]);
    for (const p of pods) out(`  ${await podLine(p, before.get(p.name) ?? null, nodesAfter, o.docker, c)}`);
    const problems = (await Promise.all(pods.map((p) => podProblems(p, before.get(p.name) ?? null, nodesAfter, o.docker)))).flat();
    claim(problems.length === 0, problems.length === 0 ? `all ${pods.length} pods still Running, each bound to one node and in one container` : `pods: ${problems.join('; ')}`);

    // 6. The killed replica comes back.
    step(6, `Restarting the killed replica (${oldLeader})`);
    shell(['start', container.name]);
    const startedAt = Date.now();
    await dockerCli(o.docker, ['start', container.id]);
    const back = byId.get(oldLeader);
    const rejoined = await poll(async () => {
      const v = back ? await back.get<ClusterView>('/v1/cluster') : await survivors[0]![1].get<ClusterView>('/v1/cluster');
      const replica = v.replicas.find((r) => r.id === oldLeader);
      const role = back ? v.self.role : replica && !replica.leader ? 'follower' : undefined;
      return replica && role === 'follower' && v.self.ready ? { leader: v.leader.leaderId, at: Date.now() } : undefined;
    }, o.timeoutMs);
    if (!rejoined) claim(false, `${oldLeader} did not rejoin within ${o.timeoutMs / 1000} s`);
    else claim(rejoined.leader === elected?.id, `${oldLeader} rejoined as a follower after ${seconds(rejoined.at - startedAt)}; the leader is still ${rejoined.leader}`);
  } finally {
    await cleanup();
  }

  const failed = claims.filter((x) => !x.ok);
  out('');
  out(failed.length === 0 ? c.green(c.bold(`PASS: all ${claims.length} claims held`)) : c.red(c.bold(`FAIL: ${failed.length} of ${claims.length} claims did not hold`)));
  return failed.length === 0;
}

async function firstAnswering(clients: BerthClient[]): Promise<BerthClient | undefined> {
  for (const api of clients) {
    try {
      await api.get('/healthz');
      return api;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * The container of controller `id`: compose.ha.yml labels controllers
 * `berth.role=controller` and compose labels each with its service name, which
 * is the replica id (c1, c2, c3).
 */
async function leaderContainer(o: FailoverDemoOptions, id: string): Promise<{ id: string; name: string }> {
  const filters = ['--filter', 'label=berth.role=controller', '--filter', `label=com.docker.compose.service=${id}`];
  if (o.project !== undefined) filters.push('--filter', `label=com.docker.compose.project=${o.project}`);
  const rows = (await dockerCli(o.docker, ['ps', '--no-trunc', ...filters, '--format', '{{.ID}} {{.Names}} {{.Label "com.docker.compose.project"}}']))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.split(' ') as [string, string, string]);
  if (rows.length === 0) {
    throw new Error(
      `no running container of controller ${id} (labels berth.role=controller, com.docker.compose.service=${id}${o.project === undefined ? '' : `, project ${o.project}`}): ` +
        'the demo kills the leader of a cluster started with docker compose -f compose.ha.yml',
    );
  }
  if (rows.length > 1) {
    throw new Error(`controller ${id} runs in more than one compose project (${rows.map((r) => r[2]).join(', ')}): pick one with --project`);
  }
  return { id: rows[0]![0], name: rows[0]![1] };
}

/** Containers the agents run for pod `id` (label berth.pod), running or not. */
async function podContainers(docker: string, podId: string): Promise<Array<{ id: string; state: string }>> {
  const out = await dockerCli(docker, ['ps', '-a', '--filter', `label=berth.pod=${podId}`, '--format', '{{.ID}} {{.State}}']);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [id = '', state = ''] = l.split(' ');
      return { id, state };
    });
}

async function podProblems(p: PodView, nodeBefore: string | null, nodes: NodeView[], docker: string): Promise<string[]> {
  const problems: string[] = [];
  if (p.status.phase !== 'Running') problems.push(`${p.name} is ${p.status.phase} (${p.status.message})`);
  if (p.status.nodeId !== nodeBefore) problems.push(`${p.name} moved from ${nodeBefore} to ${p.status.nodeId}`);
  const reservedOn = nodes.filter((n) => n.pods.includes(p.id));
  if (reservedOn.length !== 1) problems.push(`${p.name} is reserved on ${reservedOn.length} nodes`);
  const containers = await podContainers(docker, p.id);
  const live = containers.filter((x) => x.state === 'running');
  if (live.length !== 1 || containers.length !== 1) problems.push(`${p.name} has ${containers.length} containers (${live.length} running)`);
  return problems;
}

async function podLine(p: PodView, nodeBefore: string | null, nodes: NodeView[], docker: string, c: Palette): Promise<string> {
  const node = nodes.find((n) => n.id === p.status.nodeId);
  const containers = await podContainers(docker, p.id).catch(() => []);
  const phase = p.status.phase === 'Running' ? c.green(p.status.phase) : c.red(p.status.phase);
  const same = p.status.nodeId === nodeBefore ? 'same node' : c.red('moved');
  return `${p.name}  ${phase} on ${node?.name ?? p.status.nodeId} (${same}), ${containers.length} container${containers.length === 1 ? '' : 's'}`;
}

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { ClusterView, CreatePodRequest } from '@berth/core';
import { ApiError, BerthClient } from './client.js';
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
/** Each request to a replica; short, since a replica that does not answer may be the one just killed. */
const REQUEST_TIMEOUT_MS = 2_000;

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
    await delay(POLL_MS);
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Every replica that answers, by id, with its view of the cluster. */
async function views(clients: BerthClient[]): Promise<Array<{ api: BerthClient; view: ClusterView }>> {
  const all = await Promise.all(clients.map(async (api) => ({ api, view: await api.cluster().catch(() => undefined) })));
  return all.filter((x): x is { api: BerthClient; view: ClusterView } => x.view !== undefined);
}

/** The leader every answering replica names (undefined while they disagree or there is none). */
function agreed(vs: Array<{ view: ClusterView }>): { id: string; term: number | null; address: string | null; since: string | null } | undefined {
  const ids = new Set(vs.map((v) => v.view.leader.leaderId));
  const id = vs[0]?.view.leader.leaderId;
  const l = vs[0]?.view.leader;
  return l !== undefined && ids.size === 1 && id !== null && id !== undefined ? { id, term: l.term, address: l.address, since: l.since } : undefined;
}

/**
 * The failover demo (the README's "Docker Compose" section): shows the
 * leader, creates pods, `docker kill`s the leader's container, times the
 * election of the next leader, checks that every pod is still Running and
 * bound exactly once (on the same node, in exactly one node's reservations,
 * in exactly one container), restarts the killed container, waits for it to
 * rejoin as a follower, and checks the pods once more. Returns true when
 * every claim held. Whatever fails on the way, the killed container is
 * started again and the demo pods are deleted.
 */
export async function failoverDemo(o: FailoverDemoOptions, out: Out, c: Palette): Promise<boolean> {
  const claims: Claim[] = [];
  const claim = (ok: boolean, text: string) => {
    claims.push({ ok, text });
    out(`  ${ok ? c.green('✔') : c.red('✘')} ${text}`);
  };
  const step = (n: number, text: string) => out(`\n${c.bold(`[${n}/6] ${text}`)}`);
  const shell = (args: string[]) => out(c.dim(`  $ ${o.docker} ${args.join(' ')}`));
  const clients = o.servers.map((s) => new BerthClient(s, o.token, REQUEST_TIMEOUT_MS));

  out(c.bold('Berth failover demo: docker kill the leader, watch the cluster carry on'));

  // 1. Who is who: each URL's replica id, the leader, the nodes.
  step(1, 'The cluster');
  const initial = await views(clients);
  const byId = new Map(initial.map((x) => [x.view.self.id, x.api]));
  const first = initial[0]?.view;
  if (!first) throw new Error(`no controller answers at ${o.servers.join(', ')}: is the cluster up (docker compose -f compose.ha.yml ps)?`);
  if (first.leader.leaderId === null) throw new Error('the cluster has no leader right now; run the demo again in a few seconds');
  const ttl = first.leaseTtlSeconds;
  for (const r of first.replicas.sort((a, b) => a.id.localeCompare(b.id))) {
    const line = `${r.id.padEnd(6)}${(r.leader ? 'leader' : 'follower').padEnd(10)}`;
    out(`  ${r.leader ? c.green(c.bold(line)) : line}${c.dim(r.address)}`);
  }
  out(`  term ${first.leader.term}, election lease TTL ${ttl} s`);
  const api0 = initial[0]!.api;
  const nodes = (await api0.nodes()).filter((n) => n.status === 'Ready');
  out(`  nodes Ready: ${nodes.map((n) => n.name).join(', ') || c.red('none')}`);
  if (nodes.length === 0) throw new Error('no node is Ready: the demo pods could not run');
  if (byId.size < 2) throw new Error(`only one replica answers at ${o.servers.join(', ')}: pass every replica's URL with --servers`);
  // Fails early (before anything is created) when this is not a compose cluster.
  await leaderContainer(o, first.leader.leaderId, first.leader.address);

  const prefix = `demo-${randomBytes(2).toString('hex')}`;
  const names = Array.from({ length: o.pods }, (_, i) => `${prefix}-${i + 1}`);
  let killed: { id: string; container: { id: string; name: string } } | undefined;
  let restarted = false;
  const restore = async () => {
    if (killed && !restarted) {
      restarted = true;
      out(c.yellow(`\n  the demo stopped early: starting ${killed.id} again`));
      shell(['start', killed.container.name]);
      await dockerCli(o.docker, ['start', killed.container.id]).catch((err: Error) => out(c.red(`  ${err.message}`)));
    }
    await cleanup(o, clients, names, out, c);
  };
  // Ctrl-C in the middle of a demo leaves the cluster as it found it.
  const onInterrupt = () => void restore().finally(() => process.exit(130));
  process.once('SIGINT', onInterrupt);
  try {
    // 2. Pods.
    step(2, `Creating ${o.pods} pods`);
    for (const name of names) {
      const body: CreatePodRequest = { name, image: o.image, command: ['sleep', '3600'], cpu: 0.05, memoryMiB: 32 };
      await api0.createPod(body);
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

    // 3. The kill, of whoever leads right now (leadership may have moved while the pods started).
    const now = agreed(await views(clients));
    if (!now) throw new Error('the replicas do not agree on a leader right now; run the demo again in a few seconds');
    const container = await leaderContainer(o, now.id, now.address);
    const survivors = [...byId.entries()].filter(([id]) => id !== now.id);
    if (survivors.length === 0) throw new Error(`no replica other than the leader (${now.id}) answers: pass every replica's URL with --servers`);
    step(3, `Killing the leader's container (${now.id}, term ${now.term})`);
    shell(['kill', container.name]);
    killed = { id: now.id, container }; // from here on, whatever happens, it is started again
    const killedAt = Date.now();
    await dockerCli(o.docker, ['kill', container.id]);

    // 4. The election: every surviving replica names the same new leader, with a newer term.
    step(4, 'Waiting for a new leader');
    const limitMs = ttl * 1000 + 1000;
    const waitMs = Math.max(limitMs * 5, 15_000);
    const elected = await poll(async () => {
      const seen = await Promise.all(survivors.map(([, api]) => api.cluster()));
      const next = agreed(seen.map((view) => ({ view })));
      if (!next || next.id === now.id || (next.term ?? 0) <= (now.term ?? 0)) return undefined;
      // When it took office, by its own leader record (this host's clock): not when these polls next saw every replica agree.
      const seenAt = Date.now();
      return { ...next, at: next.since === null ? seenAt : Math.min(Date.parse(next.since), seenAt), seenAt };
    }, waitMs);
    if (!elected) claim(false, `no new leader within ${seconds(waitMs)} of the kill`);
    else claim(elected.at - killedAt <= limitMs, `${elected.id} elected ${c.bold(seconds(elected.at - killedAt))} after the kill (term ${elected.term}; limit: lease TTL ${ttl} s + 1 s; every replica named it ${seconds(elected.seenAt - killedAt)} after)`);

    // 5. The pods, right after the election.
    step(5, 'Checking the pods');
    const api = survivors[0]![1];
    await checkPods(api, names, before, o.docker, out, claim, c, 'still Running');

    // 6. The killed replica comes back.
    step(6, `Restarting the killed replica (${now.id})`);
    shell(['start', container.name]);
    const startedAt = Date.now();
    await dockerCli(o.docker, ['start', container.id]);
    restarted = true;
    const back = byId.get(now.id);
    const rejoined = await poll(async () => {
      const v = back ? await back.cluster() : await api.cluster();
      const replica = v.replicas.find((r) => r.id === now.id);
      const role = back ? v.self.role : replica && !replica.leader ? 'follower' : undefined;
      return replica && role === 'follower' && (!back || v.self.ready) ? { leader: v.leader.leaderId, at: Date.now() } : undefined;
    }, o.timeoutMs);
    if (!rejoined) claim(false, `${now.id} did not rejoin within ${o.timeoutMs / 1000} s`);
    else claim(rejoined.leader === elected?.id, `${now.id} rejoined as a follower after ${seconds(rejoined.at - startedAt)}; the leader is still ${rejoined.leader}`);
    // The new leader has run its loops for a while now: nothing was rebound or started twice since.
    await checkPods(api, names, before, o.docker, out, claim, c, 'still Running after the new leader\'s passes and the rejoin', true);
  } finally {
    process.off('SIGINT', onInterrupt);
    await restore();
  }

  const failed = claims.filter((x) => !x.ok);
  out('');
  out(failed.length === 0 ? c.green(c.bold(`PASS: all ${claims.length} claims held`)) : c.red(c.bold(`FAIL: ${failed.length} of ${claims.length} claims did not hold`)));
  return failed.length === 0;
}

/** Deletes the demo pods (unless --keep) through any replica that answers; says what it did. */
async function cleanup(o: FailoverDemoOptions, clients: BerthClient[], names: string[], out: Out, c: Palette): Promise<void> {
  if (o.keep) return out(c.dim(`\n  kept the demo pods: berth delete pod ${names.join(' ')}`));
  const api = await firstAnswering(clients);
  const results = await Promise.all(
    names.map((n) => (api ? api.deletePod(n, REQUEST_TIMEOUT_MS).then(() => 'deleted' as const, (err: unknown) => (err instanceof ApiError && err.status === 404 ? ('absent' as const) : ('failed' as const))) : ('failed' as const))),
  );
  const failed = names.filter((_, i) => results[i] === 'failed');
  const deleted = names.filter((_, i) => results[i] === 'deleted');
  if (deleted.length > 0) out(c.dim(`\n  deleted the demo pods (${deleted.join(', ')})`));
  if (failed.length > 0) out(c.yellow(`\n  could not delete ${failed.join(', ')}: berth delete pod ${failed.join(' ')}`));
}

/**
 * One claim about the pods: each Running on the node it ran on before the
 * kill, in exactly one node's reservations (the leader's allocation records),
 * in exactly one container on the engine. Reads are retried for a few seconds
 * (the API of a replica may blink during the election); a pod that cannot be
 * read fails the claim.
 */
async function checkPods(
  api: BerthClient,
  names: string[],
  before: Map<string, string | null>,
  docker: string,
  out: Out,
  claim: (ok: boolean, text: string) => void,
  c: Palette,
  what: string,
  quiet = false,
): Promise<void> {
  const read = await poll(async () => {
    const [pods, nodes] = await Promise.all([Promise.all(names.map((n) => api.pod(n))), api.nodes()]);
    return { pods, nodes };
  }, 10_000);
  if (!read) return claim(false, `the pods could not be read from ${api.server} for 10 s`);
  const problems: string[] = [];
  for (const p of read.pods) {
    const nodeBefore = before.get(p.name) ?? null;
    const containers = await podContainers(docker, p.id).catch(() => undefined);
    const node = read.nodes.find((n) => n.id === p.status.nodeId);
    const reservedOn = read.nodes.filter((n) => n.reservedPods.includes(p.id));
    const live = containers?.filter((x) => x.state === 'running').length ?? 0;
    if (p.status.phase !== 'Running') problems.push(`${p.name} is ${p.status.phase} (${p.status.message})`);
    if (p.status.nodeId !== nodeBefore) problems.push(`${p.name} moved from ${nodeBefore} to ${p.status.nodeId}`);
    if (reservedOn.length !== 1) problems.push(`${p.name} is reserved on ${reservedOn.length} nodes`);
    if (containers === undefined) problems.push(`${p.name}: the engine could not be asked for its containers`);
    else if (containers.length !== 1 || live !== 1) problems.push(`${p.name} has ${containers.length} containers (${live} running)`);
    if (!quiet) {
      const phase = p.status.phase === 'Running' ? c.green(p.status.phase) : c.red(p.status.phase);
      const same = p.status.nodeId === nodeBefore ? 'same node' : c.red('moved');
      out(`  ${p.name}  ${phase} on ${node?.name ?? p.status.nodeId} (${same}), reserved on ${reservedOn.length} node${reservedOn.length === 1 ? '' : 's'}, ${containers?.length ?? '?'} container${containers?.length === 1 ? '' : 's'}`);
    }
  }
  claim(problems.length === 0, problems.length === 0 ? `all ${read.pods.length} pods ${what}, each bound to one node and in one container` : `pods: ${problems.join('; ')}`);
}

async function firstAnswering(clients: BerthClient[]): Promise<BerthClient | undefined> {
  for (const api of clients) {
    try {
      await api.healthz();
      return api;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * The container of controller `id` advertising `address`: compose.ha.yml
 * labels controllers `berth.role=controller`, compose labels each with its
 * service name (the replica id: c1, c2, c3), and the container's environment
 * holds the address the replica advertises (BERTH_ADVERTISE_URL). The address
 * must match, so a container of another cluster with the same replica id
 * (another compose project on this engine) is never the one killed.
 */
async function leaderContainer(o: FailoverDemoOptions, id: string, address: string | null): Promise<{ id: string; name: string }> {
  const filters = ['--filter', 'label=berth.role=controller', '--filter', `label=com.docker.compose.service=${id}`];
  if (o.project !== undefined) filters.push('--filter', `label=com.docker.compose.project=${o.project}`);
  const ids = (await dockerCli(o.docker, ['ps', '--no-trunc', '-q', ...filters])).split('\n').filter((l) => l.trim() !== '');
  const candidates = ids.length === 0 ? [] : (JSON.parse(await dockerCli(o.docker, ['inspect', ...ids])) as Array<{ Id: string; Name: string; Config: { Env: string[] | null; Labels: Record<string, string> | null } }>);
  const advertised = (c: (typeof candidates)[number]) => (c.Config.Env ?? []).find((e) => e.startsWith('BERTH_ADVERTISE_URL='))?.slice('BERTH_ADVERTISE_URL='.length).replace(/\/+$/, '');
  const rows = candidates.filter((c) => address !== null && advertised(c) === address.replace(/\/+$/, ''));
  if (rows.length === 0) {
    const others = candidates.map((c) => `${c.Name.replace(/^\//, '')} (${advertised(c) ?? 'no BERTH_ADVERTISE_URL'})`);
    throw new Error(
      `no running container of controller ${id} advertising ${address ?? '?'} (labels berth.role=controller, com.docker.compose.service=${id}${o.project === undefined ? '' : `, project ${o.project}`}` +
        `${others.length === 0 ? '' : `; other clusters' containers: ${others.join(', ')}`}): the demo kills the leader of a cluster started with docker compose -f compose.ha.yml`,
    );
  }
  if (rows.length > 1) {
    throw new Error(`controller ${id} runs in more than one compose project (${rows.map((r) => r.Config.Labels?.['com.docker.compose.project'] ?? '?').join(', ')}): pick one with --project`);
  }
  return { id: rows[0]!.Id, name: rows[0]!.Name.replace(/^\//, '') };
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

import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { waitFor } from '@berth/devcluster';
import { composeFor } from '../helpers/compose.js';
import { docker, dockerProblem } from '../helpers/fixtures.js';

// compose.ha.yml as a user runs it (3 etcd members, c1..c3, two docker-runtime
// agents), brought up by Debian's docker-compose with every service on the host
// network; the images are the ones built without a registry by npm test's set-up.
const CLI = path.resolve(import.meta.dirname, '../../../apps/cli/dist/main.js');
const POD_IMAGE = 'berth-test/busybox:local';

function composeProblem(): string | undefined {
  const problem =
    dockerProblem(process.env.BERTH_IMAGE ?? 'berth:local', 'deploy/docker/build-local-image.sh') ??
    dockerProblem(process.env.ETCD_IMAGE ?? 'berth/etcd:local', 'deploy/docker/build-etcd-image.sh') ??
    dockerProblem(POD_IMAGE, 'deploy/docker/build-test-images.sh');
  if (problem) return problem;
  try {
    execFileSync('docker-compose', ['version'], { stdio: 'pipe' });
  } catch {
    return "docker-compose is missing: npm test's set-up installs Debian's docker-compose package";
  }
  return undefined;
}

interface Json {
  status: number;
  body: Record<string, unknown>;
}

/** The stack's admin token (auth is on in compose.ha.yml), once it is up. */
let token = '';

async function call(url: string, method = 'GET', body?: unknown, timeoutMs = 15_000): Promise<Json> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

const podBody = (name: string) => ({ name, image: POD_IMAGE, command: ['sleep', '3600'], cpu: 0.05, memoryMiB: 32 });

async function podPhase(url: string, name: string): Promise<string | undefined> {
  const r = await call(`${url}/v1/pods/${name}`);
  return r.status === 200 ? ((r.body.status as { phase: string }).phase) : undefined;
}

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 180_000, env: { ...process.env, NO_COLOR: '1', BERTH_TOKEN: token } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('compose.ha.yml: HA stack, failover demo by docker kill, etcd member loss', async (t) => {
  const problem = composeProblem();
  if (problem) {
    t.fail(`this test needs a Docker engine and docker-compose and cannot get them: ${problem}`);
    return;
  }
  const stack = await composeFor(t);
  await stack.compose('up', '-d', '--no-build');
  const [c1, c2, c3] = stack.controllerUrls as [string, string, string];

  const firstLeader = await stack.agreedLeader();
  token = await stack.adminToken();
  t.match(token, /^berth_[A-Za-z0-9_-]{43}$/, "the secrets' init made the admin token");
  t.equal((await fetch(`${c1}/v1/pods`)).status, 401, 'and the API wants it');
  t.ok(['c1', 'c2', 'c3'].includes(firstLeader), `the leader is one of c1..c3 (${firstLeader})`);
  for (const url of stack.controllerUrls) {
    const replicas = await waitFor(
      async () => {
        const cluster = await call(`${url}/v1/cluster`);
        return cluster.status === 200 && (cluster.body.replicas as unknown[]).length === 3 ? cluster.body.replicas : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: `${url} to see three replicas` },
    );
    t.equal((replicas as unknown[]).length, 3, `${url} answers the API and sees three replicas`);
  }
  const nodes = await waitFor(
    async () => {
      const r = await call(`${c1}/v1/nodes`);
      const items = r.body.items as Array<{ name: string; status: string; runtime: string }>;
      return items.length === 2 && items.every((n) => n.status === 'Ready') ? items : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: 'agent1 and agent2 Ready' },
  );
  t.same(nodes.map((n) => [n.name, n.runtime]).sort(), [['agent1', 'docker'], ['agent2', 'docker']], 'both agents registered with the docker runtime');

  await t.test("etcd's auth is on: etcdctl inside the etcd container sees Berth's keys as the controllers' user only", async (t) => {
    const keys = await stack.etcdctlAsController('get', '--prefix', '/berth/nodes/', '--keys-only');
    t.equal(keys.split('\n').filter((l) => l.startsWith('/berth/nodes/')).length, 2, 'two node keys');
    // The members' own etcdctl is the role-less user health (their healthcheck passes with it): it reads nothing.
    await t.rejects(stack.compose('exec', '-T', 'etcd1', 'etcdctl', 'get', '--prefix', '/berth/', '--keys-only'), /permission denied/, 'as health: permission denied');
    await t.rejects(stack.compose('exec', '-T', '-e', 'ETCDCTL_USER=', 'etcd1', 'etcdctl', 'get', '/berth/leader'), /user name is empty/, 'anonymous: refused');
    const members = await stack.compose('exec', '-T', 'etcd1', 'etcdctl', 'member', 'list');
    t.equal(members.split('\n').filter((l) => l.includes('started')).length, 3, 'three started members');
  });

  await t.test('the failover demo kills the leader container and every claim holds', async (t) => {
    const leader = await stack.agreedLeader();
    // A decoy: another cluster's controller with the same replica id on this engine. Without
    // --project the demo must still kill only the container advertising this cluster's address.
    const decoy = docker('run', '-d', '--network', 'none', '--label', 'berth.role=controller', '--label', `com.docker.compose.service=${leader}`,
      '-e', 'BERTH_ADVERTISE_URL=http://127.0.0.1:9', POD_IMAGE, 'sleep', '3600');
    t.teardown(() => void docker('rm', '-f', decoy));
    const demo = await runCli(['demo', 'failover', '--servers', stack.controllerUrls.join(','), '--image', POD_IMAGE, '--pods', '3']);
    t.comment(demo.stdout.split('\n').map((l) => `  ${l}`).join('\n'));
    t.equal(demo.code, 0, `the demo exits 0 ${demo.stderr}`);
    t.match(demo.stdout, new RegExp(`docker kill \\S+`), 'it shows the docker kill it runs');
    // The demo kills whoever leads at that moment (normally the leader read above).
    const killed = /Killing the leader's container \((c\d),/.exec(demo.stdout)?.[1] ?? leader;
    const elected = /✔ (c\d) elected ([\d.]+) s after the kill/.exec(demo.stdout);
    t.ok(elected, 'it reports the new leader and the time the election took');
    t.not(elected?.[1], killed, 'a different replica leads');
    t.ok(Number(elected?.[2]) <= 3, `elected within lease TTL (2 s) + 1 s: ${elected?.[2]} s`);
    t.match(demo.stdout, /✔ all 3 pods still Running, each bound to one node and in one container/);
    t.match(demo.stdout, new RegExp(`✔ ${killed} rejoined as a follower`));
    t.match(demo.stdout, /✔ all 3 pods still Running after the new leader's passes and the rejoin, each bound to one node and in one container/);
    t.match(demo.stdout, /PASS: all 4 claims held/);

    t.equal(docker('inspect', '-f', '{{.State.Running}}', decoy), 'true', "the other cluster's container was left alone");
    // Checked here too, not only on the demo's word.
    t.ok(await stack.running(killed), `${killed}'s container runs again`);
    const url = stack.controllerUrls[Number(killed.slice(1)) - 1]!;
    const view = (await call(`${url}/v1/cluster`)).body as { self: { role: string }; leader: { leaderId: string } };
    t.equal(view.self.role, 'follower', `${killed} is a follower`);
    t.equal(view.leader.leaderId, elected?.[1], 'and names the new leader');
    const left = await call(`${url}/v1/pods`);
    t.same((left.body.items as Array<{ name: string }>).filter((p) => p.name.startsWith('demo-')), [], 'the demo removed its pods');
  });

  await t.test("killing etcd's raft leader: the API rides out etcd's election", async (t) => {
    const status = JSON.parse(await stack.compose('exec', '-T', 'etcd1', 'etcdctl', 'endpoint', 'status', '--cluster', '-w', 'json')) as Array<{
      Endpoint: string;
      Status: { header: { member_id: number | string }; leader: number | string };
    }>;
    const leaderEndpoint = status.find((m) => String(m.Status.header.member_id) === String(m.Status.leader))?.Endpoint ?? '';
    const member = stack.etcdEndpoints.indexOf(leaderEndpoint) + 1;
    t.ok(member > 0, `etcd's raft leader is etcd${member} (${leaderEndpoint})`);
    docker('kill', await stack.container(`etcd${member}`));
    // Requests through the election: writes wait for the new raft leader, reads come from the caches.
    // (The pods fit no node: they are writes only, no containers.)
    const statuses: number[] = [];
    const names: string[] = [];
    const until = Date.now() + 4000;
    let slowest = 0;
    const timed = async (req: Promise<Json>) => {
      const t0 = Date.now();
      const res = await req;
      slowest = Math.max(slowest, Date.now() - t0);
      return res.status;
    };
    for (let i = 0; Date.now() < until; i++) {
      names.push(`raft-${i}`);
      statuses.push(await timed(call(`${stack.controllerUrls[i % 3]!}/v1/pods`, 'POST', { ...podBody(`raft-${i}`), nodeSelector: { fits: 'nowhere' } })));
      statuses.push(await timed(call(`${stack.controllerUrls[(i + 1) % 3]!}/v1/leader`)));
      await new Promise((r) => setTimeout(r, 100)); // pacing: about 10 requests a second for 4 s
    }
    t.same([...new Set(statuses)].sort(), [200, 201], `${names.length} writes and reads during etcd's election all succeed (the slowest answered in ${slowest} ms)`);
    for (const name of names) await call(`${c1}/v1/pods/${name}`, 'DELETE');
    await stack.compose('start', `etcd${member}`);
    const id = await stack.container(`etcd${member}`);
    await waitFor(() => docker('inspect', '-f', '{{.State.Health.Status}}', id) === 'healthy', { timeoutMs: 60_000, intervalMs: 500, what: `etcd${member} healthy again` });
  });

  await t.test('etcd member loss: one down keeps the API writable, two down answer 503, nothing lost', async (t) => {
    t.equal((await call(`${c1}/v1/pods`, 'POST', podBody('before-loss'))).status, 201);
    await waitFor(async () => (await podPhase(c1, 'before-loss')) === 'Running', { timeoutMs: 60_000, intervalMs: 200, what: 'before-loss Running' });

    await stack.compose('stop', '--timeout', '5', 'etcd2');
    const one = await call(`${c2}/v1/pods`, 'POST', podBody('one-member-down'));
    t.equal(one.status, 201, `a write with one etcd member down succeeds: ${JSON.stringify(one.body)}`);
    // Whichever endpoint a request tries first: a batch of writes and reads on every replica.
    const statuses: string[] = [];
    for (let i = 0; i < 3; i++) {
      for (const [r, url] of stack.controllerUrls.entries()) {
        const name = `burst-${i}-${r}`;
        statuses.push(`POST ${(await call(`${url}/v1/pods`, 'POST', podBody(name))).status}`);
        statuses.push(`GET ${(await call(`${url}/v1/pods/${name}`)).status}`);
        statuses.push(`DELETE ${(await call(`${url}/v1/pods/${name}`, 'DELETE')).status}`);
      }
    }
    t.same([...new Set(statuses)].sort(), ['DELETE 200', 'GET 200', 'POST 201'], `9 creates, reads and deletes across the replicas all succeed: ${statuses.join(',')}`);
    t.equal((await call(`${c3}/v1/pods/one-member-down`)).status, 200, 'and reads see it');
    await waitFor(async () => (await podPhase(c1, 'one-member-down')) === 'Running', { timeoutMs: 60_000, intervalMs: 200, what: 'one-member-down Running' });

    await stack.compose('stop', '--timeout', '5', 'etcd3');
    const [ready] = await waitFor(
      async () => {
        const all = await Promise.all(stack.controllerUrls.map((u) => call(`${u}/readyz`)));
        return all.every((r) => r.status === 503) ? all : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: '/readyz 503 on every replica' },
    );
    t.equal(ready!.body.error, 'ETCD_UNAVAILABLE', `/readyz names etcd: ${JSON.stringify(ready!.body)}`);
    const ep = 'http:\\/\\/127\\.0\\.0\\.1:\\d+';
    t.match(
      ready!.body.message,
      new RegExp(`^etcd has no quorum: 2 of 3 members cannot be reached and the rest cannot serve requests; Berth resumes when it answers again \\(${ep}: no answer within \\d+ ms; ${ep}: connection refused; ${ep}: connection refused\\)$`),
      `and says quorum is lost, with each endpoint: ${String(ready!.body.message)}`,
    );
    // Once a replica knows etcd is away (every probe failed for 3 s) it refuses at once, without
    // proposing anything to etcd (a write proposed to a member without quorum may commit later).
    await waitFor(
      async () => {
        const all = await Promise.all(stack.controllerUrls.map((u) => call(`${u}/v1/leader`)));
        return all.every((r) => r.status === 503);
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'GET /v1/leader 503 on every replica' },
    );
    const none = await call(`${c1}/v1/pods`, 'POST', podBody('no-quorum'));
    t.equal(none.status, 503, 'a write without quorum answers 503');
    t.equal(none.body.error, 'ETCD_UNAVAILABLE');
    t.match(none.body.message, /^etcd has no quorum/, `the message says what is wrong: ${String(none.body.message)}`);
    await waitFor(
      async () => {
        const roles = await Promise.all(stack.controllerUrls.map(async (u) => ((await call(`${u}/v1/cluster`)).body.self as { role: string }).role));
        return roles.every((r) => r === 'follower');
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'every replica to step down without quorum' },
    );
    t.pass('no replica goes on leading without quorum');
    const reads = await Promise.all(['/v1/pods', '/v1/nodes', '/v1/leader'].map(async (p) => (await call(`${c3}${p}`)).status));
    t.same(reads, [503, 503, 503], 'reads answer 503 too, instead of a frozen cache');

    await stack.compose('start', 'etcd2', 'etcd3');
    await waitFor(
      async () => {
        const codes = await Promise.all(stack.controllerUrls.map(async (u) => (await call(`${u}/readyz`)).status));
        return codes.every((s) => s === 200);
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'every controller ready again' },
    );
    await stack.agreedLeader();
    const after = await call(`${c3}/v1/pods`, 'POST', podBody('after-recovery'));
    t.equal(after.status, 201, `writes work again once quorum returns: ${JSON.stringify(after.body)}`);
    t.equal((await call(`${c1}/v1/pods/no-quorum`)).status, 404, 'the write refused without quorum left nothing behind');
    for (const name of ['before-loss', 'one-member-down', 'after-recovery']) {
      await waitFor(async () => (await podPhase(c2, name)) === 'Running', { timeoutMs: 60_000, intervalMs: 200, what: `${name} Running after recovery` });
      t.pass(`${name} is Running after quorum returned`);
    }
    const containers = docker('ps', '--filter', 'label=berth.pod-name=before-loss', '--format', '{{.ID}}').split('\n').filter(Boolean);
    t.equal(containers.length, 1, 'the pod created before the loss still has exactly one container');
  });
});

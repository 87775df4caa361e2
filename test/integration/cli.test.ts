import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { AgentProcess, waitFor } from '@berth/devcluster';
import { clusterFor, tempDir } from '../helpers/fixtures.js';
import { killPodProcesses } from '../helpers/pod-processes.js';
import { echoServer } from '../helpers/services.js';

const CLI = path.resolve(import.meta.dirname, '../../../apps/cli/dist/main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

t.test('the built CLI against a real cluster', async (t) => {
  const cluster = await clusterFor(t, { controllerArgs: ['--node-grace', '3'] });
  const logDir = tempDir(t, 'berth-cli-');
  const agent = new AgentProcess({ name: 'sim', etcd: cluster.etcd.endpoint, logDir, runtime: 'simulated', cpu: 2, memoryMiB: 4096, extraArgs: ['--simulate', '2'] });
  t.teardown(() => agent.process.stop('SIGKILL'));
  await Promise.all([agent.start(), cluster.waitForAgreedLeader()]);
  const server = cluster.controllers[1]!.url;
  // A private config dir: the developer's ~/.config/berth must not leak in.
  const env = { ...process.env, XDG_CONFIG_HOME: logDir, NO_COLOR: '1', BERTH_SERVER: '', BERTH_TOKEN: '' };
  const run = (args: string[], extraEnv: Record<string, string> = {}, withServer = true): Promise<Run> =>
    new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...(withServer ? ['--server', server] : []), ...args], { env: { ...env, ...extraEnv }, timeout: 20_000 }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      });
    });
  const ok = async (args: string[]) => {
    const r = await run(args);
    t.equal(r.code, 0, `berth ${args.join(' ')} exits 0${r.code === 0 ? '' : `: ${r.stderr}`}`);
    return r.stdout;
  };
  await waitFor(async () => (await run(['get', 'nodes', '-o', 'json'])).stdout.includes('"Ready"'), { what: 'nodes Ready through the CLI' });
  /** A long-running `berth ...` (a watch) whose output accumulates; killed at teardown at the latest. */
  const spawnCli = (tt: typeof t, args: string[]) => {
    const child = spawn(process.execPath, [CLI, '--server', server, ...args], { env });
    const w = { stdout: '', stderr: '', kill: () => void child.kill() };
    child.stdout.on('data', (d: Buffer) => (w.stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (w.stderr += d.toString()));
    tt.teardown(w.kill);
    return w;
  };
  const nodeIds = new Map(
    (JSON.parse((await run(['get', 'nodes', '-o', 'json'])).stdout) as { items: Array<{ id: string; name: string }> }).items.map((n) => [n.name, n.id]),
  );

  t.test('get nodes', async (t) => {
    const lines = (await ok(['get', 'nodes'])).trimEnd().split('\n');
    t.match(lines[0], /^NAME\s+STATUS\s+CPU\(alloc\/cap\)\s+MEMORY\(alloc\/cap\)\s+PODS\s+AGE$/);
    t.match(lines[1], /^sim-0\s+Ready\s+0\/2\s+0Mi\/4Gi\s+0\s+\d+s$/);
    t.equal(lines.length, 3);
    const json = JSON.parse(await ok(['get', 'nodes', '-o', 'json'])) as { items: Array<{ name: string }> };
    t.same(json.items.map((n) => n.name).sort(), ['sim-0', 'sim-1'], '-o json parses');
    t.match(await ok(['get', 'node', 'sim-1', '-o', 'wide']), /simulated/);
    const viaEnv = await run(['get', 'nodes'], { BERTH_SERVER: server }, false);
    t.equal(viaEnv.code, 0, 'BERTH_SERVER is used without --server');
    t.match(await ok(['top', 'nodes']), /^NAME\s+CPU%\s+MEMORY\(used\)/);
  });

  t.test('get events', async (t) => {
    let last = '';
    const list = await waitFor(async () => {
      last = await ok(['get', 'events']);
      return [...nodeIds.values()].every((id) => new RegExp(`NodeReady\\s+node/${id}\\s`).test(last)) ? last : undefined;
    }, { what: 'NodeReady events of both nodes', timeoutMs: 20_000 }).catch((e: unknown) => {
      t.comment(last);
      throw e;
    });
    const lines = list.trimEnd().split('\n');
    t.match(lines[0], /^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+SOURCE\s+MESSAGE$/);
    for (const name of ['sim-0', 'sim-1']) {
      t.match(list, new RegExp(`\\n\\d+[sm]\\s+Normal\\s+NodeReady\\s+node/${nodeIds.get(name)}\\s+c\\d\\s+node ${name} is Ready`), `NodeReady of ${name}`);
    }
    const json = JSON.parse(await ok(['get', 'events', '-o', 'json', '--limit', '2'])) as { items: Array<{ reason: string; time: string }> };
    t.equal(json.items.length, 2, '--limit');
    t.ok(json.items[0]!.time <= json.items[1]!.time, 'newest last');
    t.match(await ok(['get', 'events', '-o', 'wide']), /^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+SOURCE\s+TERM\s+ID\s+MESSAGE\n/);
  });

  t.test('run, get, describe, logs, watch, delete', async (t) => {
    const watch = spawnCli(t, ['get', 'pods', '-w']);
    await waitFor(() => watch.stdout.startsWith('NAME'), { what: 'the watch header (its snapshot)', timeoutMs: 20_000 });
    t.notMatch(watch.stdout, /\nweb\s/, 'web does not exist yet');
    t.equal(await ok(['run', 'web', '--cpu', '500m', '--memory', '256Mi', '--env', 'A=1', '--', 'sleep', '1000']), 'pod/web created\n');
    await waitFor(async () => (JSON.parse((await run(['get', 'pod', 'web', '-o', 'json'])).stdout || '{}') as { status?: { phase: string } }).status?.phase === 'Running', {
      what: 'web Running',
    });
    const list = await ok(['get', 'pods']);
    t.match(list, /^NAME\s+PHASE\s+NODE\s+RESTARTS\s+AGE\n/);
    t.match(list, /\nweb\s+Running\s+sim-[01]\s+0\s+\d+s\n/);
    const desc = await ok(['describe', 'pod', 'web']);
    for (const re of [/^Name:\s+web$/m, /^Phase:\s+Running$/m, /^Command:\s+sleep 1000$/m, /^CPU:\s+500m$/m, /^Memory:\s+256Mi$/m, /^Env:\s+A=1$/m, /^Node:\s+sim-[01] \(/m]) t.match(desc, re);
    t.match(await ok(['describe', 'node', 'sim-0']), /^Capacity:\s+cpu 2, memory 4Gi$/m);
    t.equal((await run(['logs', 'web', '--tail', '5'])).code, 0, 'logs answers');
    await waitFor(() => /\nweb\s+Running\s+sim-/.test(watch.stdout), { what: 'the watch to print web Running', timeoutMs: 20_000 });
    t.match(watch.stdout, /^NAME\s+PHASE\s+NODE\s+RESTARTS\s+AGE\n/, 'the watch prints the header');
    t.equal(watch.stdout.match(/NAME/g)?.length, 1, 'once');
    t.equal(await ok(['delete', 'pod', 'web']), 'pod "web" deleted\n');
    await waitFor(async () => (await run(['get', 'pod', 'web'])).code === 1, { what: 'web gone' });
    await waitFor(() => /\nweb\s+Deleted/.test(watch.stdout), { what: 'the watch to print web Deleted', timeoutMs: 20_000 });
    watch.kill();
    t.equal(watch.stderr, '', 'no warnings');
  });

  t.test('apply is idempotent and refuses changes', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'pods.yaml');
    const manifest = (cpu: string) =>
      `kind: Pod\nmetadata: {name: m1}\nspec:\n  command: [sleep, "100"]\n  cpu: ${cpu}\n---\nkind: Pod\nmetadata:\n  name: m2\nspec:\n  command: sleep 100\n  cpu: 0.1\n  memory: 64Mi\n`;
    fs.writeFileSync(file, manifest('100m'));
    t.equal(await ok(['apply', '-f', file]), 'pod/m1 created\npod/m2 created\n');
    t.equal(await ok(['apply', '-f', file]), 'pod/m1 unchanged\npod/m2 unchanged\n');
    fs.writeFileSync(file, manifest('200m'));
    const changed = await run(['apply', '-f', file]);
    t.equal(changed.code, 1);
    t.equal(changed.stdout, 'pod/m2 unchanged\n');
    t.match(changed.stderr, /pod\/m1 already exists with a different spec \(cpu: 0\.1 -> 0\.2\)/);
    t.match(changed.stderr, /delete it and apply again/);
    fs.writeFileSync(file, 'kind: Pod\nmetadata: {name: x\nspec: 1\n');
    const bad = await run(['apply', '-f', file]);
    t.equal(bad.code, 1);
    t.match(bad.stderr, new RegExp(`^error: ${file.replace(/[.\\/]/g, '\\$&')}:3:1: `));
  });

  t.test('an impossible pod shows why it is Pending', async (t) => {
    t.equal(await ok(['run', 'huge', '--cpu', '64', '--', 'true']), 'pod/huge created\n');
    const desc = await waitFor(async () => {
      const out = (await run(['describe', 'pod', 'huge'])).stdout;
      return /^Reason:\s+Unschedulable$/m.test(out) ? out : undefined;
    }, { what: 'the scheduler reason' });
    t.match(desc, /^Phase:\s+Pending$/m);
    t.match(desc, /^Message:\s+0\/2 nodes: 2 insufficient cpu$/m);
    t.match(desc, /^Node:\s+<none>$/m);
  });

  t.test('cordon and uncordon', async (t) => {
    const events = spawnCli(t, ['get', 'events', '-w']);
    const nodes = spawnCli(t, ['get', 'nodes', '-w']);
    await waitFor(() => events.stdout.startsWith('LAST SEEN') && /\nsim-1\s+Ready\s/.test(nodes.stdout), { what: 'both watches started', timeoutMs: 20_000 });
    t.notMatch(events.stdout, /NodeCordoned/, 'nothing was cordoned yet');
    t.equal(await ok(['cordon', 'sim-0']), 'node/sim-0 cordoned\n');
    await waitFor(() => new RegExp(`\\n\\d+s\\s+Normal\\s+NodeCordoned\\s+node/${nodeIds.get('sim-0')}\\s+c\\d\\s+node sim-0: NodeCordoned`).test(events.stdout), {
      what: 'get events -w to print NodeCordoned',
      timeoutMs: 20_000,
    });
    await waitFor(() => /\nsim-0\s+Ready,SchedulingDisabled\s/.test(nodes.stdout), { what: 'get nodes -w to print sim-0 cordoned', timeoutMs: 20_000 });
    events.kill();
    nodes.kill();
    t.equal(nodes.stdout.match(/\nsim-1\s/g)?.length, 1, 'an unchanged node is printed once');
    t.match(await ok(['get', 'nodes']), /\nsim-0\s+Ready,SchedulingDisabled\s/);
    t.equal(await ok(['uncordon', 'sim-0']), 'node/sim-0 uncordoned\n');
    t.match(await ok(['get', 'nodes']), /\nsim-0\s+Ready\s/);
  });

  t.test('leader and cluster', async (t) => {
    const leader = await cluster.waitForAgreedLeader();
    t.match(await ok(['leader']), new RegExp(`^Leader:\\s+${leader.id}$`, 'm'));
    const out = await ok(['cluster']);
    t.match(out, new RegExp(`^Leader:\\s+${leader.id} at `, 'm'));
    t.match(out, /^Nodes:\s+2 \(2 Ready\)$/m);
    t.match(out, /^Capacity:\s+cpu 4, memory 8Gi/m);
    t.match(out, /^Replicas \(3\):$/m);
    t.match(out, new RegExp(`\\n  ${leader.id}\\s+leader\\s`));
  });

  t.test('errors and exit codes', async (t) => {
    const missing = await run(['describe', 'pod', 'nope']);
    t.equal(missing.code, 1);
    t.equal(missing.stderr, 'Error from server (NOT_FOUND): pod "nope" not found\n');
    const invalid = await run(['run', 'Bad_Name', '--', 'true']);
    t.equal(invalid.code, 1);
    t.match(invalid.stderr, /^Error from server \(VALIDATION_FAILED\): body\/name must match pattern/);
    const usage = await run(['get', 'things']);
    t.equal(usage.code, 1);
    t.match(usage.stderr, /unknown resource type "things"/);
    const badCpu = await run(['run', 'x', '--cpu', '0', '--', 'true']);
    t.equal(badCpu.code, 1);
    t.match(badCpu.stderr, /must be more than 0/);
    const down = await run(['--server', 'http://127.0.0.1:9', 'get', 'nodes'], {}, false);
    t.equal(down.code, 2, 'an unreachable server exits 2');
    t.match(down.stderr, /unable to connect to the server at http:\/\/127\.0\.0\.1:9/);

    // The failover demo refuses before it creates anything when it cannot do what it claims.
    const noCluster = await run(['demo', 'failover', '--servers', 'http://127.0.0.1:9'], {}, false);
    t.equal(noCluster.code, 1, 'demo failover without a cluster exits 1');
    t.match(noCluster.stderr, /no controller answers at http:\/\/127\.0\.0\.1:9/);
    const servers = cluster.controllers.map((c) => c.url).join(',');
    const notCompose = await run(['demo', 'failover', '--servers', servers], {}, false);
    t.equal(notCompose.code, 1, 'demo failover against controllers that are not compose containers exits 1');
    t.match(notCompose.stderr, /no running container of controller \S+ .*docker compose -f compose\.ha\.yml/);
    const pods = JSON.parse(await ok(['get', 'pods', '-o', 'json'])) as { items: Array<{ name: string }> };
    t.same(pods.items.filter((p) => p.name.startsWith('demo-')), [], 'and it created no pod');
  });

  t.test('completion', async (t) => {
    const bash = await ok(['completion', 'bash']);
    t.match(bash, /berth __complete/);
    t.match(bash, /complete -o default -F _berth_complete berth/);
    t.match(await ok(['completion', 'zsh']), /compdef _berth berth/);
    t.same((await ok(['__complete', 'cordon', ''])).trim().split('\n'), ['sim-0', 'sim-1'], '__complete lists node names from the API');
    t.match(await ok(['__complete', 'describe', 'pod', 'h']), /^huge$/m);
    t.same((await ok(['__complete', 'g'])).trim().split('\n'), ['get']);
    const help = await ok(['--help']);
    t.notMatch(help, /__complete/, '__complete is hidden');
  });

  // Last: it adds a node, which the counts above do not expect.
  t.test('services and jobs', async (t) => {
    const dir = tempDir(t, 'berth-cli-svc-');
    const svc = new AgentProcess({
      name: 'svc',
      etcd: cluster.etcd.endpoint,
      logDir: dir,
      runtime: 'process',
      cpu: 4,
      memoryMiB: 4096,
      extraArgs: ['--labels', 'pool=svc', '--heartbeat-ttl', '2', '--heartbeat-interval', '500', '--stop-timeout', '2'],
    });
    t.teardown(async () => {
      // Every pod the agent may have started, so none outlives the test even if the agent's stop falls short.
      const pods = (await cluster.controllers[0]!.request('GET', '/v1/pods').catch(() => ({ body: { items: [] } }))).body as { items: Array<{ id: string }> };
      await svc.process.stop('SIGTERM');
      killPodProcesses(pods.items.map((p) => p.id));
    });
    await svc.start();
    await waitFor(async () => (await run(['get', 'node', 'svc'])).stdout.includes(' Ready '), { what: 'node svc Ready' });
    const command = echoServer(dir);
    const podFlags = ['--port', '8000', '--cpu', '100m', '--memory', '64Mi', '--selector', 'pool=svc'];
    /** Waits until `get services` shows `name` with this READY column. */
    const ready = (name: string, column: string) =>
      waitFor(async () => new RegExp(`\\n${name}\\s+${column.replace('/', '\\/')}\\s`).test(`\n${(await run(['get', 'services'])).stdout}`), {
        what: `${name} ${column} ready`,
        timeoutMs: 30_000,
      });

    t.equal(await ok(['create', 'service', 'echo', '--replicas', '2', ...podFlags, '--health-path', '/healthz', '--', ...command]), 'service/echo created\n');
    await ready('echo', '2/2');
    const list = await ok(['get', 'services']);
    t.match(list, /^NAME\s+READY\s+UP-TO-DATE\s+AGE\s+PORT\n/);
    t.match(list, /\necho\s+2\/2\s+2\s+\d+s\s+8000\n/);
    const view = JSON.parse(await ok(['get', 'service', 'echo', '-o', 'json'])) as { status: { endpoints: Array<{ podId: string; podName: string }> } };
    const podIds = view.status.endpoints.map((e) => e.podId);
    t.equal(podIds.length, 2, '-o json: the service with its endpoints');
    t.match(await ok(['__complete', 'submit', '']), /^echo$/m, 'completion offers the service');
    const desc = await ok(['describe', 'service', 'echo']);
    t.match(desc, /^Replicas:\s+2 desired \| 2 current \| 2 ready \| 2 up-to-date$/m);
    t.match(desc, /^  Health check:\s+GET \/healthz on port PORT/m);
    t.match(desc, /^  Node selector:\s+pool=svc$/m);
    for (const e of view.status.endpoints) t.match(desc, new RegExp(`^  ${e.podName}\\s+svc\\s+\\S+:\\d+\\s+true\\s+\\d+\\s+<none>$`, 'm'), `endpoint ${e.podName} in describe`);

    // --wait prints the pod's answer: here the echo of the request it was sent.
    const answer = JSON.parse(await ok(['submit', 'echo', '--path', '/echo', '-d', 'hello', '-H', 'x-test: yes', '--wait'])) as {
      pod: string;
      method: string;
      body: string;
      headers: Record<string, string>;
    };
    t.ok(podIds.includes(answer.pod), `answered by a pod of the service (${answer.pod})`);
    t.same([answer.method, answer.body, answer.headers['x-test']], ['POST', 'hello', 'yes'], 'method, body and header reached the pod');
    t.match(answer.headers['x-berth-job-id'], /^[0-9a-z]+$/, 'as a job');

    const bad = await run(['submit', 'echo', '--path', '/bad', '--wait']);
    t.equal(bad.code, 1, 'a job that did not succeed exits 1');
    t.match(bad.stdout, /bad request on purpose/, "the pod's answer is still printed");
    t.match(bad.stderr, /^error: job [0-9a-z]+ Failed .*the pod answered 400 after 1 attempt\n$/);

    const id = (await ok(['submit', 'echo', '-X', 'GET', '--path', '/hello'])).trim();
    t.match(id, /^[0-9a-z]{12}$/, 'without --wait: the job id');
    await waitFor(async () => (JSON.parse((await run(['get', 'job', id, '-o', 'json'])).stdout || '{}') as { status?: string }).status === 'Succeeded', { what: `job ${id} Succeeded` });
    const jobs = await ok(['get', 'jobs', '--service', 'echo']);
    t.match(jobs, /^ID\s+SERVICE\s+STATUS\s+ATTEMPTS\s+CODE\s+AGE\n/);
    t.match(jobs, new RegExp(`\\n${id}\\s+echo\\s+Succeeded\\s+1\\s+200\\s+\\d+s\\n`));
    t.equal((await ok(['get', 'jobs', '--status', 'Failed'])).trim().split('\n').length, 2, '--status: the failed job alone');
    const job = await ok(['describe', 'job', id]);
    for (const re of [/^Request:\s+GET \/hello$/m, /^Status:\s+Succeeded$/m, /^Attempts \(1\):$/m, /^  1\s+echo-\S+\s+svc\s+c\d\s+\d+s\s+\S+\s+Succeeded\s+200$/m, /^Result:\n  Status code:\s+200\n/m]) {
      t.match(job, re);
    }
    const first = await run(['submit', 'echo', '--idempotency-key', 'k1']);
    const again = await run(['submit', 'echo', '--idempotency-key', 'k1']);
    t.equal(again.stdout, first.stdout, 'the same idempotency key names the same job');
    t.match(again.stderr, /already exists for idempotency key "k1"/);

    t.equal(await ok(['scale', 'service', 'echo', '3']), 'service/echo scaled to 3 replicas\n');
    await ready('echo', '3/3');

    // apply: created, unchanged, configured, unchanged.
    const file = path.join(dir, 'api.yaml');
    const manifest = (replicas: number) =>
      `kind: Service\nmetadata: {name: api}\nspec:\n  replicas: ${replicas}\n  template:\n    command: ${JSON.stringify(command)}\n` +
      `    cpu: 100m\n    memory: 64Mi\n    ports: [8000]\n    nodeSelector: {pool: svc}\n    healthCheck: {path: /healthz}\n`;
    fs.writeFileSync(file, manifest(1));
    t.equal(await ok(['apply', '-f', file]), 'service/api created\n');
    t.equal(await ok(['apply', '-f', file]), 'service/api unchanged\n');
    fs.writeFileSync(file, manifest(2));
    t.equal(await ok(['apply', '-f', file]), 'service/api configured (replicas: 1 -> 2)\n');
    t.equal(await ok(['apply', '-f', file]), 'service/api unchanged\n');
    await ready('api', '2/2');
    t.match(await ok(['submit', 'api', '--wait']), /"pod":"[0-9a-z]+"/, 'the applied service answers');

    // A job with no pod to run it waits Queued, and can be canceled.
    t.equal(await ok(['create', 'service', 'idle', '--replicas', '0', ...podFlags, '--', ...command]), 'service/idle created\n');
    const queued = (await ok(['submit', 'idle'])).trim();
    t.match(await ok(['describe', 'job', queued]), /^Status:\s+Queued$/m);
    t.equal(await ok(['delete', 'job', queued]), `job "${queued}" canceled\n`);
    t.match(await ok(['get', 'job', queued]), new RegExp(`\\n${queued}\\s+idle\\s+Canceled\\s+0\\s+<none>\\s`));
    const twice = await run(['delete', 'job', queued]);
    t.equal(twice.code, 1);
    t.match(twice.stderr, /^Error from server \(INVALID_TRANSITION\): job \S+ is Canceled already/);

    for (const name of ['echo', 'api', 'idle']) t.equal(await ok(['delete', 'service', name]), `service "${name}" deleted\n`);
    await waitFor(async () => (await run(['get', 'pods', '-o', 'json'])).stdout.match(/"service"/g) === null, { what: "the services' pods gone", timeoutMs: 30_000 });
    t.equal((await run(['get', 'services'])).stderr, 'No services found.\n');
    t.same((await ok(['__complete', 'submit', ''])).trim(), '', 'completion: no services left');
  });
});

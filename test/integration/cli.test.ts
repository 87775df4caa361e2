import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { AgentProcess, waitFor } from '@berth/devcluster';
import { clusterFor, tempDir } from '../helpers/fixtures.js';

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
    }, { what: 'NodeReady events of both nodes', timeoutMs: 5000 }).catch((e: unknown) => {
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
    await waitFor(() => watch.stdout.startsWith('NAME'), { what: 'the watch header (its snapshot)', timeoutMs: 5000 });
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
    await waitFor(() => /\nweb\s+Running\s+sim-/.test(watch.stdout), { what: 'the watch to print web Running', timeoutMs: 5000 });
    t.match(watch.stdout, /^NAME\s+PHASE\s+NODE\s+RESTARTS\s+AGE\n/, 'the watch prints the header');
    t.equal(watch.stdout.match(/NAME/g)?.length, 1, 'once');
    t.equal(await ok(['delete', 'pod', 'web']), 'pod "web" deleted\n');
    await waitFor(async () => (await run(['get', 'pod', 'web'])).code === 1, { what: 'web gone' });
    await waitFor(() => /\nweb\s+Deleted/.test(watch.stdout), { what: 'the watch to print web Deleted', timeoutMs: 5000 });
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
    await waitFor(() => events.stdout.startsWith('LAST SEEN') && /\nsim-1\s+Ready\s/.test(nodes.stdout), { what: 'both watches started', timeoutMs: 5000 });
    t.notMatch(events.stdout, /NodeCordoned/, 'nothing was cordoned yet');
    t.equal(await ok(['cordon', 'sim-0']), 'node/sim-0 cordoned\n');
    await waitFor(() => new RegExp(`\\n\\d+s\\s+Normal\\s+NodeCordoned\\s+node/${nodeIds.get('sim-0')}\\s+c\\d\\s+node sim-0: NodeCordoned`).test(events.stdout), {
      what: 'get events -w to print NodeCordoned',
      timeoutMs: 5000,
    });
    await waitFor(() => /\nsim-0\s+Ready,SchedulingDisabled\s/.test(nodes.stdout), { what: 'get nodes -w to print sim-0 cordoned', timeoutMs: 5000 });
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
});

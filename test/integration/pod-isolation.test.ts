import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { keyOf, type NodeRecord, type PodRecord } from '@berth/core';
import { waitFor } from '@berth/devcluster';
import { processAgent } from '../helpers/process-agent.js';

// Process-runtime pods isolated from the host and from each other, on a real agent (as root, the
// default: every pod its own uid from --pod-uid-range, cgroup v1 limits on this machine kind),
// a real etcd and real cgroups.

const NODE = 'iso1';
const UID_FIRST = 200000;
const UID_LAST = 265535;

/** `Uid:` or `Gid:` of /proc/<pid>/status: real, effective, saved, file system. */
function ids(pid: number, field: 'Uid' | 'Gid'): number[] {
  const m = new RegExp(`^${field}:\\s+(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m![1]!.trim().split(/\s+/).map(Number);
}

/** A process's path in one cgroup v1 hierarchy, from /proc/<pid>/cgroup. */
function cgroupOf(pid: number, controller: string): string {
  const line = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.split(':')[1]!.split(',').includes(controller));
  return line!.split(':')[2]!;
}

t.test('process-runtime pods are isolated from the host and from each other', async (t) => {
  if (process.getuid?.() !== 0 || !fs.existsSync('/sys/fs/cgroup/memory/cgroup.procs')) {
    t.fail('this test needs root and cgroup v1 controllers at /sys/fs/cgroup/{memory,cpu} (as this machine kind has)');
    return;
  }
  const { client, dataDir, nodeId, stand, agent, pidOf, createPod } = await processAgent(t, NODE, []);
  const waitPod = (id: string, what: string, pred: (p: PodRecord) => boolean, timeoutMs = 15_000) => stand.waitPod(id, what, pred, timeoutMs);
  const podDir = (id: string) => path.join(dataDir, 'pods', id);
  const logOf = (id: string) => fs.readFileSync(path.join(podDir(id), 'output.log'), 'utf8');
  const remove = async (id: string) => {
    await stand.change(id, (p) => ({ ...p, deletionRequested: new Date().toISOString() }));
    await waitFor(async () => (await stand.get(id)) === undefined, { what: `pod ${id} deleted` });
  };
  /** Cgroup directories of the agent's node, per hierarchy (known once a pod ran). */
  const nodeCgroups: string[] = [];

  t.test('the node reports how it isolates its pods', async (t) => {
    const node = JSON.parse((await client.get(keyOf('nodes', nodeId)).string())!) as NodeRecord;
    t.same(node.isolation, { user: 'per-pod', uidRange: `${UID_FIRST}-${UID_LAST}`, limits: 'cgroup-v1' });
  });

  // A keeps a file in its working directory and runs; B then tries to reach A.
  const a = await createPod('iso-a', { command: ['sh', '-c', 'echo secret > mine && exec sleep 600'], cpu: 0.25, memoryMiB: 48 });
  await waitPod(a, 'iso-a Running', (p) => p.status.phase === 'Running');
  const pidA = await waitFor(async () => {
    const pid = await pidOf(a);
    // Running is written once the shell started; the secret is there once the pod's own command ran.
    return pid !== undefined && fs.existsSync(path.join(podDir(a), 'work', 'mine')) ? pid : undefined;
  }, { what: 'iso-a to write its file' });

  t.test('a pod runs as its own unprivileged uid, in its cgroup, with its limits', async (t) => {
    const uid = ids(pidA, 'Uid');
    t.equal(new Set(uid).size, 1, `real, effective, saved and fs uid agree (${uid.join(' ')})`);
    t.ok(uid[0]! >= UID_FIRST && uid[0]! <= UID_LAST, `uid ${uid[0]} is in --pod-uid-range`);
    t.same(ids(pidA, 'Gid'), [uid[0], uid[0], uid[0], uid[0]], 'its gid is its uid');
    t.match(fs.readFileSync(`/proc/${pidA}/status`, 'utf8'), /^Groups:\s*$/m, 'no supplementary groups');
    t.match(fs.readFileSync(`/proc/${pidA}/status`, 'utf8'), /^NoNewPrivs:\s+1$/m, 'no_new_privs: setuid binaries cannot give it root');
    const work = fs.statSync(path.join(podDir(a), 'work'));
    t.equal(work.mode & 0o777, 0o700, 'its working directory is 0700');
    t.equal(work.uid, uid[0], 'and its own');
    t.equal(fs.readlinkSync(`/proc/${pidA}/cwd`), path.join(podDir(a), 'work'), 'and its cwd');
    for (const controller of ['memory', 'cpu', 'pids']) {
      const cg = cgroupOf(pidA, controller);
      t.ok(cg.endsWith(`/berth/${NODE}/${a}`), `${controller} cgroup ${cg}`);
      nodeCgroups.push(path.join('/sys/fs/cgroup', controller, path.dirname(cg)));
    }
    const [memory, cpu, pids] = nodeCgroups.map((d) => path.join(d, a));
    t.equal(fs.readFileSync(path.join(memory!, 'memory.limit_in_bytes'), 'utf8').trim(), String(48 * 1024 * 1024), 'memory limit = memoryMiB');
    t.equal(fs.readFileSync(path.join(cpu!, 'cpu.cfs_quota_us'), 'utf8').trim(), '25000', 'cpu quota = 0.25 of the 100 ms period');
    t.equal(fs.readFileSync(path.join(pids!, 'pids.max'), 'utf8').trim(), '1024', 'pids limit = --pids-limit');
  });

  t.test('another pod cannot read its working directory, its log, or signal it', async (t) => {
    // Every attempt must fail: the exit code counts the ones that did not.
    const probe = [
      'n=0',
      'cat "$1/work/mine" && n=$((n+1))',
      'ls "$1/work" && n=$((n+1))',
      'cat "$1/output.log" && n=$((n+1))',
      'kill -0 "$2" && n=$((n+1))',
      'echo "intrusions: $n"; exit $n',
    ].join('; ');
    const b = await createPod('iso-b', { command: ['sh', '-c', probe, 'probe', podDir(a), String(pidA)], restartPolicy: 'Never' });
    const done = await waitPod(b, 'iso-b finished', (p) => p.status.phase === 'Succeeded' || p.status.phase === 'Failed');
    const log = logOf(b);
    t.equal(done.status.exitCode, 0, `no attempt succeeded:\n${log}`);
    t.match(log, /intrusions: 0/);
    t.equal((log.match(/Permission denied/g) ?? []).length, 3, 'the files were refused');
    t.match(log, /Operation not permitted/, 'the signal was refused');
    t.equal(fs.readFileSync(path.join(podDir(a), 'work', 'mine'), 'utf8'), 'secret\n', "the file was there to read (as A's)");
    await remove(b);
  });

  t.test("a pod sees only its declared environment, BERTH_POD_* and PORT, none of the agent's", async (t) => {
    const e = await createPod('iso-env', { command: ['/usr/bin/env'], env: { GREETING: 'hello', PATH: '/bin:/usr/bin' }, ports: [8080], restartPolicy: 'Never' });
    const done = await waitPod(e, 'iso-env Succeeded', (p) => p.status.phase === 'Succeeded');
    const env = Object.fromEntries(logOf(e).trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    t.same(Object.keys(env).sort(), ['BERTH_POD_ID', 'BERTH_POD_NAME', 'GREETING', 'PATH', 'PORT'], 'exactly these (the agent has NODE_OPTIONS, HOME, BERTH_ETCD...)');
    t.same(env, { BERTH_POD_ID: e, BERTH_POD_NAME: 'iso-env', GREETING: 'hello', PATH: '/bin:/usr/bin', PORT: String(done.status.hostPort) });
    // Without a declared PATH a fixed one, not the agent's.
    const d = await createPod('iso-path', { command: ['/bin/sh', '-c', 'echo "$PATH"'], restartPolicy: 'Never' });
    await waitPod(d, 'iso-path Succeeded', (p) => p.status.phase === 'Succeeded');
    t.equal(logOf(d), '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
    await Promise.all([remove(e), remove(d)]);
  });

  t.test('a pod past its memory limit is killed by the kernel and reported OOMKilled; its cgroup goes', async (t) => {
    const hog = `const keep = []; for (;;) keep.push(Buffer.alloc(4 << 20, 1));`;
    const o = await createPod('iso-oom', { command: [process.execPath, '-e', hog], memoryMiB: 64, restartPolicy: 'Never' });
    const failed = await waitPod(o, 'iso-oom Failed', (p) => p.status.phase === 'Failed', 30_000);
    t.equal(failed.status.reason, 'OOMKilled');
    t.equal(failed.status.exitCode, 137, 'SIGKILL');
    t.match(failed.status.message, /OOM killer over its memory limit of 64 MiB/);
    t.ok(await stand.eventSeen(o, (e) => e.reason === 'OOMKilled' && e.type === 'Warning', 'an OOMKilled event'));
    for (const dir of nodeCgroups) t.notOk(fs.existsSync(path.join(dir, o)), `no cgroup left in ${dir}`);
    await remove(o);
  });

  t.test("a deleted pod's cgroups and uid claim go; the agent's own cgroups go when it stops", async (t) => {
    const uid = ids(pidA, 'Uid')[0]!;
    const claim = `/run/berth/pod-uids/${uid}`;
    t.equal(fs.readFileSync(claim, 'utf8'), `${agent.process.pid} ${a}\n`, 'the uid is claimed host-wide for the pod');
    await remove(a);
    for (const dir of nodeCgroups) t.notOk(fs.existsSync(path.join(dir, a)), `no cgroup of the pod left in ${dir}`);
    t.notOk(fs.existsSync(claim), 'the uid claim is released');
    t.notOk(fs.existsSync(podDir(a)), 'its directory is gone');
    await agent.process.stop('SIGTERM', 5000);
    for (const dir of nodeCgroups) t.notOk(fs.existsSync(dir), `${dir} removed`);
  });
});

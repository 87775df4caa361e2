import t from 'tap';
import { execFileSync } from 'node:child_process';
import { containerOptions, onlyEnv, parseUidRange, resolveRunAs } from '@berth/agent';
import { describeNode } from '@berth/cli';
import type { NodeView } from '@berth/core';

// The pure parts of pod isolation: flags, the docker HostConfig, the env scrub, what describe shows.

t.test('--pod-uid-range and --run-as-user', async (t) => {
  t.same(parseUidRange('200000-265535'), { first: 200000, last: 265535 });
  for (const bad of ['1-5', '300-200', 'x', '5000', '100000-4294967295']) t.throws(() => parseUidRange(bad), /--pod-uid-range/, bad);
  t.same(resolveRunAs(undefined, '200000-200009', true), { kind: 'per-pod', first: 200000, last: 200009 }, 'root: per-pod by default');
  t.same(resolveRunAs('per-pod', '200000-200009', true), { kind: 'per-pod', first: 200000, last: 200009 });
  t.same(resolveRunAs('nobody', '200000-200009', true), { kind: 'shared', uid: 65534, gid: 65534, label: 'nobody' }, 'a name from /etc/passwd');
  t.same(resolveRunAs('1234:5678', '200000-200009', true), { kind: 'shared', uid: 1234, gid: 5678, label: '1234:5678' });
  t.same(resolveRunAs('root', '200000-200009', true), { kind: 'agent', label: 'root' }, 'root: the explicit opt-out');
  t.same(resolveRunAs('0', '200000-200009', true), { kind: 'agent', label: 'root' });
  t.throws(() => resolveRunAs('no-such-user-for-berth', '200000-200009', true), /--run-as-user: no user/);
  t.throws(() => resolveRunAs('nobody', '200000-200009', false), /needs the agent to run as root/, 'an agent that is not root cannot switch');
  t.equal(resolveRunAs(undefined, '200000-200009', false).kind, 'agent', 'and runs pods as itself');
});

t.test('docker containers are hardened', async (t) => {
  const spec = { id: 'p1', name: 'web', image: 'busybox', cpu: 0.5, memoryMiB: 64 };
  const plain = containerOptions(spec, 'n1').HostConfig!;
  t.same(plain.SecurityOpt, ['no-new-privileges']);
  t.same(plain.CapDrop, ['ALL']);
  t.equal(plain.CapAdd, undefined);
  t.equal(plain.PidsLimit, 1024, 'the default pids limit');
  t.equal(plain.ReadonlyRootfs, undefined);
  const asked = containerOptions({ ...spec, capabilities: ['NET_BIND_SERVICE', 'CHOWN'], readOnlyRootFilesystem: true }, 'n1', 64);
  t.same(asked.HostConfig!.CapAdd, ['NET_BIND_SERVICE', 'CHOWN']);
  t.equal(asked.HostConfig!.ReadonlyRootfs, true);
  t.equal(asked.HostConfig!.PidsLimit, 64);
  t.not(asked.Labels!['berth.spec'], containerOptions(spec, 'n1').Labels!['berth.spec'], 'a new spec hash: a stopped container is replaced');
});

t.test('the supervisor shell passes on only the variables it was given', async (t) => {
  const out = execFileSync('/bin/sh', ['-c', `${onlyEnv(['KEEP', 'PATH'])}exec /usr/bin/env`], {
    env: { KEEP: 'a b\nexport X=1', PATH: '/bin', NODE_OPTIONS: '--require=/x.js', OTHER: '1' },
    encoding: 'utf8',
  });
  t.same(out.split('\n').filter(Boolean).sort(), ['KEEP=a b', 'PATH=/bin', 'export X=1']);
});

t.test('describe node shows the isolation', async (t) => {
  const node: NodeView = {
    id: 'n1', name: 'w1', labels: {}, runtime: 'process', address: 'http://127.0.0.1:1', status: 'Ready', reason: 'AgentRegistered',
    statusChangedAt: '2026-01-01T00:00:00.000Z', cordoned: false, draining: false, registeredAt: '2026-01-01T00:00:00.000Z',
    capacity: { cpu: 2, memoryMiB: 2048 }, allocated: { cpu: 0, memoryMiB: 0 }, usage: null, lastHeartbeat: null, conditions: [], pods: [], reservedPods: [],
    agent: { hostname: 'h', pid: 1, startedAt: '2026-01-01T00:00:00.000Z', version: '0' },
    isolation: { user: 'per-pod', uidRange: '200000-265535', limits: 'cgroup-v1' },
  };
  t.match(describeNode(node, [], Date.parse('2026-01-01T00:01:00.000Z')), /Isolation:\s+pods run as per-pod \(uids 200000-265535\), limits by cgroup-v1/);
});

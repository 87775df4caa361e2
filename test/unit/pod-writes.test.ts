import t from 'tap';
import { checkPodDelete, checkPodWrite, isBerthError, POD_TRANSITIONS, type PodRecord, type PodWriter } from '@berth/core';
import { podRecord } from '../helpers/pods.js';

// Who may write what on a pod record, as a table: {writer, from, change, want}.
// `want` is 'ok', or the error code the write is refused with.

const base = podRecord();
const pod = (status: Partial<PodRecord['status']>, over: Partial<PodRecord> = {}): PodRecord => ({ ...base, ...over, status: { ...base.status, ...status } });
const bound = (phase: PodRecord['status']['phase'], over: Partial<PodRecord> = {}) => pod({ phase, nodeId: 'n1' }, over);

type Row = { name: string; writer: PodWriter; prev: PodRecord; next: PodRecord; want: 'ok' | 'INVALID_TRANSITION' | 'INTERNAL' };
const rows: Row[] = [
  // user
  { name: 'user stops a pod', writer: 'user', prev: bound('Running'), next: bound('Running', { desired: 'stopped' }), want: 'ok' },
  { name: 'user requests a restart', writer: 'user', prev: bound('Running'), next: bound('Running', { restartRequestedAt: 'x' }), want: 'ok' },
  { name: 'user marks for deletion', writer: 'user', prev: bound('Running'), next: bound('Running', { deletionRequested: 'x' }), want: 'ok' },
  { name: 'user may not unbind', writer: 'user', prev: bound('Succeeded'), next: pod({ phase: 'Pending' }), want: 'INTERNAL' },
  { name: 'user may not change the spec', writer: 'user', prev: bound('Running'), next: bound('Running', { spec: { ...base.spec, cpu: 4 } }), want: 'INTERNAL' },
  { name: 'nobody takes back a deletion', writer: 'user', prev: bound('Running', { deletionRequested: 'x' }), next: bound('Running'), want: 'INTERNAL' },
  // leader
  { name: 'leader binds', writer: 'leader', prev: pod({}), next: pod({ phase: 'Scheduled', nodeId: 'n1', reason: 'Scheduled' }), want: 'ok' },
  { name: 'leader explains a Pending pod', writer: 'leader', prev: pod({}), next: pod({ reason: 'Unschedulable', message: '0/1 nodes' }), want: 'ok' },
  { name: 'leader unbinds a running pod', writer: 'leader', prev: bound('Running'), next: pod({ phase: 'Pending', reason: 'NodeDead' }), want: 'ok' },
  { name: 'leader unbinds a finished pod to restart it', writer: 'leader', prev: bound('Succeeded'), next: pod({ phase: 'Pending', restarts: 1 }), want: 'ok' },
  { name: 'leader may not unbind a pod marked for deletion', writer: 'leader', prev: bound('Running', { deletionRequested: 'x' }), next: pod({ phase: 'Pending' }, { deletionRequested: 'x' }), want: 'INTERNAL' },
  { name: 'leader may not start a pod', writer: 'leader', prev: bound('Scheduled'), next: bound('Starting'), want: 'INTERNAL' },
  { name: 'leader may not move a pod between nodes', writer: 'leader', prev: bound('Running'), next: pod({ phase: 'Scheduled', nodeId: 'n2' }), want: 'INVALID_TRANSITION' },
  { name: 'leader may not bind and leave it Pending', writer: 'leader', prev: pod({}), next: pod({ nodeId: 'n1' }), want: 'INTERNAL' },
  { name: 'leader may not change desired', writer: 'leader', prev: pod({}), next: pod({}, { desired: 'stopped' }), want: 'INTERNAL' },
  { name: 'leader may not write usage', writer: 'leader', prev: pod({}), next: pod({ usage: { cpuPercent: 1, memoryMiB: 1, at: 'x' } }), want: 'INTERNAL' },
  // agent
  { name: 'agent starts a scheduled pod', writer: 'agent', prev: bound('Scheduled'), next: bound('Starting'), want: 'ok' },
  { name: 'agent reports Running', writer: 'agent', prev: bound('Starting'), next: { ...bound('Running'), status: { ...bound('Running').status, hostPort: 4000, startedAt: 'x' } }, want: 'ok' },
  { name: 'agent finishes a pod', writer: 'agent', prev: bound('Running'), next: bound('Succeeded'), want: 'ok' },
  { name: 'agent may not restart a finished pod (no reservation)', writer: 'agent', prev: bound('Succeeded'), next: bound('Starting'), want: 'INVALID_TRANSITION' },
  { name: 'agent may not skip Stopping', writer: 'agent', prev: bound('Paused'), next: bound('Stopped'), want: 'INVALID_TRANSITION' },
  { name: 'leader unbinding drops the readiness verdict', writer: 'leader', prev: pod({ phase: 'Running', nodeId: 'n1', ready: true }), next: pod({ phase: 'Pending', reason: 'NodeDead' }), want: 'ok' },
  { name: 'leader may not write readiness', writer: 'leader', prev: pod({ phase: 'Running', nodeId: 'n1', ready: true }), next: pod({ phase: 'Running', nodeId: 'n1', ready: false }), want: 'INTERNAL' },
  { name: 'leader marks a service pod for deletion', writer: 'leader', prev: bound('Running', { service: 'web' }), next: bound('Running', { service: 'web', deletionRequested: 'x' }), want: 'ok' },
  { name: 'leader may not mark a pod of no service', writer: 'leader', prev: bound('Running'), next: bound('Running', { deletionRequested: 'x' }), want: 'INTERNAL' },
  { name: 'agent may not unbind', writer: 'agent', prev: bound('Running'), next: pod({ phase: 'Pending' }), want: 'INTERNAL' },
  { name: 'agent may not rebind', writer: 'agent', prev: bound('Running'), next: { ...bound('Running'), status: { ...bound('Running').status, nodeId: 'n2' } }, want: 'INTERNAL' },
  { name: 'agent may not write an unbound pod', writer: 'agent', prev: pod({ phase: 'Scheduled' }), next: pod({ phase: 'Starting' }), want: 'INTERNAL' },
  { name: 'agent may not change desired', writer: 'agent', prev: bound('Running'), next: bound('Running', { desired: 'paused' }), want: 'INTERNAL' },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    let got: string = 'ok';
    try {
      checkPodWrite(row.writer, row.prev, row.next);
    } catch (err) {
      got = isBerthError(err) ? err.code : String(err);
    }
    t.equal(got, row.want);
  });
}

t.test('every phase change the table allows is owned by exactly one writer', async (t) => {
  for (const [from, tos] of Object.entries(POD_TRANSITIONS)) {
    for (const to of tos) {
      const prev = from === 'Pending' ? pod({}) : bound(from as PodRecord['status']['phase']);
      const next = to === 'Pending' ? pod({ phase: 'Pending' }) : bound(to);
      const owners = (['user', 'leader', 'agent'] as const).filter((w) => {
        try {
          checkPodWrite(w, prev, next);
          return true;
        } catch {
          return false;
        }
      });
      t.equal(owners.length, 1, `${from} -> ${to}: ${owners.join(', ') || 'nobody'}`);
    }
  }
});

t.test('deletes: users only unbound pods, agents and the leader only marked ones', async (t) => {
  const refused = (fn: () => void) => {
    try {
      fn();
      return false;
    } catch (err) {
      return isBerthError(err, 'INTERNAL');
    }
  };
  t.notOk(refused(() => checkPodDelete('user', pod({}))), 'user deletes a Pending pod');
  t.ok(refused(() => checkPodDelete('user', bound('Running'))), 'user may not delete a bound pod');
  t.notOk(refused(() => checkPodDelete('user', bound('Running'), true)), '... unless its node is gone');
  t.ok(refused(() => checkPodDelete('agent', bound('Running'))), 'agent deletes only marked pods');
  t.notOk(refused(() => checkPodDelete('agent', bound('Running', { deletionRequested: 'x' }))));
  t.notOk(refused(() => checkPodDelete('leader', bound('Running', { deletionRequested: 'x' }))));
});

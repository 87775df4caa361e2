import t from 'tap';
import type { PodPhase, PodRecord } from '@berth/core';
import { decidePod, nextStatus, phasePath, type DecideLimits, type PodAction, type PodMemory } from '@berth/agent';

// The agent's pod decision as a table: {record, actual, local, want} rows for
// every branch of decidePod (what the reconciler does next for one pod bound
// to its node), plus the hop-by-hop phase paths its writes take.

const T0 = Date.parse('2026-12-01T12:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const LIMITS: DecideLimits = { restartBackoffInitialMs: 500, restartBackoffMaxMs: 5000, stopTimeoutMs: 1000 };

const base: PodRecord = {
  id: 'p1',
  name: 'web',
  spec: { env: {}, cpu: 0.5, memoryMiB: 64, ports: [8080], restartPolicy: 'Always', priority: 0, nodeSelector: {} },
  desired: 'running',
  status: { phase: 'Running', nodeId: 'n1', reason: 'Started', message: '', restarts: 2, startedAt: iso(T0 - 60_000), finishedAt: null, hostPort: 4100, ready: true },
  createdAt: iso(T0 - 3_600_000),
};
/** A pod bound to n1 in `phase`, with status and top-level overrides. */
const pod = (phase: PodPhase, status: Partial<PodRecord['status']> = {}, over: Partial<PodRecord> = {}): PodRecord => ({
  ...base,
  ...over,
  status: { ...base.status, phase, ...status },
});
const CHECK = { path: '/healthz', intervalSeconds: 1, timeoutSeconds: 1, failureThreshold: 3 };
/** A pod with a health check: ready only on the prober's verdict. */
const checked: Partial<PodRecord> = { spec: { ...base.spec, healthCheck: CHECK } };
const policy = (restartPolicy: PodRecord['spec']['restartPolicy']): Partial<PodRecord> => ({ spec: { ...base.spec, restartPolicy } });
const running = { id: 'p1', state: 'running' } as const;
const paused = { id: 'p1', state: 'paused' } as const;
const created = { id: 'p1', state: 'created' } as const;
const exited = (exitCode: number) => ({ id: 'p1', state: 'exited', exitCode }) as const;
const fresh: PodMemory = { crashes: 0 };
const finished = { startedAt: iso(T0 - 60_000), finishedAt: iso(T0 - 30_000) };
const STOPPED = { to: 'Stopped', patch: { reason: 'Stopped', message: '' } } as const;
const EVICT = { reason: 'NodeDrained', requestedAt: iso(T0) } as const;
const EVICTED = { to: 'Stopped', patch: { reason: 'Evicted', message: 'evicted: NodeDrained' } } as const;
const EVICTED_EVENT = { type: 'Normal', reason: 'Evicted', message: 'evicted: NodeDrained' } as const;

type Row = { name: string; record: PodRecord; actual: { id: string; state: 'created' | 'running' | 'paused' | 'exited'; exitCode?: number; oomKilled?: boolean } | undefined; local?: PodMemory; now?: number; want: PodAction };
const rows: Row[] = [
  // Scheduled
  { name: 'Scheduled, desired running: launch on a fresh host port', record: pod('Scheduled', { restarts: 0 }), actual: undefined, want: { kind: 'launch', restarts: 0, fresh: true, restarted: false, reason: 'Starting', message: '' } },
  {
    name: 'Scheduled, desired stopped: Stopped without starting',
    record: pod('Scheduled', {}, { desired: 'stopped' }),
    actual: undefined,
    want: { kind: 'write', to: 'Stopped', patch: { reason: 'Stopped', message: 'stopped before it started', finishedAt: iso(T0) } },
  },
  // Stopping
  { name: 'Stopping, still live: stop, then Stopped', record: pod('Stopping'), actual: running, want: { kind: 'stop-then-write', why: 'stop', then: STOPPED } },
  {
    name: 'Stopping, whatever is now desired: the stop is finished',
    record: pod('Stopping', {}, { desired: 'running' }),
    actual: exited(143),
    want: { kind: 'write', to: 'Stopped', patch: { reason: 'Stopped', message: '', finishedAt: iso(T0), exitCode: 143 } },
  },
  // Stopped
  { name: 'Stopped, desired running: start again (not a restart)', record: pod('Stopped', finished), actual: exited(0), want: { kind: 'launch', restarts: 2, fresh: false, restarted: false, reason: 'Starting', message: '' } },
  { name: 'Stopped, desired stopped: nothing', record: pod('Stopped', finished, { desired: 'stopped' }), actual: exited(0), want: { kind: 'none' } },
  {
    name: 'Stopped, restart requested and not yet honoured: start counts as a restart',
    record: pod('Stopped', finished, { restartRequestedAt: iso(T0 - 1000) }),
    actual: exited(0),
    want: { kind: 'launch', restarts: 3, fresh: false, restarted: true, reason: 'Restarting', message: '' },
  },
  {
    name: 'Stopped, restart request honoured by the last start (agent restarted): not again',
    record: pod('Stopped', { ...finished, restartHandled: iso(T0 - 45_000) }, { restartRequestedAt: iso(T0 - 45_000) }),
    actual: exited(0),
    want: { kind: 'launch', restarts: 2, fresh: false, restarted: false, reason: 'Starting', message: '' },
  },
  { name: 'Stopped with a live container: stop it first', record: pod('Stopped', finished), actual: running, want: { kind: 'stop', why: 'a stale container' } },
  // Terminal: running again is the leader's (it unbinds the pod)
  { name: 'Succeeded, desired running: not restarted here', record: pod('Succeeded', finished), actual: exited(0), want: { kind: 'none' } },
  { name: 'Failed, restart requested: not restarted here', record: pod('Failed', finished, { restartRequestedAt: iso(T0) }), actual: exited(1), want: { kind: 'none' } },
  { name: 'Failed with a live container: stop it', record: pod('Failed', finished), actual: paused, want: { kind: 'stop', why: 'a stale container' } },
  // Exits, by restart policy
  {
    name: 'Always, exit 0: back off 500 ms (first crash)',
    record: pod('Running'),
    actual: exited(0),
    local: { crashes: 0, lastStart: T0 - 1000 },
    want: {
      kind: 'back-off',
      delayMs: 500,
      crashes: 1,
      write: { to: 'Starting', patch: { reason: 'BackOff', message: 'exited with code 0; restarting in 500 ms', finishedAt: iso(T0), exitCode: 0, restarts: 3 } },
      event: { type: 'Warning', reason: 'BackOff', message: 'exited with code 0; restarting in 500 ms' },
    },
  },
  {
    name: 'Always, third crash in a row: 2 s',
    record: pod('Running'),
    actual: exited(1),
    local: { crashes: 2, lastStart: T0 - 1000 },
    want: {
      kind: 'back-off',
      delayMs: 2000,
      crashes: 3,
      write: { to: 'Starting', patch: { reason: 'BackOff', message: 'exited with code 1; restarting in 2000 ms', finishedAt: iso(T0), exitCode: 1, restarts: 3 } },
      event: { type: 'Warning', reason: 'BackOff', message: 'exited with code 1; restarting in 2000 ms' },
    },
  },
  {
    name: 'Always, many crashes: capped at the maximum',
    record: pod('Running'),
    actual: exited(1),
    local: { crashes: 9, lastStart: T0 - 1000 },
    want: {
      kind: 'back-off',
      delayMs: 5000,
      crashes: 10,
      write: { to: 'Starting', patch: { reason: 'BackOff', message: 'exited with code 1; restarting in 5000 ms', finishedAt: iso(T0), exitCode: 1, restarts: 3 } },
      event: { type: 'Warning', reason: 'BackOff', message: 'exited with code 1; restarting in 5000 ms' },
    },
  },
  {
    name: 'Always, after a long run: the crash count starts over',
    record: pod('Running'),
    actual: exited(1),
    local: { crashes: 5, lastStart: T0 - 10_000 },
    want: {
      kind: 'back-off',
      delayMs: 500,
      crashes: 1,
      write: { to: 'Starting', patch: { reason: 'BackOff', message: 'exited with code 1; restarting in 500 ms', finishedAt: iso(T0), exitCode: 1, restarts: 3 } },
      event: { type: 'Warning', reason: 'BackOff', message: 'exited with code 1; restarting in 500 ms' },
    },
  },
  {
    name: 'OnFailure, exit 0: Succeeded',
    record: pod('Running', {}, policy('OnFailure')),
    actual: exited(0),
    want: {
      kind: 'write',
      to: 'Succeeded',
      patch: { reason: 'Completed', message: 'exited with code 0', finishedAt: iso(T0), exitCode: 0 },
      event: { type: 'Normal', reason: 'Completed', message: 'exited with code 0' },
    },
  },
  {
    name: 'OnFailure, exit 2: back off',
    record: pod('Running', {}, policy('OnFailure')),
    actual: exited(2),
    want: {
      kind: 'back-off',
      delayMs: 500,
      crashes: 1,
      write: { to: 'Starting', patch: { reason: 'BackOff', message: 'exited with code 2; restarting in 500 ms', finishedAt: iso(T0), exitCode: 2, restarts: 3 } },
      event: { type: 'Warning', reason: 'BackOff', message: 'exited with code 2; restarting in 500 ms' },
    },
  },
  {
    name: 'Never, exit 1: Failed with the exit code',
    record: pod('Running', {}, policy('Never')),
    actual: exited(1),
    want: {
      kind: 'write',
      to: 'Failed',
      patch: { reason: 'Error', message: 'exited with code 1', finishedAt: iso(T0), exitCode: 1 },
      event: { type: 'Warning', reason: 'Failed', message: 'exited with code 1 (restartPolicy Never)' },
    },
  },
  {
    name: 'Never, killed by the OOM killer: Failed with reason OOMKilled',
    record: pod('Running', {}, policy('Never')),
    actual: { ...exited(137), oomKilled: true },
    want: {
      kind: 'write',
      to: 'Failed',
      patch: { reason: 'OOMKilled', message: "killed by the kernel's OOM killer over its memory limit of 64 MiB (exit code 137)", finishedAt: iso(T0), exitCode: 137 },
      event: { type: 'Warning', reason: 'OOMKilled', message: "killed by the kernel's OOM killer over its memory limit of 64 MiB (exit code 137) (restartPolicy Never)" },
    },
  },
  {
    name: 'Always, killed by the OOM killer: back off, saying so',
    record: pod('Running'),
    actual: { ...exited(137), oomKilled: true },
    want: {
      kind: 'back-off',
      delayMs: 500,
      crashes: 1,
      write: { to: 'Starting', patch: { reason: 'BackOff', message: "OOMKilled: killed by the kernel's OOM killer over its memory limit of 64 MiB (exit code 137); restarting in 500 ms", finishedAt: iso(T0), exitCode: 137, restarts: 3 } },
      event: { type: 'Warning', reason: 'BackOff', message: "OOMKilled: killed by the kernel's OOM killer over its memory limit of 64 MiB (exit code 137); restarting in 500 ms" },
    },
  },
  {
    name: 'Never, exit 0: Succeeded',
    record: pod('Running', {}, policy('Never')),
    actual: exited(0),
    want: {
      kind: 'write',
      to: 'Succeeded',
      patch: { reason: 'Completed', message: 'exited with code 0', finishedAt: iso(T0), exitCode: 0 },
      event: { type: 'Normal', reason: 'Completed', message: 'exited with code 0' },
    },
  },
  {
    name: 'exited while desired stopped: Stopped with the exit code',
    record: pod('Running', {}, { desired: 'stopped' }),
    actual: exited(3),
    want: { kind: 'write', to: 'Stopped', patch: { reason: 'Stopped', message: 'exited with code 3', finishedAt: iso(T0), exitCode: 3 } },
  },
  // Crash-loop back-off under way
  { name: 'backing off: wait for the rest of the delay', record: pod('Starting', { reason: 'BackOff', exitCode: 1 }), actual: exited(1), local: { crashes: 1, restartAt: T0 + 300 }, want: { kind: 'requeue-after', ms: 300 } },
  {
    name: 'back-off over: start again (restarts were counted with the BackOff write)',
    record: pod('Starting', { reason: 'BackOff', exitCode: 1 }),
    actual: exited(1),
    local: { crashes: 1, restartAt: T0 - 1 },
    want: { kind: 'launch', restarts: 2, fresh: false, restarted: true, reason: 'Restarting', message: 'after exit code 1' },
  },
  {
    name: 'backing off, then stopped: Stopped',
    record: pod('Starting', { reason: 'BackOff', exitCode: 1 }, { desired: 'stopped' }),
    actual: exited(1),
    local: { crashes: 1, restartAt: T0 + 300 },
    want: { kind: 'write', to: 'Stopped', patch: { reason: 'Stopped', message: 'stopped while backing off' } },
  },
  // The runtime holds no live container for a pod that should run
  {
    name: 'Running but not in the runtime (agent restarted): run again, counted',
    record: pod('Running'),
    actual: undefined,
    want: { kind: 'launch', restarts: 3, fresh: false, restarted: true, reason: 'AgentRestarted', message: 'the agent restarted and no longer held the container' },
  },
  { name: 'Starting, not yet in the runtime: launch', record: pod('Starting'), actual: undefined, want: { kind: 'launch', restarts: 2, fresh: false, restarted: false, reason: 'Starting', message: '' } },
  { name: 'Running, container created but not started: start it', record: pod('Running'), actual: created, want: { kind: 'launch', restarts: 2, fresh: false, restarted: false, reason: 'Starting', message: '' } },
  { name: 'Running, nothing in the runtime, desired stopped: Stopped', record: pod('Running', {}, { desired: 'stopped' }), actual: undefined, want: { kind: 'write', to: 'Stopped', patch: { reason: 'Stopped', message: '', finishedAt: iso(T0) } } },
  // Live, desired running / paused / stopped
  { name: 'Running and running: keep it so (health check armed)', record: pod('Running'), actual: running, want: { kind: 'running', resume: false } },
  {
    name: 'Running with a notable usage sample: write it',
    record: pod('Running'),
    actual: running,
    local: { crashes: 0, usage: { cpuPercent: 12, memoryMiB: 40, at: iso(T0) } },
    want: { kind: 'running', resume: false, write: { to: 'Running', patch: { usage: { cpuPercent: 12, memoryMiB: 40, at: iso(T0) } } } },
  },
  {
    name: 'Starting but live (the Running write was lost): Running',
    record: pod('Starting'),
    actual: running,
    local: { crashes: 0, lastStart: T0 - 2000, hostPort: 4100 },
    want: {
      kind: 'running',
      resume: false,
      write: { to: 'Running', patch: { reason: 'Started', message: '', restarts: 2, startedAt: iso(T0 - 2000), finishedAt: null, exitCode: undefined, hostPort: 4100, usage: undefined, ready: true } },
    },
  },
  {
    name: 'Starting, live, adopted after an agent restart: host port from the record',
    record: pod('Starting', { hostPort: 4200 }),
    actual: running,
    want: {
      kind: 'running',
      resume: false,
      write: { to: 'Running', patch: { reason: 'Started', message: '', restarts: 2, startedAt: iso(T0), finishedAt: null, exitCode: undefined, hostPort: 4200, usage: undefined, ready: true } },
    },
  },
  { name: 'desired paused: pause, then Paused', record: pod('Running', {}, { desired: 'paused' }), actual: running, want: { kind: 'pause', runtime: true, write: { to: 'Paused', patch: { reason: 'Paused', message: '' } } } },
  { name: 'desired paused, already paused and Paused: nothing', record: pod('Paused', {}, { desired: 'paused' }), actual: paused, want: { kind: 'none' } },
  { name: 'desired paused, paused but the write was lost: Paused', record: pod('Running', {}, { desired: 'paused' }), actual: paused, want: { kind: 'pause', runtime: false, write: { to: 'Paused', patch: { reason: 'Paused', message: '' } } } },
  { name: 'resume: resume, then Running', record: pod('Paused'), actual: paused, want: { kind: 'running', resume: true, write: { to: 'Running', patch: { reason: 'Resumed', message: '', ready: true } } } },
  { name: 'resumed but the write was lost: Running', record: pod('Paused'), actual: running, want: { kind: 'running', resume: false, write: { to: 'Running', patch: { reason: 'Resumed', message: '', ready: true } } } },
  {
    name: 'desired stopped while live: Stopping, stop, Stopped',
    record: pod('Running', {}, { desired: 'stopped' }),
    actual: running,
    want: { kind: 'stop-then-write', why: 'stop', first: { to: 'Stopping', patch: { reason: 'Stopping', message: 'grace 1 s' } }, then: STOPPED },
  },
  // Readiness (status.ready): written with Running, repaired by the next sync when the verdict or the record differs
  { name: 'no health check, record not ready (an older agent, a stale value): ready', record: pod('Running', { ready: false }), actual: running, want: { kind: 'running', resume: false, write: { to: 'Running', patch: { ready: true } } } },
  { name: 'no health check, record says nothing: ready', record: pod('Running', { ready: undefined }), actual: running, want: { kind: 'running', resume: false, write: { to: 'Running', patch: { ready: true } } } },
  { name: 'health check, first probe passed: ready', record: pod('Running', { ready: false }, checked), actual: running, local: { crashes: 0, ready: true }, want: { kind: 'running', resume: false, write: { to: 'Running', patch: { ready: true } } } },
  { name: 'health check, one probe failed (below the threshold): not ready, not restarted', record: pod('Running', {}, checked), actual: running, local: { crashes: 0, ready: false }, want: { kind: 'running', resume: false, write: { to: 'Running', patch: { ready: false } } } },
  { name: 'health check, verdict as recorded: no write', record: pod('Running', { ready: false }, checked), actual: running, local: { crashes: 0, ready: false }, want: { kind: 'running', resume: false } },
  { name: 'health check, no verdict yet (agent restarted, adopted the container): the record stands', record: pod('Running', {}, checked), actual: running, want: { kind: 'running', resume: false } },
  { name: 'health check on a runtime with nothing to probe (simulated): ready', record: pod('Running', { ready: false }, checked), actual: running, local: { crashes: 0, noProbes: true }, want: { kind: 'running', resume: false, write: { to: 'Running', patch: { ready: true } } } },
  {
    name: 'a verdict and a usage sample: one write',
    record: pod('Running', {}, checked),
    actual: running,
    local: { crashes: 0, ready: false, usage: { cpuPercent: 12, memoryMiB: 40, at: iso(T0) } },
    want: { kind: 'running', resume: false, write: { to: 'Running', patch: { usage: { cpuPercent: 12, memoryMiB: 40, at: iso(T0) }, ready: false } } },
  },
  {
    name: 'health check, Starting but live (adopted): Running, not ready until a probe passes',
    record: pod('Starting', { ready: false }, checked),
    actual: running,
    local: { crashes: 0, lastStart: T0 - 2000, hostPort: 4100 },
    want: {
      kind: 'running',
      resume: false,
      write: { to: 'Running', patch: { reason: 'Started', message: '', restarts: 2, startedAt: iso(T0 - 2000), finishedAt: null, exitCode: undefined, hostPort: 4100, usage: undefined, ready: false } },
    },
  },
  { name: 'health check, resumed: Running, not ready until a probe passes', record: pod('Paused', { ready: false }, checked), actual: paused, want: { kind: 'running', resume: true, write: { to: 'Running', patch: { reason: 'Resumed', message: '', ready: false } } } },
  {
    name: 'health check failed the threshold: restart wins over readiness',
    record: pod('Running', {}, checked),
    actual: running,
    local: { crashes: 0, ready: false, unhealthy: 'GET /healthz failed 3 times' },
    want: { kind: 'restart', restarts: 3, reason: 'Unhealthy', message: 'GET /healthz failed 3 times', event: { type: 'Warning', reason: 'Unhealthy', message: 'GET /healthz failed 3 times' } },
  },
  // Restart requests on a live pod
  {
    name: 'restart requested after it started: restart in place',
    record: pod('Running', {}, { restartRequestedAt: iso(T0 - 1000) }),
    actual: running,
    want: { kind: 'restart', restarts: 3, reason: 'Restarting', message: `restart requested at ${iso(T0 - 1000)}` },
  },
  { name: 'restart request already applied: keep running', record: pod('Running', {}, { restartRequestedAt: iso(T0 - 1000) }), actual: running, local: { crashes: 0, restartApplied: iso(T0 - 1000) }, want: { kind: 'running', resume: false } },
  { name: 'restart request honoured by the running start (agent restarted): already done', record: pod('Running', { restartHandled: iso(T0 - 90_000) }, { restartRequestedAt: iso(T0 - 90_000) }), actual: running, want: { kind: 'running', resume: false } },
  {
    name: 'a request stamped before the start by a slower clock still restarts once',
    record: pod('Running', { restartHandled: iso(T0 - 120_000) }, { restartRequestedAt: iso(T0 - 90_000) }),
    actual: running,
    want: { kind: 'restart', restarts: 3, reason: 'Restarting', message: `restart requested at ${iso(T0 - 90_000)}` },
  },
  {
    name: 'Paused, restart requested: restart',
    record: pod('Paused', {}, { desired: 'paused', restartRequestedAt: iso(T0 - 1000) }),
    actual: paused,
    want: { kind: 'restart', restarts: 3, reason: 'Restarting', message: `restart requested at ${iso(T0 - 1000)}` },
  },
  {
    name: 'restart requested but desired stopped: stop',
    record: pod('Running', {}, { desired: 'stopped', restartRequestedAt: iso(T0 - 1000) }),
    actual: running,
    want: { kind: 'stop-then-write', why: 'stop', first: { to: 'Stopping', patch: { reason: 'Stopping', message: 'grace 1 s' } }, then: STOPPED },
  },
  // Failed health checks
  {
    name: 'unhealthy, Always: restart',
    record: pod('Running'),
    actual: running,
    local: { crashes: 0, unhealthy: 'GET /health failed 3 times' },
    want: { kind: 'restart', restarts: 3, reason: 'Unhealthy', message: 'GET /health failed 3 times', event: { type: 'Warning', reason: 'Unhealthy', message: 'GET /health failed 3 times' } },
  },
  {
    name: 'unhealthy, OnFailure: restart',
    record: pod('Running', {}, policy('OnFailure')),
    actual: running,
    local: { crashes: 0, unhealthy: 'GET /health failed 3 times' },
    want: { kind: 'restart', restarts: 3, reason: 'Unhealthy', message: 'GET /health failed 3 times', event: { type: 'Warning', reason: 'Unhealthy', message: 'GET /health failed 3 times' } },
  },
  {
    name: 'unhealthy, Never: stop, then Failed',
    record: pod('Running', {}, policy('Never')),
    actual: running,
    local: { crashes: 0, unhealthy: 'GET /health failed 3 times' },
    want: {
      kind: 'stop-then-write',
      why: 'unhealthy',
      then: { to: 'Failed', patch: { reason: 'Unhealthy', message: 'GET /health failed 3 times' } },
      event: { type: 'Warning', reason: 'Unhealthy', message: 'GET /health failed 3 times' },
    },
  },
  {
    name: 'unhealthy but desired stopped: just stop',
    record: pod('Running', {}, { desired: 'stopped' }),
    actual: running,
    local: { crashes: 0, unhealthy: 'GET /health failed 3 times' },
    want: { kind: 'stop-then-write', why: 'stop', first: { to: 'Stopping', patch: { reason: 'Stopping', message: 'grace 1 s' } }, then: STOPPED },
  },
  // Deletion
  // Eviction (drain, preemption, a node that shrank): stop, acknowledge with Stopped, never start again here.
  {
    name: 'evicted while running: Stopping, stop with grace, then Stopped (Evicted)',
    record: pod('Running', { eviction: EVICT }),
    actual: running,
    want: { kind: 'stop-then-write', why: 'evicted', first: { to: 'Stopping', patch: { reason: 'Evicting', message: 'evicted: NodeDrained; grace 1 s' } }, then: EVICTED, event: EVICTED_EVENT, remove: true },
  },
  {
    name: 'evicted while paused: stopped the same way',
    record: pod('Paused', { eviction: EVICT }),
    actual: paused,
    want: { kind: 'stop-then-write', why: 'evicted', first: { to: 'Stopping', patch: { reason: 'Evicting', message: 'evicted: NodeDrained; grace 1 s' } }, then: EVICTED, event: EVICTED_EVENT, remove: true },
  },
  { name: 'evicted before it started: Stopped at once, not launched', record: pod('Scheduled', { eviction: EVICT }), actual: undefined, want: { kind: 'write', to: 'Stopped', patch: { ...EVICTED.patch, finishedAt: iso(T0) }, event: EVICTED_EVENT, remove: true } },
  { name: 'evicted while backing off (exited): Stopped, not restarted', record: pod('Starting', { eviction: EVICT }), actual: exited(1), local: { crashes: 2, restartAt: T0 + 1000 }, want: { kind: 'write', to: 'Stopped', patch: { ...EVICTED.patch, finishedAt: iso(T0) }, event: EVICTED_EVENT, remove: true } },
  { name: 'evicted and Stopped: acknowledged, nothing to do (even if desired running)', record: pod('Stopped', { eviction: EVICT }), actual: exited(0), want: { kind: 'none' } },
  { name: 'evicted and Stopped but a container is live: stop it', record: pod('Stopped', { eviction: EVICT }), actual: running, want: { kind: 'stop', why: 'a stale container' } },
  { name: 'evicted and marked for deletion: deleted (deletion wins)', record: pod('Running', { eviction: EVICT }, { deletionRequested: iso(T0) }), actual: running, want: { kind: 'delete', stopFirst: true } },
  { name: 'deletion requested, live: stop first', record: pod('Running', {}, { deletionRequested: iso(T0) }), actual: running, want: { kind: 'delete', stopFirst: true } },
  { name: 'deletion requested, paused: stop first', record: pod('Paused', {}, { deletionRequested: iso(T0) }), actual: paused, want: { kind: 'delete', stopFirst: true } },
  { name: 'deletion requested, exited: remove at once', record: pod('Succeeded', finished, { deletionRequested: iso(T0) }), actual: exited(0), want: { kind: 'delete', stopFirst: false } },
  { name: 'deletion requested before it started', record: pod('Scheduled', {}, { deletionRequested: iso(T0) }), actual: undefined, want: { kind: 'delete', stopFirst: false } },
];

/** The phases an action writes, for checking each is reachable along the table. */
function writes(a: PodAction): PodPhase[] {
  switch (a.kind) {
    case 'write':
      return [a.to];
    case 'back-off':
      return [a.write.to];
    case 'stop-then-write':
      return [...(a.first ? [a.first.to] : []), a.then.to];
    case 'pause':
    case 'running':
      return a.write ? [a.write.to] : [];
    default:
      return [];
  }
}

for (const r of rows) {
  t.test(r.name, async (t) => {
    const local = r.local ?? fresh;
    const frozen = JSON.stringify([r.record, local]);
    const got = decidePod(r.record, r.actual, local, r.now ?? T0, LIMITS);
    t.same(got, r.want);
    t.equal(JSON.stringify([r.record, local]), frozen, 'neither the record nor the memory is mutated');
    let from = r.record.status.phase;
    for (const to of writes(got)) {
      t.ok(phasePath(from, to), `${from} -> ${to} is reachable along the transition table`);
      from = to;
    }
  });
}

const paths: Array<{ from: PodPhase; to: PodPhase; want: PodPhase[] | undefined }> = [
  { from: 'Running', to: 'Running', want: ['Running'] },
  { from: 'Scheduled', to: 'Starting', want: ['Starting'] },
  { from: 'Running', to: 'Stopped', want: ['Stopping', 'Stopped'] },
  // The first shortest path in table order: Paused lists Stopping before Running, so a paused pod that fails is never reported Running.
  { from: 'Paused', to: 'Failed', want: ['Stopping', 'Failed'] },
  { from: 'Paused', to: 'Stopped', want: ['Stopping', 'Stopped'] },
  { from: 'Paused', to: 'Starting', want: ['Starting'] }, // a paused pod restarted (or lost with its agent) starts again with one CAS write
  { from: 'Succeeded', to: 'Starting', want: undefined },
  { from: 'Running', to: 'Pending', want: undefined },
];
t.test('phasePath: hop by hop along the table, never through Pending', async (t) => {
  for (const p of paths) t.same(phasePath(p.from, p.to), p.want, `${p.from} -> ${p.to}`);
});

// Every status write goes through nextStatus: a pod is ready only while Running, and leaves service with the
// very write that says it stopped running.
const ready = { ...base.status, ready: true };
const statuses: Array<{ name: string; phase: PodPhase; patch: Partial<PodRecord['status']>; want: boolean | undefined }> = [
  { name: 'Running -> Stopping: not ready', phase: 'Stopping', patch: { reason: 'Stopping' }, want: false },
  { name: 'Running -> Starting (a restart, a back-off): not ready', phase: 'Starting', patch: { reason: 'BackOff' }, want: false },
  { name: 'Running -> Paused: not ready', phase: 'Paused', patch: { reason: 'Paused' }, want: false },
  { name: 'a patch cannot keep a stopped pod ready', phase: 'Stopped', patch: { ready: true }, want: false },
  { name: 'Running, usage only: readiness kept', phase: 'Running', patch: { usage: { cpuPercent: 1, memoryMiB: 2, at: iso(T0) } }, want: true },
  { name: 'Running, a verdict: written', phase: 'Running', patch: { ready: false }, want: false },
];
t.test('nextStatus: ready only while Running', async (t) => {
  for (const s of statuses) {
    const got = nextStatus(ready, s.phase, s.patch);
    t.equal(got.ready, s.want, s.name);
    t.equal(got.phase, s.phase, `${s.name}: phase`);
  }
  t.equal(ready.ready, true, 'the status written from is not mutated');
});

import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { idOf, prefixes, type PodRecord } from '@berth/core';
import { waitFor } from '@berth/devcluster';
import { processAgent } from '../helpers/process-agent.js';
import { tempDir } from '../helpers/fixtures.js';

// Pod readiness (status.ready) as a real agent writes it to a real etcd, for process-runtime pods: every
// record the agent writes is taken from an etcd watch, so no short-lived state goes unseen.

/** Answers on PORT; /healthz is 200 while the file HEALTH_FILE says "ok", else 500. */
const SERVER = `
const fs = require('fs');
const http = require('http');
http.createServer((req, res) => {
  if (req.url === '/healthz') {
    let ok = false;
    try { ok = fs.readFileSync(process.env.HEALTH_FILE, 'utf8').trim() === 'ok'; } catch {}
    res.statusCode = ok ? 200 : 500;
    return res.end(ok ? 'ok' : 'failing');
  }
  res.end('hello');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

interface Seen {
  at: number;
  pod: PodRecord;
}

t.test('the agent reports readiness in the pod status', async (t) => {
  const { client, stand, createPod } = await processAgent(t, 'ready1', []);
  const dir = tempDir(t, 'berth-ready-');

  // Every write to a pod record, in order, per pod id.
  const writes = new Map<string, Seen[]>();
  const watcher = await client.watch().prefix(prefixes.pods).create();
  t.teardown(() => watcher.cancel());
  watcher.on('put', (kv) => {
    const id = idOf('pods', kv.key.toString());
    if (id === undefined) return;
    const list = writes.get(id) ?? [];
    list.push({ at: Date.now(), pod: JSON.parse(kv.value.toString()) as PodRecord });
    writes.set(id, list);
  });
  const seen = (id: string) => writes.get(id) ?? [];
  /** Waits for a write to the pod after the `from`-th that satisfies `pred`; returns its index. */
  const waitWrite = (id: string, from: number, what: string, pred: (p: PodRecord) => boolean) =>
    waitFor(() => {
      const i = seen(id).findIndex((s, k) => k >= from && pred(s.pod));
      return i >= 0 ? i : undefined;
    }, { what: `pod ${id}: ${what}`, timeoutMs: 20_000 });
  const running = (p: PodRecord) => p.status.phase === 'Running';
  const healthFile = (name: string, ok: boolean) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, ok ? 'ok' : 'failing');
    return file;
  };
  const server = (name: string, healthy: boolean, healthCheck?: PodRecord['spec']['healthCheck']) =>
    createPod(name, { command: [process.execPath, '-e', SERVER], ports: [8080], env: { HEALTH_FILE: healthFile(name, healthy) }, ...(healthCheck ? { healthCheck } : {}) });

  t.test('without a health check: ready in the very write that says Running', async (t) => {
    const id = await server('plain', true);
    const i = await waitWrite(id, 0, 'Running', running);
    t.equal(seen(id)[i]!.pod.status.ready, true, 'the first Running write says ready');
    t.ok(seen(id).slice(0, i).every((s) => s.pod.status.ready !== true), 'not ready before Running');

    // A record that says otherwise (written by an older agent, say) is repaired by the pod's next sync.
    await stand.change(id, (p) => ({ ...p, status: { ...p.status, ready: false } }));
    const stale = await waitWrite(id, i, 'the stale value', (p) => p.status.ready === false);
    await waitWrite(id, stale, 'ready again', (p) => running(p) && p.status.ready === true);
    t.pass('repaired');
  });

  t.test('a failing check takes a pod out of service at once, a passing one brings it back; neither restarts it', async (t) => {
    // failureThreshold 30 at 1 s: a restart is half a minute away, readiness follows every single probe.
    const id = await server('flip', false, { path: '/healthz', intervalSeconds: 1, timeoutSeconds: 1, failureThreshold: 30 });
    const started = await waitWrite(id, 0, 'Running', running);
    t.equal(seen(id)[started]!.pod.status.ready, false, 'Running with a check: not ready until a probe passes');
    const file = path.join(dir, 'flip');

    fs.writeFileSync(file, 'ok');
    const up = await waitWrite(id, started, 'ready', (p) => running(p) && p.status.ready === true);
    fs.writeFileSync(file, 'failing');
    const down = await waitWrite(id, up, 'not ready after a failed probe', (p) => p.status.ready === false);
    t.match(seen(id)[down]!.pod.status, { phase: 'Running', restarts: 0 }, 'still Running, not restarted: one failure only takes it out of service');
    fs.writeFileSync(file, 'ok');
    const back = await waitWrite(id, down, 'ready again', (p) => p.status.ready === true);
    t.match(seen(id)[back]!.pod.status, { phase: 'Running', restarts: 0 }, 'ready again after the next pass');
    t.same(
      seen(id)
        .slice(started)
        .map((s) => s.pod.status.ready),
      [false, true, false, true],
      'one write per change of the verdict, nothing in between',
    );
  });

  t.test('a new pod is probed early: ready well before its first regular probe', async (t) => {
    const id = await server('early', true, { path: '/healthz', intervalSeconds: 30, timeoutSeconds: 1, failureThreshold: 3 });
    const i = await waitWrite(id, 0, 'Running', running);
    const ready = await waitWrite(id, i, 'ready', (p) => p.status.ready === true);
    const waited = seen(id)[ready]!.at - seen(id)[i]!.at;
    t.ok(waited < 15_000, `ready ${waited} ms after Running (the first regular probe is due after 30 s)`);
  });

  t.test('stopping a ready pod: the Stopping write says not ready', async (t) => {
    const id = await server('leave', true, { path: '/healthz', intervalSeconds: 1, timeoutSeconds: 1, failureThreshold: 3 });
    const up = await waitWrite(id, 0, 'ready', (p) => running(p) && p.status.ready === true);
    await stand.change(id, (p) => ({ ...p, desired: 'stopped' }));
    const stopping = await waitWrite(id, up, 'Stopping', (p) => p.status.phase === 'Stopping');
    t.equal(seen(id)[stopping]!.pod.status.ready, false, 'out of service with the write that starts the stop');
    const stopped = await waitWrite(id, stopping, 'Stopped', (p) => p.status.phase === 'Stopped');
    t.equal(seen(id)[stopped]!.pod.status.ready, false);
  });

  t.test('no record outside Running ever says ready', async (t) => {
    const wrong = [...writes.values()].flat().filter((s) => s.pod.status.phase !== 'Running' && s.pod.status.ready === true);
    t.same(wrong.map((s) => `${s.pod.name} ${s.pod.status.phase}`), []);
  });
});

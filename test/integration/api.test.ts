import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { validate } from '@readme/openapi-parser';
import { repoRoot } from '@berth/devcluster';
import { clusterFor } from '../helpers/fixtures.js';

t.test('REST API surface of a replica', async (t) => {
  const cluster = await clusterFor(t, { controllers: 1 });
  const [c] = cluster.controllers;
  if (!c) throw new Error('no controller');
  await c.waitReady();

  t.test('serves a valid OpenAPI document and Swagger UI', async (t) => {
    const doc = (await (await fetch(`${c.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    const result = await validate(structuredClone(doc) as never);
    t.ok(result.valid, `openapi.json validates${result.valid ? '' : `: ${JSON.stringify(result.errors).slice(0, 500)}`}`);
    for (const p of ['/healthz', '/readyz', '/metrics', '/v1/leader', '/v1/cluster']) t.ok(doc.paths[p], `documents ${p}`);
    const ui = await fetch(`${c.url}/docs/`);
    t.equal(ui.status, 200);
    t.match(await ui.text(), /swagger/i, '/docs serves Swagger UI');
  });

  t.test('errors have the shape {error, message}', async (t) => {
    const res = await fetch(`${c.url}/v1/nope`);
    t.equal(res.status, 404);
    t.same(await res.json(), { error: 'NOT_FOUND', message: 'no route GET /v1/nope' });
  });

  t.test('metrics expose leadership and request timing', async (t) => {
    await cluster.waitForAgreedLeader();
    t.equal(await c.metric('berth_leader'), 1, 'the only replica leads');
    t.ok(((await c.metric('berth_leader_term')) ?? 0) > 0, 'with a term');
    const text = await (await fetch(`${c.url}/metrics`)).text();
    t.match(text, /berth_http_request_duration_seconds_bucket\{[^}]*route="\/v1\/leader"/);
  });

  t.test('bad flags are refused with a message naming the flag', async (t) => {
    const main = path.join(repoRoot, 'apps/controller/dist/main.js');
    const bad = spawnSync(process.execPath, [main, '--port', 'eighty'], { encoding: 'utf8' });
    t.not(bad.status, 0);
    t.match(bad.stderr, /--port must be an integer/);
    const policy = spawnSync(process.execPath, [main, '--policy', 'random'], { encoding: 'utf8' });
    t.not(policy.status, 0);
    t.match(policy.stderr, /--policy/);
    const help = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8' });
    t.equal(help.status, 0);
    for (const flag of ['--etcd', '--port', '--host', '--id', '--lease-ttl', '--policy', 'BERTH_ETCD']) t.match(help.stdout, flag);
  });
});

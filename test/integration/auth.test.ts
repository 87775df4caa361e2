import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { auditKey, type AuditRecord, type CreatedToken, type Role } from '@berth/core';
import { commit, createEtcdClient, putJson } from '@berth/store';
import { Agent, fetch as undiciFetch } from 'undici';
import { freePort, ManagedProcess, repoRoot, waitFor } from '@berth/devcluster';
import { clusterFor, tempDir } from '../helpers/fixtures.js';

/**
 * Tokens and roles against two real replicas sharing one bootstrap admin
 * token file: every route class with no token, too small a role and enough
 * of one; revocation seen by the other replica; the session cookie and its
 * cross-site guard; rate limits per token; the audit trail, refused
 * requests included; and no secret in a log or an audit record.
 */

const dir = tempDir(t, 'berth-auth-');
const tokenFile = path.join(dir, 'secrets', 'admin-token');
const cluster = await clusterFor(t, { controllers: 2, adminTokenFile: tokenFile, controllerArgs: ['--rate-limit-read', '300', '--rate-limit-write', '300'] });
const [a, b] = cluster.controllers as [(typeof cluster.controllers)[0], (typeof cluster.controllers)[0]];
const admin = fs.readFileSync(tokenFile, 'utf8').trim();

type Answer = { status: number; body: any; headers: Headers };
async function call(base: string, method: string, p: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: {
      ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }),
      ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...opts.headers,
    },
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body, headers: res.headers };
}

const secrets: string[] = [admin];
async function mint(t: Test, name: string, role: Role): Promise<string> {
  const res = await call(a.url, 'POST', '/v1/tokens', { token: admin, body: { name, role } });
  t.equal(res.status, 201, `token ${name} created`);
  const created = res.body as CreatedToken;
  t.match(created, { name, role, createdBy: 'admin' });
  t.ok(created.token.length >= 40, 'the secret carries at least 128 bits');
  secrets.push(created.token);
  // Replica a answered once its own cache had the token; b learns of it with its watch event (as of a revocation).
  const at = Date.now();
  await waitFor(async () => (await call(b.url, 'GET', '/v1/session', { token: created.token })).status === 200, { what: `replica b to know token ${name}`, timeoutMs: 5000, intervalMs: 5 });
  t.ok(Date.now() - at < 1000, `the other replica takes token ${name} within a second (${Date.now() - at} ms)`);
  return created.token;
}

t.test('the bootstrap admin token file: made once, mode 0600, shared by the replicas', async (t) => {
  t.equal(fs.statSync(tokenFile).mode & 0o777, 0o600);
  t.equal((await call(b.url, 'GET', '/v1/session', { token: admin })).body.role, 'admin', 'the second replica takes the same token');
  const listed = await call(a.url, 'GET', '/v1/tokens', { token: admin });
  t.notOk(JSON.stringify(listed.body).includes(admin), 'the token list holds no secret');
});

t.test('a controller without a token source refuses a non-loopback address', async (t) => {
  const res = spawnSync(process.execPath, [path.join(repoRoot, 'apps/controller/dist/main.js'), '--etcd', cluster.etcd.endpoint, '--host', '0.0.0.0', '--port', '0'], { encoding: 'utf8', timeout: 20_000 });
  t.equal(res.status, 1, 'it exits');
  t.match(res.stderr, /refusing to serve 0\.0\.0\.0 without authentication: give --admin-token-file/);
});

t.test('each role against each route class', async (t) => {
  const viewer = await mint(t, 'matrix-viewer', 'viewer');
  const operator = await mint(t, 'matrix-operator', 'operator');
  const pod = (n: string) => ({ name: n, command: ['sleep', '60'], cpu: 0.1, memoryMiB: 16 });
  let n = 0;
  // [method, path, body, role needed]; the body is made fresh for each caller, so a 2xx does not collide with the last one.
  const cases: Array<[string, string, (() => unknown) | undefined, Role]> = [
    ['GET', '/v1/pods', undefined, 'viewer'],
    ['GET', '/v1/nodes', undefined, 'viewer'],
    ['GET', '/v1/events', undefined, 'viewer'],
    ['GET', '/v1/cluster', undefined, 'viewer'],
    ['GET', '/metrics', undefined, 'viewer'],
    ['POST', '/v1/pods', () => pod(`m-${n++}`), 'operator'],
    ['POST', '/v1/services', () => ({ name: `svc-${n++}`, replicas: 0, template: { command: ['sleep', '60'], cpu: 0.1, memoryMiB: 16, ports: [8080] } }), 'operator'],
    ['DELETE', '/v1/jobs/nosuchjob', undefined, 'operator'],
    ['POST', '/v1/nodes/nosuchnode/cordon', undefined, 'admin'],
    ['GET', '/v1/tokens', undefined, 'admin'],
    ['GET', '/v1/audit', undefined, 'admin'],
  ];
  const holders: Array<[Role, string]> = [
    ['viewer', viewer],
    ['operator', operator],
    ['admin', admin],
  ];
  const order: Role[] = ['viewer', 'operator', 'admin'];
  for (const [method, p, body, needs] of cases) {
    const anon = await call(b.url, method, p, body === undefined ? {} : { body: body() });
    t.equal(anon.status, 401, `${method} ${p} without a token: 401`);
    t.equal(anon.body.error, 'UNAUTHENTICATED');
    const wrong = await call(b.url, method, p, { token: 'berth_not-a-real-token-at-all-0000000000', ...(body === undefined ? {} : { body: body() }) });
    t.equal(wrong.status, 401, `${method} ${p} with an unknown token: 401`);
    for (const [role, token] of holders) {
      const res = await call(b.url, method, p, { token, ...(body === undefined ? {} : { body: body() }) });
      if (order.indexOf(role) < order.indexOf(needs)) {
        t.equal(res.status, 403, `${method} ${p} as ${role}: 403`);
        t.match(res.body, { error: 'FORBIDDEN', details: { needs, role } }, 'naming the role needed');
      } else {
        t.ok(res.status < 400 || res.status === 404, `${method} ${p} as ${role}: allowed (${res.status})`);
      }
    }
  }
  for (const p of ['/healthz', '/readyz', '/openapi.json', '/docs/', '/']) {
    t.equal((await call(b.url, 'GET', p)).status, 200, `${p} needs no token`);
  }
  const doc = (await call(a.url, 'GET', '/openapi.json')).body;
  t.same(Object.keys(doc.components.securitySchemes).sort(), ['bearerAuth', 'sessionCookie'], 'the document declares the schemes');
  t.equal(doc.paths['/v1/pods'].post['x-berth-role'], 'operator', 'and the role of each operation');
  t.equal(doc.paths['/v1/tokens'].get['x-berth-role'], 'admin');
  t.same(doc.paths['/healthz'].get.security, [], 'health needs none');
});

t.test('a revoked token is refused by every replica within a second', async (t) => {
  const token = await mint(t, 'short-lived', 'viewer');
  t.equal((await call(b.url, 'GET', '/v1/pods', { token })).status, 200);
  const revoked = await call(a.url, 'DELETE', '/v1/tokens/short-lived', { token: admin });
  t.equal(revoked.status, 200);
  const at = Date.now();
  await waitFor(async () => (await call(b.url, 'GET', '/v1/pods', { token })).status === 401, { what: 'the other replica to refuse the revoked token', timeoutMs: 5000, intervalMs: 5 });
  const took = Date.now() - at;
  t.ok(took < 1000, `refused by the other replica ${took} ms after the revocation answered`);
  t.equal((await call(a.url, 'GET', '/v1/pods', { token })).status, 401, 'and by the one that revoked it');
  t.equal((await call(a.url, 'DELETE', '/v1/tokens/admin', { token: admin })).status, 409, 'the bootstrap token is not revoked through the API');
});

t.test('an open event stream ends when its token is revoked', async (t) => {
  const token = await mint(t, 'streaming', 'viewer');
  const res = await fetch(`${b.url}/v1/events?watch=1`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(20_000) });
  t.equal(res.status, 200);
  const reader = res.body!.getReader();
  const first = await reader.read();
  t.match(new TextDecoder().decode(first.value), /event: snapshot/, 'the stream opens with a snapshot');
  t.equal((await call(a.url, 'DELETE', '/v1/tokens/streaming', { token: admin })).status, 200);
  for (;;) {
    const next = await reader.read();
    if (next.done) break;
  }
  t.pass('the other replica ended the stream');
});

t.test('the session cookie: login, the event stream, cross-site refusal, logout', async (t) => {
  const operator = await mint(t, 'cookie-operator', 'operator');
  const bad = await call(a.url, 'POST', '/v1/session', { body: { token: 'berth_wrong-wrong-wrong-wrong-wrong' } });
  t.equal(bad.status, 401, 'a wrong token gets no session');
  const login = await call(a.url, 'POST', '/v1/session', { body: { token: operator } });
  t.equal(login.status, 200);
  t.match(login.body, { auth: 'on', name: 'cookie-operator', role: 'operator', via: 'cookie' });
  const setCookie = login.headers.get('set-cookie') ?? '';
  t.match(setCookie, /^berth_session=[^;]+;/);
  t.match(setCookie, /HttpOnly/i);
  t.match(setCookie, /SameSite=Strict/i);
  t.notOk(setCookie.includes(operator), 'the cookie does not hold the secret');
  const cookie = setCookie.split(';')[0]!;
  t.equal((await call(b.url, 'GET', '/v1/session', { headers: { cookie } })).body.name, 'cookie-operator', 'every replica takes the cookie');
  const stream = await fetch(`${a.url}/v1/events?watch=1`, { headers: { cookie }, signal: AbortSignal.timeout(5000) });
  t.equal(stream.status, 200, 'the event stream opens with the cookie');
  t.match(stream.headers.get('content-type') ?? '', /text\/event-stream/);
  await stream.body?.cancel();
  const pod = { name: 'cookie-pod', command: ['sleep', '60'], cpu: 0.1, memoryMiB: 16 };
  const cross = await call(a.url, 'POST', '/v1/pods', { headers: { cookie, origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' }, body: pod });
  t.equal(cross.status, 403, 'a cross-site POST with the cookie is refused');
  const forged = await call(a.url, 'POST', '/v1/pods', { headers: { cookie, origin: 'http://evil.example' }, body: pod });
  t.equal(forged.status, 403, 'so is one whose Origin is another site');
  t.equal((await call(a.url, 'GET', '/v1/pods/cookie-pod', { token: admin })).status, 404, 'and nothing was written');
  const same = await call(a.url, 'POST', '/v1/pods', { headers: { cookie, 'sec-fetch-site': 'same-origin' }, body: pod });
  t.equal(same.status, 201, 'the same POST from our own page is allowed');
  const tampered = cookie.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
  t.equal((await call(a.url, 'GET', '/v1/pods', { headers: { cookie: tampered } })).status, 401, 'a tampered cookie is refused');
  const logout = await call(a.url, 'DELETE', '/v1/session', { headers: { cookie } });
  t.equal(logout.status, 204);
  t.match(logout.headers.get('set-cookie') ?? '', /berth_session=;/, 'logout clears the cookie');
  await call(a.url, 'DELETE', '/v1/tokens/cookie-operator', { token: admin });
  await waitFor(async () => (await call(a.url, 'GET', '/v1/pods', { headers: { cookie } })).status === 401, { what: 'the session of a revoked token to end', timeoutMs: 5000 });
  t.pass('revoking the token ends its sessions');
});

t.test('1,000 requests in a burst from one token: 429s with Retry-After; another token is unaffected', async (t) => {
  const noisy = await mint(t, 'noisy', 'viewer');
  const quiet = await mint(t, 'quiet', 'viewer');
  const answers = await Promise.all(Array.from({ length: 1000 }, () => call(a.url, 'GET', '/v1/nodes', { token: noisy })));
  const limited = answers.filter((r) => r.status === 429);
  const ok = answers.filter((r) => r.status === 200);
  t.ok(limited.length > 0, `${limited.length} of 1000 answered 429`);
  t.equal(ok.length + limited.length, 1000, `the rest answered 200 (${ok.length})`);
  const first = limited[0]!;
  t.equal(first.body.error, 'RATE_LIMITED');
  t.ok(Number(first.headers.get('retry-after')) >= 1, 'Retry-After says when to come back');
  t.equal(first.headers.get('ratelimit-limit'), '300', 'RateLimit-Limit');
  t.equal(first.headers.get('ratelimit-remaining'), '0', 'RateLimit-Remaining');
  t.ok(first.headers.get('ratelimit-reset') !== null, 'RateLimit-Reset');
  t.equal((await call(a.url, 'GET', '/v1/nodes', { token: quiet })).status, 200, 'another token is unaffected');
});

t.test('every mutation is in the audit trail with its actor, refused ones included', async (t) => {
  const since = new Date(Date.now() - 1000).toISOString();
  const operator = await mint(t, 'audited', 'operator');
  const viewer = await mint(t, 'audited-viewer', 'viewer');
  const pod = { name: 'audited-pod', command: ['sleep', '60'], cpu: 0.1, memoryMiB: 16 };
  t.equal((await call(b.url, 'POST', '/v1/pods', { token: viewer, body: pod })).status, 403);
  t.equal((await call(b.url, 'POST', '/v1/pods', { body: pod })).status, 401);
  t.equal((await call(b.url, 'POST', '/v1/pods', { token: operator, body: pod })).status, 201);
  t.equal((await call(a.url, 'DELETE', '/v1/pods/audited-pod', { token: operator })).status, 200);
  const want: Array<Partial<AuditRecord>> = [
    { actor: 'admin', method: 'POST', route: '/v1/tokens', target: 'audited', status: 201, role: 'admin' },
    { actor: 'audited-viewer', method: 'POST', route: '/v1/pods', status: 403, role: 'viewer', replica: b.id },
    { actor: 'anonymous', method: 'POST', route: '/v1/pods', status: 401, role: null },
    { actor: 'audited', method: 'POST', route: '/v1/pods', target: 'audited-pod', status: 201, role: 'operator' },
    { actor: 'audited', method: 'DELETE', route: '/v1/pods/:id', target: 'audited-pod', status: 200, replica: a.id },
  ];
  const items = await waitFor(
    async () => {
      const res = await call(a.url, 'GET', `/v1/audit?since=${encodeURIComponent(since)}`, { token: admin });
      const got = res.body.items as AuditRecord[];
      return want.every((w) => got.some((r) => Object.entries(w).every(([k, v]) => (r as unknown as Record<string, unknown>)[k] === v))) ? got : undefined;
    },
    { what: 'the audit records of the mutations', timeoutMs: 10_000, intervalMs: 100 },
  );
  t.pass(`all ${want.length} mutations found among ${items.length} records`);
  const mine = await call(a.url, 'GET', `/v1/audit?since=${encodeURIComponent(since)}&actor=audited`, { token: admin });
  t.ok(mine.body.items.length >= 2 && mine.body.items.every((r: AuditRecord) => r.actor === 'audited'), '?actor= filters');
  t.equal((await call(a.url, 'GET', '/v1/audit', { token: operator })).status, 403, 'the audit trail is for admins');
});

t.test('the audit trail is read in pages: an actor filter over more records than one page', async (t) => {
  const client = createEtcdClient(cluster.etcd.endpoint);
  t.teardown(() => client.close());
  // 2,500 records, one in ten of actor "paged", older than anything else in the trail.
  const base = Date.parse('2026-01-01T00:00:00Z');
  for (let i = 0; i < 2500; i += 100) {
    const ops = Array.from({ length: 100 }, (_, j) => {
      const at = new Date(base + (i + j) * 1000);
      const id = `p${String(i + j).padStart(5, '0')}`;
      const record: AuditRecord = { id, time: at.toISOString(), actor: (i + j) % 10 === 0 ? 'paged' : 'other', role: 'viewer', replica: 'test', method: 'POST', route: '/v1/pods', target: null, status: 201, ip: '127.0.0.1' };
      return putJson(auditKey(at, id), record);
    });
    await commit(client, [], ops);
  }
  const oldest = await call(a.url, 'GET', `/v1/audit?since=${encodeURIComponent(new Date(base).toISOString())}&actor=paged&limit=200`, { token: admin });
  t.equal(oldest.body.items.length, 200, 'all 200 of the actor, from pages of 1,000 records');
  t.same(oldest.body.items.slice(0, 2).map((r: AuditRecord) => r.id), ['p00000', 'p00010'], 'oldest first from --since');
  const newest = await call(a.url, 'GET', '/v1/audit?actor=paged&limit=150', { token: admin });
  t.equal(newest.body.items.length, 150, 'the newest 150 of the actor');
  t.equal(newest.body.items.at(-1).id, 'p02490', 'ending with the newest');
  t.equal(newest.body.items[0].id, 'p01000', 'and oldest first within them');
});

t.test('no secret in a log or an audit record', async (t) => {
  const all = (await call(a.url, 'GET', '/v1/audit?limit=5000', { token: admin })).body.items as AuditRecord[];
  const logs = cluster.controllers.map((c) => fs.readFileSync(path.join(cluster.dir, `${c.id}.log`), 'utf8')).join('\n');
  for (const secret of secrets) {
    t.notOk(logs.includes(secret), `secret ${secret.slice(0, 9)}… not in the logs`);
    t.notOk(JSON.stringify(all).includes(secret), 'nor in the audit trail');
  }
  t.match(logs, /"audit":\{/, 'audit records are logged too');
});

t.test('TLS: --tls-cert/--tls-key serve HTTPS, and the session cookie is Secure', async (t) => {
  const certDir = tempDir(t, 'berth-tls-');
  const key = path.join(certDir, 'key.pem');
  const cert = path.join(certDir, 'cert.pem');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=berth-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  t.equal(made.status, 0, `openssl made a certificate ${made.stderr}`);
  const port = await freePort();
  const proc = new ManagedProcess('tls', process.execPath, [path.join(repoRoot, 'apps/controller/dist/main.js'), '--etcd', cluster.etcd.endpoint, '--port', String(port), '--id', 'tls', '--admin-token-file', tokenFile, '--tls-cert', cert, '--tls-key', key], {
    logFile: path.join(certDir, 'tls.log'),
  });
  proc.start();
  t.teardown(() => proc.stop('SIGTERM'));
  const dispatcher = new Agent({ connect: { ca: fs.readFileSync(cert) } });
  t.teardown(() => dispatcher.close());
  const url = `https://127.0.0.1:${port}`;
  await waitFor(async () => (await undiciFetch(`${url}/healthz`, { dispatcher }).catch(() => undefined))?.ok, { what: 'the TLS replica to answer' });
  const pods = await undiciFetch(`${url}/v1/pods`, { dispatcher, headers: { authorization: `Bearer ${admin}` } });
  t.equal(pods.status, 200, 'the API answers over HTTPS with a token');
  t.equal((await undiciFetch(`${url}/v1/pods`, { dispatcher })).status, 401, 'and wants one');
  const login = await undiciFetch(`${url}/v1/session`, { dispatcher, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: admin }) });
  t.match(login.headers.get('set-cookie') ?? '', /; Secure/i, 'the session cookie is Secure');
  const plain = await fetch(`http://127.0.0.1:${port}/healthz`).then(
    () => 'answered',
    () => 'refused',
  );
  t.equal(plain, 'refused', 'plain HTTP gets no answer');
  const doc = (await (await undiciFetch(`${url}/openapi.json`, { dispatcher })).json()) as { servers: Array<{ url: string }> };
  t.match(doc.servers[0]?.url, /^https:\/\//, 'the advertised URL is https');
});

import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { AgentProcess, ControllerProcess, waitFor } from '@berth/devcluster';
import { clusterFor, tempDir } from '../helpers/fixtures.js';

/**
 * The dashboard with authentication on, in the real browser: the token form,
 * the role shown and the buttons it may use, logout (the stream stops), a
 * session that ends on a revoked token, cross-site posts refused, the
 * security headers, and a page that passes its own Content Security Policy
 * (every violation the browser reports fails the test).
 */

/** Debian's chromium (scripts/setup.sh installs it); playwright-core downloads no browser. */
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-quic', '--no-first-run', '--disable-sync'];

/** The DOM globals the page functions below use (this project compiles without the DOM lib). */
declare const document: {
  addEventListener(type: 'securitypolicyviolation', fn: (e: { violatedDirective: string; blockedURI: string; sourceFile: string }) => void): void;
  createElement(tag: string): { textContent: string };
  head: { append(el: unknown): void };
  querySelector(selector: string): { submit(): void } | null;
};
declare const window: { location: { href: string }; __berthCsp?: (v: string) => void };

/** A page of another origin that posts to `target` with a form, as a forged "run this pod" would. */
function evilPage(target: string): string {
  return `<!doctype html><html><body>
<form id="f" method="post" action="${target}/v1/pods" enctype="text/plain"><input name='{"name":"evil","command":["sleep","1"],"cpu":0.1,"x":"' value='"}'></form>
</body></html>`;
}

t.test('dashboard login, roles, logout, cross-site refusal and its CSP', { skip: fs.existsSync(CHROMIUM) ? false : `no ${CHROMIUM} (scripts/setup.sh installs it as root)` }, async (t) => {
  const dir = tempDir(t, 'berth-dash-auth-');
  const cluster = await clusterFor(t, { controllers: 1, adminTokenFile: path.join(dir, 'admin-token') });
  const c = cluster.controllers[0]!;
  const admin = c.token!;
  const agent = new AgentProcess({ name: 'a', etcd: cluster.etcd.endpoint, logDir: dir, runtime: 'simulated', cpu: 4, memoryMiB: 4096, extraArgs: ['--heartbeat-interval', '500'] });
  // A replica of the same cluster that runs open on purpose (its page is the last subtest's).
  const openReplica = () => ControllerProcess.start({ id: 'c9', etcd: cluster.etcd.endpoint, logDir: dir, extraArgs: ['--insecure-no-auth'] });
  t.teardown(() => agent.process.stop('SIGKILL'));
  const [open] = await Promise.all([openReplica(), agent.start()]);
  t.teardown(() => open.process.stop('SIGKILL'));
  await cluster.waitForAgreedLeader();
  await waitFor(async () => (await c.cluster()).replicas.length === 2, { what: 'c9 to join the election' });
  const api = (method: string, p: string, body?: unknown) => c.request(method, p, body);
  // Something in every table, so each row would show its buttons.
  t.equal((await api('POST', '/v1/pods', { name: 'web', command: ['sleep', '3600'], cpu: 0.1, memoryMiB: 32 })).status, 201, 'a pod');
  t.equal((await api('POST', '/v1/services', { name: 'svc', replicas: 1, template: { command: ['sleep', '3600'], cpu: 0.1, memoryMiB: 32, ports: [8000] } })).status, 201, 'a service');
  const mint = async (name: string, role: string): Promise<string> => {
    const res = await api('POST', '/v1/tokens', { name, role });
    t.equal(res.status, 201, `token ${name} (${role}) created`);
    return res.body.token as string;
  };
  const viewer = await mint('watcher', 'viewer');
  const operator = await mint('deployer', 'operator');

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  t.teardown(() => browser.close());
  /** Every CSP violation any page of any context reports, and console errors that name the policy. */
  const violations: string[] = [];
  const pageErrors: string[] = [];
  const newContext = async (): Promise<BrowserContext> => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    await context.exposeBinding('__berthCsp', (_source, v: string) => void violations.push(v));
    await context.addInitScript(() =>
      document.addEventListener('securitypolicyviolation', (e) => window.__berthCsp?.(`${e.violatedDirective} blocked ${e.blockedURI} in ${e.sourceFile}`)),
    );
    context.on('console', (msg) => {
      if (msg.type() === 'error' && /Content.Security.Policy/i.test(msg.text())) violations.push(`console: ${msg.text()}`);
    });
    context.on('weberror', (err) => pageErrors.push(err.error().message));
    return context;
  };
  const openPage = async (context: BrowserContext): Promise<Page> => {
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    return page;
  };
  const login = async (page: Page, token: string) => {
    await page.locator('[data-testid=login-token]').fill(token);
    await page.locator('[data-testid=login-submit]').click();
  };
  const mutationButtons = (page: Page) => page.locator('main button[data-action]');

  await t.test('the page asks for a token; a wrong one is refused; the admin sees everything', async (t) => {
    const page = await openPage(await newContext());
    const res = await page.goto(`${c.url}/`);
    const headers = res!.headers();
    const csp = headers['content-security-policy'] ?? '';
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'self'", "form-action 'self'"]) t.ok(csp.includes(d), `CSP has ${d}`);
    const connect = /connect-src ([^;]*)/.exec(csp)?.[1]?.split(' ') ?? [];
    t.same(connect.sort(), ["'self'", c.url, open.url].sort(), 'connect-src: this replica, and the replicas it may fail over to');
    t.notOk(csp.includes('unsafe-inline') || csp.includes('unsafe-eval'), 'nothing inline allowed');
    t.notOk('strict-transport-security' in headers, 'no HSTS over plain http');
    t.equal(headers['x-content-type-options'], 'nosniff', 'X-Content-Type-Options: nosniff');
    t.equal(headers['x-frame-options'], 'DENY', 'X-Frame-Options: DENY (for browsers without frame-ancestors)');

    await page.locator('[data-testid=login]').waitFor();
    t.notOk(await page.locator('main').isVisible(), 'no data before logging in');
    t.notOk(await page.locator('[data-testid=insecure]').isVisible(), 'no insecure banner: auth is on');
    await login(page, 'berth_not-a-token-not-a-token');
    await page.locator('[data-testid=login-error]').waitFor();
    t.match(await page.locator('[data-testid=login-error]').textContent(), /not valid/, 'a wrong token is refused with a message');
    t.notOk(await page.locator('main').isVisible(), 'and shows no data');

    await login(page, admin);
    await page.locator('[data-testid=connection][data-state=live]').waitFor();
    t.equal(await page.locator('[data-testid=role]').textContent(), 'admin', 'the role is shown');
    t.equal(await page.locator('[data-testid=who-name]').textContent(), 'admin', 'and the token name');
    t.notOk(await page.locator('[data-testid=login]').isVisible(), 'the form is gone');
    await page.locator('tr[data-node=a] button[data-action=cordon]').waitFor();
    await page.locator('tr[data-pod=web] button[data-action=delete]').waitFor();
    await page.locator('tr[data-service=svc] button[data-action=scale-up]').waitFor();
    t.ok(await page.locator('#run-pod').isVisible(), 'the admin may run pods');
    t.ok(await page.locator('#add-node').isVisible(), 'and add nodes');
    // A mutation from the page itself, carried by the cookie.
    await page.locator('tr[data-node=a] button[data-action=cordon]').click();
    await page.locator('tr[data-node=a] button[data-action=uncordon]').waitFor();
    t.ok((await c.getJson<{ cordoned: boolean }>('/v1/nodes/a')).cordoned, 'cordoned from the page, with the session cookie');
    t.notOk(await page.locator('[data-testid=error]').isVisible(), 'no error shown');
    await page.close();
  });

  await t.test('a viewer sees the data and no mutation button; logout ends the stream', async (t) => {
    const page = await openPage(await newContext());
    await page.goto(`${c.url}/`);
    await login(page, viewer);
    await page.locator('[data-testid=connection][data-state=live]').waitFor();
    t.equal(await page.locator('[data-testid=role]').textContent(), 'viewer', 'role viewer shown');
    await page.locator('tr[data-node=a]').waitFor();
    await page.locator('tr[data-pod=web]').waitFor();
    await page.locator('tr[data-service=svc]').waitFor();
    t.equal(await mutationButtons(page).count(), 0, 'no mutation button in any row');
    t.notOk(await page.locator('#run-pod').isVisible(), 'no run-pod form');
    t.notOk(await page.locator('#add-node').isVisible(), 'no add-node form');
    t.equal(await page.locator('main button:visible').count(), 0, 'nothing in the page to press');

    // Logout: the form comes back, the stream is closed and the cookie gone.
    let streamEnded = false;
    const ended = (r: { url(): string }) => {
      if (r.url().includes('/v1/events?watch=1')) streamEnded = true;
    };
    page.on('requestfailed', ended);
    page.on('requestfinished', ended);
    await page.locator('[data-testid=logout]').click();
    await page.locator('[data-testid=login]').waitFor();
    t.notOk(await page.locator('main').isVisible(), 'the data is hidden');
    t.equal(await page.locator('tr[data-pod]').count(), 0, 'and dropped');
    t.equal(await page.locator('[data-testid=connection]').getAttribute('data-state'), 'out', 'the page says it is logged out');
    await waitFor(() => streamEnded, { what: 'the event stream to end', timeoutMs: 5000 });
    t.pass('the event stream was closed');
    t.equal(await page.evaluate(async () => (await fetch('/v1/session')).status), 401, 'the session cookie is gone');
    await page.close();
  });

  await t.test('an operator may run workloads but not touch nodes; a revoked token ends the session', async (t) => {
    const page = await openPage(await newContext());
    await page.goto(`${c.url}/`);
    await login(page, operator);
    await page.locator('[data-testid=connection][data-state=live]').waitFor();
    t.equal(await page.locator('[data-testid=role]').textContent(), 'operator', 'role operator shown');
    await page.locator('tr[data-pod=web] button[data-action=stop]').waitFor();
    await page.locator('tr[data-service=svc] button[data-action=scale-up]').waitFor();
    await page.locator('tr[data-node=a]').waitFor();
    t.equal(await page.locator('tr[data-node] button').count(), 0, 'no node button');
    t.ok(await page.locator('#run-pod').isVisible(), 'the run-pod form');
    t.notOk(await page.locator('#add-node').isVisible(), 'no add-node form');

    t.equal((await api('DELETE', '/v1/tokens/deployer')).status, 200, 'the operator token is revoked');
    // The next call from the page answers 401: back to the form, saying why.
    await waitFor(async () => (await page.evaluate(async () => (await fetch('/v1/session')).status)) === 401, { what: 'the revoked session to be refused', timeoutMs: 5000 });
    await page.locator('tr[data-service=svc] button[data-action=scale-up]').click();
    await page.locator('[data-testid=login]').waitFor();
    t.match(await page.locator('[data-testid=login-error]').textContent(), /session has ended/, 'the form says the session ended');
    t.equal((await c.getJson<{ replicas: number }>('/v1/services/svc')).replicas, 1, 'and the scale did not happen');
    await page.close();
  });

  await t.test('cross-site posts are refused', async (t) => {
    const context = await newContext();
    const page = await openPage(context);
    await page.goto(`${c.url}/`);
    await login(page, admin);
    await page.locator('[data-testid=connection][data-state=live]').waitFor();

    const evil = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(evilPage(c.url)));
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => evil.close(() => resolve())));
    const port = (evil.address() as AddressInfo).port;
    const post = async (origin: string): Promise<number> => {
      const p = await openPage(context);
      await p.goto(`${origin}/`);
      const [answer] = await Promise.all([p.waitForResponse(`${c.url}/v1/pods`), p.evaluate(() => document.querySelector('#f')!.submit())]);
      const status = answer.status();
      await p.close();
      return status;
    };
    // localhost and 127.0.0.1 are different sites: the SameSite=Strict cookie stays home.
    t.equal(await post(`http://localhost:${port}`), 401, 'a form on another site posts without the cookie: 401');
    // Another port of the same host is the same site: the cookie goes, and the API sees where from.
    t.equal(await post(`http://127.0.0.1:${port}`), 403, 'a form on another origin of the same site: 403');
    // A client that forges the cookie's context: the Origin says another site.
    const cookie = (await context.cookies(c.url)).find((k) => k.name === 'berth_session');
    t.ok(cookie?.httpOnly && cookie.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');
    const forged = await fetch(`${c.url}/v1/pods`, {
      method: 'POST',
      headers: { cookie: `berth_session=${cookie!.value}`, origin: 'http://evil.example', 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'evil', command: ['sleep', '1'], cpu: 0.1 }),
    });
    t.equal(forged.status, 403, 'the cookie with a foreign Origin: 403');
    t.equal((await api('GET', '/v1/pods/evil')).status, 404, 'no pod was created');
    type Audit = { route: string; method: string; status: number };
    const refusedPosts = async () => ((await api('GET', '/v1/audit?actor=admin')).body.items as Audit[]).filter((r) => r.route === '/v1/pods' && r.method === 'POST' && r.status === 403).length;
    await waitFor(async () => (await refusedPosts()) === 2, { what: 'two refused POST /v1/pods by admin in the audit trail', timeoutMs: 5000 });
    t.pass('the audit trail holds both refused posts that carried the cookie');
    await page.close();
  });

  await t.test('the API docs work under their own policy', async (t) => {
    const page = await openPage(await newContext());
    const res = await page.goto(`${c.url}/docs/`);
    t.match(res!.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/, '/docs has a CSP too');
    await page.locator('.swagger-ui .info .title').filter({ hasText: 'Berth API' }).waitFor();
    await page.locator('.opblock-tag-section').first().waitFor();
    t.pass('Swagger UI renders the API document');
    await page.close();
  });

  await t.test('a replica with --insecure-no-auth says so loudly', async (t) => {
    const page = await openPage(await newContext());
    await page.goto(`${open.url}/`);
    await page.locator('[data-testid=connection][data-state=live]').waitFor();
    t.ok(await page.locator('[data-testid=insecure]').isVisible(), 'the banner is shown');
    t.match(await page.locator('[data-testid=insecure]').textContent(), /Authentication is off/, 'saying authentication is off');
    t.notOk(await page.locator('[data-testid=login]').isVisible(), 'no login');
    t.notOk(await page.locator('[data-testid=who]').isVisible(), 'no token name');
    await page.locator('tr[data-node=a] button[data-action]').first().waitFor();
    t.pass('every button, as with auth off');
    await page.close();
  });

  t.same(violations, [], 'no CSP violation in any page');
  t.same(pageErrors, [], 'no script errors in any page');

  // The watch on violations works: an inline script the policy refuses is reported, by the event and on the console.
  const page = await openPage(await newContext());
  await page.goto(`${c.url}/`);
  await page.locator('[data-testid=login]').waitFor();
  await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'void 0';
    document.head.append(s);
  });
  await waitFor(() => violations.length >= 2, { what: 'the violation to be reported twice', timeoutMs: 5000 });
  t.ok(violations.some((v) => /^script-src/.test(v)), `the securitypolicyviolation event is seen: ${violations.find((v) => !v.startsWith('console'))}`);
  t.ok(violations.some((v) => /^console: .*script-src/.test(v)), 'and the console message');
});

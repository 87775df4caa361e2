import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { AgentProcess, repoRoot } from '@berth/devcluster';
import { clusterFor, tempDir } from '../helpers/fixtures.js';
import { killPodProcesses } from '../helpers/pod-processes.js';
import { echoServer, HC } from '../helpers/services.js';

/** Debian's chromium (scripts/setup.sh installs it); playwright-core downloads no browser. */
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-quic', '--no-first-run', '--disable-sync'];
const SCREENSHOT = path.join(repoRoot, 'test-artifacts/dashboard.png');

/** The one DOM global the page functions below use (this project compiles without the DOM lib). */
declare const document: { querySelector(selector: string): { textContent: string | null } | null };
type Marked = { __berthMarker?: number };

t.test('the dashboard, served by a follower, follows the cluster live', { skip: fs.existsSync(CHROMIUM) ? false : `no ${CHROMIUM} (scripts/setup.sh installs it as root)` }, async (t) => {
  const cluster = await clusterFor(t, { controllerArgs: ['--node-grace', '3'] });
  const logDir = tempDir(t, 'berth-dash-');
  const agentArgs = ['--heartbeat-ttl', '2', '--heartbeat-interval', '500'];
  const agents = ['a', 'b'].map(
    (name) => new AgentProcess({ name, etcd: cluster.etcd.endpoint, logDir, runtime: 'simulated', cpu: 2, memoryMiB: 4096, extraArgs: agentArgs }),
  );
  // A service's pods answer requests: they run, as processes, on a node of their own.
  const svcAgent = new AgentProcess({ name: 'p', etcd: cluster.etcd.endpoint, logDir, runtime: 'process', cpu: 4, memoryMiB: 4096, extraArgs: [...agentArgs, '--labels', 'pool=svc', '--stop-timeout', '2'] });
  const podIds = new Set<string>();
  t.teardown(async () => {
    await Promise.all([...agents.map((a) => a.process.stop('SIGKILL')), svcAgent.process.stop('SIGTERM')]);
    killPodProcesses(podIds);
  });
  await Promise.all([...agents, svcAgent].map((a) => a.start()));
  const leader = await cluster.waitForAgreedLeader();
  const follower = cluster.running.find((c) => c.id !== leader.id)!;

  const context: BrowserContext = await chromium.launchPersistentContext(tempDir(t, 'berth-chromium-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1400, height: 1000 },
  });
  t.teardown(() => context.close());
  const page: Page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  // The page runs under its Content Security Policy: whatever it refuses, the browser logs.
  const cspViolations: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' && /Content.Security.Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });

  await page.goto(follower.url + '/');
  await page.locator('[data-testid=connection][data-state=live]').waitFor();
  t.match(await page.locator('[data-testid=self]').textContent(), new RegExp(`^${follower.id} \\(follower\\)`), 'the page is served by a follower');
  t.equal(await page.locator('[data-testid=leader-id]').textContent(), leader.id, 'it shows the leader');
  await page.locator('tr[data-node=a][data-status=Ready]').waitFor();
  await page.locator('tr[data-node=b][data-status=Ready]').waitFor();
  t.equal(await page.locator('[data-testid=replicas] li').count(), 3, 'three replicas');
  // Survives as long as the page is never reloaded.
  await page.evaluate(() => ((globalThis as Marked).__berthMarker = 42));

  // A service appears with its ready count as its pods become ready; a job's row appears as it runs.
  const api = (method: string, p: string, body?: unknown) => follower.request(method, p, body);
  const notePods = async () => {
    for (const p of ((await api('GET', '/v1/pods')).body as { items: Array<{ id: string }> }).items) podIds.add(p.id);
  };
  const template = { command: echoServer(logDir), cpu: 0.1, memoryMiB: 64, ports: [8000], nodeSelector: { pool: 'svc' }, healthCheck: HC };
  t.equal((await api('POST', '/v1/services', { name: 'echo', replicas: 2, template })).status, 201, 'service created through the API');
  await page.locator('tr[data-service=echo][data-desired="2"]').waitFor();
  await notePods();
  await page.locator('tr[data-service=echo][data-ready="2"]').waitFor({ timeout: 30_000 });
  t.equal(await page.locator('tr[data-service=echo] [data-testid=service-ready]').textContent(), '2/2', 'the service row shows 2/2 ready');
  t.equal(await page.locator('tr[data-service=echo] .ep-ready').count(), 2, 'and both endpoints ready');
  const submitted = await api('POST', '/v1/jobs', { service: 'echo', path: '/hello' });
  t.equal(submitted.status, 202, 'job accepted');
  const jobId = (submitted.body as { id: string }).id;
  await page.locator(`tr[data-job="${jobId}"][data-status=Succeeded][data-attempts="1"]`).waitFor();
  t.match(await page.locator(`tr[data-job="${jobId}"]`).textContent(), /echo\s*POST \/hello\s*Succeeded\s*1\s*200/, 'the job row: service, request, status, attempts, code');
  // Scaled from its row's button: the row follows.
  await page.locator('tr[data-service=echo] button[data-action=scale-up]').click();
  await page.locator('tr[data-service=echo][data-desired="3"]').waitFor();
  await notePods();
  await page.locator('tr[data-service=echo][data-ready="3"]').waitFor({ timeout: 30_000 });
  t.pass('scaled to 3 from the page, shown 3/3 ready');

  // Run a pod from the form; it goes Running through the stream.
  const run = page.locator('#run-pod');
  const runPod = async (name: string) => {
    await run.locator('input[name=name]').fill(name);
    await run.locator('input[name=command]').fill('sleep 3600');
    await run.locator('input[name=cpu]').fill('0.5');
    await run.locator('input[name=memoryMiB]').fill('256');
    await run.locator('button[type=submit]').click();
  };
  await runPod('web');
  await page.locator('tr[data-pod=web][data-phase=Running]').waitFor();
  await notePods();
  t.pass('the pod created from the form is shown Running');
  t.notOk(await page.locator('[data-testid=error]').isVisible(), 'no error shown');

  // Stop it.
  await page.locator('tr[data-pod=web] button[data-action=stop]').click();
  await page.locator('tr[data-pod=web][data-phase=Stopped]').waitFor();
  t.pass('stopping it shows Stopped');
  await page.locator('#events li[data-reason]').first().waitFor();

  // An API error (a duplicate name) is shown with the server's message.
  await runPod('web');
  await page.locator('[data-testid=error]').waitFor({ state: 'visible' });
  const message = await page.locator('#error-text').textContent();
  t.match(message, /CONFLICT: .*"web" already exists/, `the API error is shown: ${message}`);

  // Start it again, so the page has a Running pod for the screenshot.
  await page.locator('tr[data-pod=web] button[data-action=start]').click();
  await page.locator('tr[data-pod=web][data-phase=Running]').waitFor();

  // Kill an agent: its node goes NotReady (heartbeat lease expired) without a reload.
  await agents[1]!.process.stop('SIGKILL');
  await page.locator('tr[data-node=b][data-status=NotReady]').waitFor();
  t.pass('the killed agent\'s node is shown NotReady');

  // Kill the leader: the follower's page shows the new one.
  await leader.process.stop('SIGKILL');
  await page.waitForFunction(
    (old) => {
      const id = document.querySelector('[data-testid=leader-id]')?.textContent;
      return id !== undefined && id !== null && id !== old && /^c\d$/.test(id);
    },
    leader.id,
  );
  const newLeader = await page.locator('[data-testid=leader-id]').textContent();
  t.not(newLeader, leader.id, `the page shows the new leader ${newLeader}`);
  t.equal(await page.evaluate(() => (globalThis as Marked).__berthMarker), 42, 'without a reload');
  await page.locator(`[data-testid=replicas] li[data-replica=${leader.id}]`).waitFor({ state: 'detached' });
  t.equal(await page.locator('[data-testid=replicas] li').count(), 2, 'the dead replica is gone from the list');

  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // Kill the replica that serves the page: it moves to the one left, which shows itself leading.
  const last = cluster.running.find((c) => c.id !== follower.id && c.id !== leader.id)!;
  await follower.process.stop('SIGKILL');
  await page.waitForURL(`${last.url}/`, { timeout: 20_000 });
  await page.locator('[data-testid=connection][data-state=live]').waitFor();
  t.pass(`the page moved from ${follower.id} to ${last.id} on its own`);
  await page.waitForFunction((id) => document.querySelector('[data-testid=leader-id]')?.textContent === id, last.id, { timeout: 20_000 });
  t.match(await page.locator('[data-testid=self]').textContent(), new RegExp(`^${last.id} \\(leader\\)`), `${last.id} serves the page and leads`);
  t.same(pageErrors, [], 'no script errors in the page');
  t.same(cspViolations, [], 'no CSP violations');
});

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { waitFor } from '@berth/devcluster';
import { clusterFor, tempDir } from '../helpers/fixtures.js';

/**
 * The built `berth` against a real controller with auth on (one replica,
 * its bootstrap admin token in a file): no token and a refused one say how
 * to give one; an admin mints a viewer token that reads but whose writes
 * are refused with the role they need; the audit trail shows the refusal;
 * the watch stream carries the token; a revoked token is refused; and
 * contexts of the config file make every flag unnecessary.
 */

const CLI = path.resolve(import.meta.dirname, '../../../apps/cli/dist/main.js');

const dir = tempDir(t, 'berth-cli-auth-');
const adminFile = path.join(dir, 'secrets', 'admin-token');
const cluster = await clusterFor(t, { controllers: 1, adminTokenFile: adminFile });
const server = cluster.controllers[0]!.url;
const admin = fs.readFileSync(adminFile, 'utf8').trim();
const configFile = path.join(dir, 'berth', 'config.json');

// A private config dir and no connection variables: the developer's own must not leak in.
const baseEnv: Record<string, string> = { ...(process.env as Record<string, string>), XDG_CONFIG_HOME: dir, NO_COLOR: '1', BERTH_SERVER: server, BERTH_TOKEN: '', BERTH_TOKEN_FILE: '', BERTH_CONTEXT: '' };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...baseEnv, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

async function ok(t: Test, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await run(args, env);
  t.equal(r.code, 0, `berth ${args.join(' ')} exits 0${r.code === 0 ? '' : `: ${r.stderr}`}`);
  return r.stdout;
}

async function fails(t: Test, args: string[], env: Record<string, string>, stderr: RegExp): Promise<void> {
  const r = await run(args, env);
  t.equal(r.code, 1, `berth ${args.join(' ')} exits 1`);
  t.match(r.stderr, stderr, `berth ${args.join(' ')} says why`);
  t.equal(r.stdout, '', 'and prints nothing on stdout');
}

// Long enough for a CLI process to start on a loaded machine: waits end as soon as their condition holds.
const CLI_WAIT_MS = 30_000;

const asAdmin = { BERTH_TOKEN_FILE: adminFile };
const HOW_TO_GIVE = /give a token with --token TOKEN, \$BERTH_TOKEN, --token-file FILE or \$BERTH_TOKEN_FILE, or save one in a context: berth config set-context/;

/** A long-running `berth ...` (a watch) whose output accumulates; killed at teardown at the latest. */
function spawnCli(tt: Test, args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...baseEnv, ...env } });
  const w = { stdout: '', stderr: '', exit: new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))), kill: () => void child.kill() };
  child.stdout.on('data', (d: Buffer) => (w.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (w.stderr += d.toString()));
  tt.teardown(w.kill);
  return w;
}

let viewer = '';
let operator = '';

t.test('without a token, or with a bad one: how to give one', async (t) => {
  await fails(t, ['get', 'pods'], {}, new RegExp(`^Error from server \\(UNAUTHENTICATED\\): this API needs a token.*\\n${HOW_TO_GIVE.source}`));
  await fails(t, ['whoami'], { BERTH_TOKEN: 'berth_bogus' }, /the token from \$BERTH_TOKEN was refused: it is unknown or revoked/);
  const w = spawnCli(t, ['get', 'events', '-w'], {});
  t.equal(await w.exit, 1, 'a watch without a token fails at once, as a list would');
  t.match(w.stderr, /UNAUTHENTICATED/);
});

t.test('whoami, create token, get tokens', async (t) => {
  const who = await ok(t, ['whoami'], asAdmin);
  t.match(who, /^Server:\s+http:\/\/127\.0\.0\.1:\d+$/m);
  t.match(who, /^Auth:\s+on$/m);
  t.match(who, /^Name:\s+admin$/m);
  t.match(who, /^Role:\s+admin$/m);
  t.match(who, /^Token from:\s+\$BERTH_TOKEN_FILE .*admin-token$/m);

  const created = await run(['create', 'token', 'ro', '--role', 'viewer'], asAdmin);
  t.equal(created.code, 0, created.stderr);
  viewer = created.stdout.trim();
  t.match(viewer, /^berth_[A-Za-z0-9_-]{40,}$/, 'stdout holds the secret alone');
  t.match(created.stderr, /token\/ro created \(role viewer\)\. Its secret follows: it is shown only this once/);

  const json = JSON.parse(await ok(t, ['create', 'token', 'ops', '--role', 'operator', '-o', 'json'], asAdmin)) as { name: string; role: string; token: string; createdBy: string };
  t.match(json, { name: 'ops', role: 'operator', createdBy: 'admin' });
  t.match(json.token, /^berth_/);
  operator = json.token;

  const list = await ok(t, ['get', 'tokens'], asAdmin);
  t.match(list, /^NAME\s+ROLE\s+CREATED-BY\s+AGE\n/);
  t.match(list, /\nops\s+operator\s+admin\s+\d+s\n/);
  t.match(list, /\nro\s+viewer\s+admin\s+\d+s\n/);
  t.notOk([viewer, json.token, admin].some((secret) => list.includes(secret)), 'no secret is listed');
  await fails(t, ['create', 'token', 'ro', '--role', 'admin'], asAdmin, /^Error from server \(CONFLICT\)/);
});

t.test('a viewer reads; its writes are refused with the role they need', async (t) => {
  const asViewer = { BERTH_TOKEN: viewer };
  t.match(await ok(t, ['whoami', '-o', 'json'], asViewer), /"name": "ro",\n\s+"role": "viewer"/);
  await ok(t, ['get', 'pods'], asViewer);
  const forbidden = /^Error from server \(FORBIDDEN\): role viewer may not (POST \/v1\/pods|DELETE \/v1\/pods\/:id): it needs role operator\nan admin can give you one: berth create token NAME --role operator\n$/;
  await fails(t, ['run', 'web', '--cpu', '100m', '--', 'sleep', '100'], asViewer, forbidden);
  await fails(t, ['--token', viewer, 'delete', 'pod', 'web'], {}, forbidden);
  await fails(t, ['get', 'tokens'], asViewer, /FORBIDDEN\): role viewer may not GET \/v1\/tokens: it needs role admin/);
  await fails(t, ['audit'], asViewer, /it needs role admin/);
});

t.test('audit shows the refused mutation', async (t) => {
  // A refused request's body is never read, so a POST names no target.
  const refused = /\n\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+ro\s+viewer\s+POST\s+\/v1\/pods\s+<none>\s+403\s+c\d\n/;
  let last = '';
  await waitFor(async () => refused.test((last = (await run(['audit', '--actor', 'ro'], asAdmin)).stdout)), { what: "the viewer's refused POST in berth audit", timeoutMs: CLI_WAIT_MS }).catch((err: unknown) => {
    t.comment(last);
    throw err;
  });
  t.match(last, /^TIME\s+ACTOR\s+ROLE\s+METHOD\s+ROUTE\s+TARGET\s+STATUS\s+REPLICA\n/);
  t.notMatch(last, /\s+admin\s+admin\s+/, '--actor keeps only that token');
  const recent = JSON.parse(await ok(t, ['audit', '--since', '10m', '-o', 'json'], asAdmin)) as { items: Array<{ actor: string; route: string; status: number; target: string | null }> };
  t.ok(recent.items.some((r) => r.actor === 'admin' && r.route === '/v1/tokens' && r.target === 'ro' && r.status === 201), 'the token creation is there too');
  t.ok(recent.items.some((r) => r.actor === 'ro' && r.route === '/v1/pods/:id' && r.status === 403), 'and the refused delete');
  const none = await run(['audit', '--since', '2099-01-01T00:00:00Z'], asAdmin);
  t.equal(none.code, 0);
  t.equal(none.stderr, 'No audit records found.\n');
});

t.test('the watch stream carries the token', async (t) => {
  const watch = spawnCli(t, ['get', 'pods', '-w'], { BERTH_TOKEN: viewer });
  await waitFor(() => watch.stdout.startsWith('NAME'), { what: 'the watch header (its snapshot)', timeoutMs: CLI_WAIT_MS });
  t.equal(await ok(t, ['run', 'watched', '--cpu', '100m', '--', 'sleep', '100'], { BERTH_TOKEN: operator }), 'pod/watched created\n');
  await waitFor(() => /\nwatched\s+Pending\s/.test(watch.stdout), { what: 'the watch to print the new pod', timeoutMs: CLI_WAIT_MS });
  t.equal(await ok(t, ['delete', 'pod', 'watched'], { BERTH_TOKEN: operator }), 'pod "watched" deleted\n');
  await waitFor(() => /\nwatched\s+Deleted/.test(watch.stdout), { what: 'the watch to print it Deleted', timeoutMs: CLI_WAIT_MS });
  const events = spawnCli(t, ['get', 'events', '-w'], { BERTH_TOKEN: viewer });
  await waitFor(() => events.stdout.startsWith('LAST SEEN'), { what: 'the events watch header', timeoutMs: CLI_WAIT_MS });
  watch.kill();
  events.kill();
  t.equal(watch.stderr + events.stderr, '', 'no warnings');
});

t.test('contexts: set-context with a token file, use-context, then no flag at all', async (t) => {
  const noServer = { BERTH_SERVER: '' };
  const set = await ok(t, ['config', 'set-context', 'local', '--server', server, '--token-file', adminFile, '--use'], noServer);
  t.equal(set, 'Context "local" created.\nSwitched to context "local".\n');
  t.equal(fs.statSync(configFile).mode & 0o777, 0o600, 'the config file is private');
  t.match(await ok(t, ['whoami'], noServer), /^Name:\s+admin$/m);
  t.equal(await ok(t, ['config', 'set-context', 'ro', '--server', server, '--token', viewer], noServer), 'Context "ro" created.\n');
  const contexts = await ok(t, ['config', 'get-contexts'], noServer);
  t.match(contexts, /^CURRENT\s+NAME\s+SERVER\s+AUTH\n\*\s+local\s+http:\/\/127\.0\.0\.1:\d+\s+token-file \/.*admin-token\n\s+ro\s+http:\/\/127\.0\.0\.1:\d+\s+token berth_\S{4}\*\*\*\*\n$/);
  const view = await ok(t, ['config', 'view'], noServer);
  t.notOk(view.includes(viewer), 'config view masks tokens');
  t.match(JSON.parse(view), { currentContext: 'local', contexts: { local: { tokenFile: adminFile }, ro: { server } } });
  t.match(await ok(t, ['--context', 'ro', 'whoami'], noServer), /^Name:\s+ro$/m);
  t.match(await ok(t, ['whoami'], { ...noServer, BERTH_CONTEXT: 'ro' }), /^Role:\s+viewer$/m);
  t.equal(await ok(t, ['config', 'use-context', 'ro'], noServer), 'Switched to context "ro".\n');
  await fails(t, ['get', 'tokens'], noServer, /role viewer may not GET \/v1\/tokens/);
  await fails(t, ['--context', 'nope', 'get', 'pods'], noServer, /^error: no context "nope" in .*config\.json/);
  t.equal(await ok(t, ['config', 'use-context', 'local'], noServer), 'Switched to context "local".\n');
});

t.test('a deleted token is refused', async (t) => {
  t.equal(await ok(t, ['delete', 'token', 'ro'], asAdmin), 'token "ro" deleted\n');
  // One replica: it refuses the token once its own watch cache has seen the delete, which may come just after the answer.
  const refused = await waitFor(async () => {
    const r = await run(['--token', viewer, 'get', 'pods']);
    return r.code === 1 ? r : undefined;
  }, { what: 'the revoked token refused', timeoutMs: CLI_WAIT_MS });
  t.match(refused.stderr, /the token from --token was refused: it is unknown or revoked/);
  await fails(t, ['delete', 'token', 'ro'], asAdmin, /^Error from server \(NOT_FOUND\)/);
});

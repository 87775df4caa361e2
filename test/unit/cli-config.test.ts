import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {
  ApiError, DEFAULT_SERVER, auditRow, complete, explainApiError, extractGlobalFlags, maskToken, maskedConfig, parseSince, readConfigFile, resolveConfig,
  retryAfterSeconds, updateConfigFile,
} from '@berth/cli';
import { tempDir } from '../helpers/fixtures.js';

// The CLI's config file (contexts, token sources and their precedence) and
// how it explains the errors of auth: pure functions over temp files.

const write = (file: string, doc: unknown) => fs.writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));

t.test('server and token precedence, the old top-level form', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'config.json');
  t.same(resolveConfig({}, {}, file), { server: DEFAULT_SERVER, source: 'default' }, 'no file: the default, no token');
  write(file, { server: 'http://from-file:1/', token: 'ft' });
  t.same(resolveConfig({}, {}, file), { server: 'http://from-file:1', source: 'config', token: 'ft', tokenSource: `config file ${file}` });
  t.match(resolveConfig({}, { BERTH_SERVER: 'env:2', BERTH_TOKEN: 'et' }, file), { server: 'http://env:2', source: 'env', token: 'et', tokenSource: '$BERTH_TOKEN' });
  t.match(resolveConfig({ server: 'https://flag:3', token: 'x' }, { BERTH_SERVER: 'env:2', BERTH_TOKEN: 'et' }, file), { server: 'https://flag:3', source: 'flag', token: 'x', tokenSource: '--token' });
  t.equal(resolveConfig({}, { XDG_CONFIG_HOME: dir }).source, 'default', 'XDG_CONFIG_HOME/berth/config.json is looked up');
  write(file, '{nope');
  t.throws(() => resolveConfig({}, {}, file), /invalid config file .*config\.json/);
  t.same(resolveConfig({ server: 'http://a', token: 'x' }, {}, file).token, 'x', 'a broken file is not read when the flags say everything');
  write(file, { contexts: { a: { server: 3 } } });
  t.throws(() => resolveConfig({}, {}, file), /invalid config file .*: context "a": server must be a string/);
});

t.test('token files: trimmed, read only when their turn comes, errors name the file and the source', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'config.json');
  const tf = path.join(dir, 'flag-token');
  const ef = path.join(dir, 'env-token');
  fs.writeFileSync(tf, '  from-flag-file\n');
  fs.writeFileSync(ef, 'from-env-file\n');
  write(file, { token: 'from-config' });
  const env = { BERTH_TOKEN_FILE: ef };
  t.match(resolveConfig({ tokenFile: tf }, env, file), { token: 'from-flag-file', tokenSource: `--token-file ${tf}` }, '--token-file beats $BERTH_TOKEN_FILE');
  t.match(resolveConfig({}, env, file), { token: 'from-env-file', tokenSource: `$BERTH_TOKEN_FILE ${ef}` }, '$BERTH_TOKEN_FILE beats the config file');
  t.match(resolveConfig({}, { ...env, BERTH_TOKEN: 'e' }, file), { token: 'e' }, '$BERTH_TOKEN beats any file');
  t.match(resolveConfig({ token: 'f', tokenFile: path.join(dir, 'missing') }, {}, file), { token: 'f' }, 'a token file behind --token is never read');
  t.throws(() => resolveConfig({ tokenFile: path.join(dir, 'missing') }, {}, file), /cannot read the token file .*missing \(--token-file\): no such file/);
  fs.writeFileSync(tf, ' \n');
  t.throws(() => resolveConfig({}, { BERTH_TOKEN_FILE: tf }, file), /the token file .*flag-token \(\$BERTH_TOKEN_FILE\) is empty/);
});

t.test('contexts: --context, $BERTH_CONTEXT, currentContext, as npm start writes them', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'config.json');
  const admin = path.join(dir, 'admin-token');
  fs.writeFileSync(admin, 'admin-secret\n');
  fs.writeFileSync(path.join(dir, 'rel-token'), 'relative-secret');
  write(file, {
    server: 'http://old:1',
    token: 'old-token',
    currentContext: 'local',
    contexts: { local: { server: 'http://127.0.0.1:8081', tokenFile: admin }, prod: { server: 'https://prod:443', token: 'prod-token' }, rel: { server: 'r:1', tokenFile: 'rel-token' }, bare: {} },
  });
  t.same(resolveConfig({}, {}, file), { server: 'http://127.0.0.1:8081', source: 'config', token: 'admin-secret', tokenSource: `context "local" of ${file} (token file ${admin})`, context: 'local' });
  t.match(resolveConfig({}, { BERTH_CONTEXT: 'prod' }, file), { server: 'https://prod:443', token: 'prod-token', context: 'prod' }, '$BERTH_CONTEXT beats currentContext');
  t.match(resolveConfig({ context: 'local' }, { BERTH_CONTEXT: 'prod' }, file), { token: 'admin-secret', context: 'local' }, '--context beats $BERTH_CONTEXT');
  t.match(resolveConfig({ context: 'rel' }, {}, file), { server: 'http://r:1', token: 'relative-secret' }, 'a relative tokenFile is taken from the config file\'s directory');
  t.same(resolveConfig({ context: 'bare' }, {}, file), { server: DEFAULT_SERVER, source: 'default', context: 'bare' }, 'a context does not fall back to the top-level fields');
  t.match(resolveConfig({ server: 'http://flag:1' }, { BERTH_TOKEN: 'e' }, file), { server: 'http://flag:1', token: 'e' }, 'flags and environment beat the context');
  t.throws(() => resolveConfig({ context: 'nope', server: 'http://a', token: 'x' }, {}, file), /no context "nope" in .*config\.json \(named by --context or \$BERTH_CONTEXT\); it has local, prod, rel, bare/);
  write(file, { server: 'http://old:1', token: 'old-token', currentContext: 'gone', contexts: {} });
  t.throws(() => resolveConfig({}, {}, file), /no context "gone" .*named by its currentContext/);
  write(file, { server: 'http://old:1', token: 'old-token', contexts: { x: { server: 'http://x:1' } } });
  t.match(resolveConfig({}, {}, file), { server: 'http://old:1', token: 'old-token' }, 'no current context: the top-level fields');
});

t.test('writing the file: 0600 in a 0700 directory, nothing else lost', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'berth', 'config.json');
  updateConfigFile(file, (cfg) => {
    cfg.contexts.a = { server: 'http://a:1', token: 'berth_0123456789abcdefghij' };
    cfg.currentContext = 'a';
  });
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  t.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
  write(file, { server: 'http://old:1', somethingElse: { keep: true }, contexts: { a: { server: 'http://a:1' } } });
  fs.chmodSync(file, 0o644);
  updateConfigFile(file, (cfg) => void (cfg.contexts.b = { server: 'http://b:1', tokenFile: '/x' }));
  t.same(JSON.parse(fs.readFileSync(file, 'utf8')), { server: 'http://old:1', somethingElse: { keep: true }, contexts: { a: { server: 'http://a:1' }, b: { server: 'http://b:1', tokenFile: '/x' } } });
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'a file once readable by others is tightened');
  t.same(fs.readdirSync(path.dirname(file)), ['config.json'], 'no temp file left');
  t.throws(() => updateConfigFile(file, () => { throw new Error('refused'); }), /refused/);
  t.same(readConfigFile(file).contexts.b, { server: 'http://b:1', tokenFile: '/x' }, 'a failed change writes nothing');
  t.equal(maskToken('berth_0123456789abcdefghij'), 'berth_0123****');
  t.equal(maskToken('short'), '****');
  const masked = maskedConfig({ token: 'berth_0123456789abcdefghij', contexts: { a: { server: 's', token: 'berth_zyxwvutsrqponmlkjih' }, b: { tokenFile: '/f' } } });
  t.same(masked, { token: 'berth_0123****', contexts: { a: { server: 's', token: 'berth_zyxw****' }, b: { tokenFile: '/f' } } });
});

t.test('errors of auth say what to do', async (t) => {
  const e401 = new ApiError(401, 'UNAUTHENTICATED', 'this API needs a token: send `Authorization: Bearer <token>` (or log in to the dashboard)');
  t.match(explainApiError(e401), /^this API needs a token.*\ngive a token with --token TOKEN, \$BERTH_TOKEN, --token-file FILE or \$BERTH_TOKEN_FILE, or save one in a context: berth config set-context/);
  const refused = new ApiError(401, 'UNAUTHENTICATED', 'this API needs a token', undefined, { tokenSource: '$BERTH_TOKEN' });
  t.match(explainApiError(refused), /^the token from \$BERTH_TOKEN was refused: it is unknown or revoked/);
  const e403 = new ApiError(403, 'FORBIDDEN', 'role viewer may not POST /v1/pods: it needs role operator', { needs: 'operator', role: 'viewer' });
  t.equal(explainApiError(e403), 'role viewer may not POST /v1/pods: it needs role operator\nan admin can give you one: berth create token NAME --role operator');
  const e429 = new ApiError(429, 'RATE_LIMITED', 'rate limit of 5 writes per second for token ci exceeded: retry in 1 second', undefined, { retryAfterSeconds: 2 });
  t.equal(explainApiError(e429), 'rate limit of 5 writes per second for token ci exceeded: retry in 2 s');
  t.equal(explainApiError(new ApiError(429, 'RATE_LIMITED', 'slow down')), 'slow down', 'no Retry-After: the message alone');
  t.equal(retryAfterSeconds('3'), 3);
  t.equal(retryAfterSeconds(null), undefined);
  t.equal(retryAfterSeconds(new Date(10_500).toUTCString(), 1000), 9);
  t.equal(retryAfterSeconds('soon'), undefined);
});

t.test('audit: --since and rows', async (t) => {
  const now = Date.parse('2026-01-02T03:00:00Z');
  t.equal(parseSince('10m', now), '2026-01-02T02:50:00.000Z');
  t.equal(parseSince('1h30m', now), '2026-01-02T01:30:00.000Z');
  t.equal(parseSince('2d', now), '2025-12-31T03:00:00.000Z');
  t.equal(parseSince('2026-01-01T00:00:00Z', now), '2026-01-01T00:00:00.000Z');
  t.equal(parseSince('2026-01-01T01:00:00+01:00', now), '2026-01-01T00:00:00.000Z');
  t.throws(() => parseSince('10', now), /--since "10": give a duration \(30s, 10m, 1h, 2d\) or a time/);
  t.throws(() => parseSince('yesterday', now), /--since "yesterday"/);
  const rec = { id: 'x', time: '2026-01-02T03:04:05.678Z', actor: 'ci', role: 'viewer' as const, replica: 'c1', method: 'POST', route: '/v1/pods', target: 'web', status: 403, ip: '127.0.0.1' };
  t.same(auditRow(rec), ['2026-01-02T03:04:05Z', 'ci', 'viewer', 'POST', '/v1/pods', 'web', '403', 'c1']);
  t.same(auditRow({ ...rec, role: null, target: null, actor: 'anonymous', status: 401 }).slice(1, 3), ['anonymous', '<none>']);
});

t.test('completion of the auth and config commands', async (t) => {
  const names = async () => ['x'];
  const contexts = () => ['local', 'prod'];
  t.same(await complete(['create', ''], names, contexts), ['service', 'token']);
  t.same(await complete(['create', 'token', 'ci', '--role', ''], names, contexts), ['viewer', 'operator', 'admin']);
  t.same(await complete(['get', 't'], names, contexts), ['tokens']);
  t.same(await complete(['delete', 't'], names, contexts), ['token']);
  t.same(await complete(['delete', 'token', ''], names, contexts), [], 'token names are not listed');
  t.same(await complete(['config', ''], names, contexts), ['get-contexts', 'current-context', 'use-context', 'set-context', 'delete-context', 'view']);
  t.same(await complete(['config', 'use-context', 'p'], names, contexts), ['prod']);
  t.same(await complete(['--context', ''], names, contexts), ['local', 'prod']);
  t.same(await complete(['--context', 'prod', 'w'], names, contexts), ['whoami']);
  t.same(await complete(['a'], names, contexts), ['apply', 'audit']);
  t.same(extractGlobalFlags(['--token-file', '/f', '--context=prod', 'get', '']), { tokenFile: '/f', context: 'prod', rest: ['get', ''] });
});

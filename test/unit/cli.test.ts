import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {
  DEFAULT_SERVER, colorEnabled, columnWidths, complete, extractGlobalFlags, formatAge, formatCpu, formatDuration, formatMemory, formatPercent, formatRow, describePod, kindOf, normalizedSpec, parseCpu, parseInteger, parseKeyValues, parseManifests, parseMemory, renderFields, renderTable, resolveConfig, specDiff, ManifestError, SseParser, eventRow,
} from '@berth/cli';
import { tempDir } from '../helpers/fixtures.js';

// The CLI's pure building blocks: units, ages, tables, the SSE parser, config
// precedence, manifests and completion candidates. The built CLI against a
// real cluster is test/integration/cli.test.ts.

t.test('units', async (t) => {
  t.equal(parseCpu('0.5'), 0.5);
  t.equal(parseCpu('2'), 2);
  t.equal(parseCpu('500m'), 0.5);
  t.equal(parseCpu('1500m'), 1.5);
  t.equal(parseCpu(0.25), 0.25);
  t.throws(() => parseCpu('0'), /more than 0/);
  t.throws(() => parseCpu('abc'), /invalid cpu/);
  t.throws(() => parseCpu('-1'), /invalid cpu/);
  t.equal(parseMemory('256Mi'), 256);
  t.equal(parseMemory('1Gi'), 1024);
  t.equal(parseMemory('1.5Gi'), 1536);
  t.equal(parseMemory('8Gi'), 8192);
  t.equal(parseMemory('1Ti'), 1048576);
  t.equal(parseMemory('512Ki'), 1, 'rounded up to a whole MiB');
  t.equal(parseMemory('1G'), 954, '10^9 bytes, rounded up');
  t.equal(parseMemory('300'), 300, 'a bare number is MiB');
  t.throws(() => parseMemory('1GB'), /invalid memory/);
  t.throws(() => parseMemory('0Mi'), /more than 0/);
  t.equal(formatCpu(2), '2');
  t.equal(formatCpu(1.5), '1.5');
  t.equal(formatCpu(0.5), '500m');
  t.equal(formatCpu(0.1 + 0.2), '300m');
  t.equal(formatCpu(0), '0');
  t.equal(formatMemory(256), '256Mi');
  t.equal(formatMemory(1024), '1Gi');
  t.equal(formatMemory(1536), '1.5Gi');
  t.equal(formatMemory(8192), '8Gi');
  t.equal(formatMemory(2 * 1048576), '2Ti');
  t.equal(formatPercent(3.456), '3.5%');
  t.equal(formatPercent(42.4), '42%');
  t.same(parseKeyValues(['a=1', 'b=x=y']), { a: '1', b: 'x=y' });
  t.same(parseKeyValues(['a=1,b=2'], 'label', true), { a: '1', b: '2' });
  t.throws(() => parseKeyValues(['=1']), /KEY=VALUE/);
  t.throws(() => parseKeyValues(['novalue']), /KEY=VALUE/);
  t.equal(parseInteger('12', 'n', 0, 20), 12);
  t.throws(() => parseInteger('1.5', 'n'), /whole number/);
  t.throws(() => parseInteger('30', 'n', 0, 20), /between/);
});

t.test('ages', async (t) => {
  t.equal(formatDuration(0), '0s');
  t.equal(formatDuration(59_999), '59s');
  t.equal(formatDuration(3 * 60_000 + 10_000), '3m');
  t.equal(formatDuration(2 * 3600_000 + 5), '2h');
  t.equal(formatDuration(5 * 86400_000), '5d');
  t.equal(formatDuration(800 * 86400_000), '2y');
  t.equal(formatDuration(-5000), '0s', 'clock skew counts as 0');
  const now = Date.parse('2026-01-01T12:00:00Z');
  t.equal(formatAge('2026-01-01T11:57:00Z', now), '3m');
  t.equal(formatAge(null, now), '<unknown>');
  t.equal(formatAge('garbage', now), '<unknown>');
});

t.test('tables', async (t) => {
  const text = renderTable(['NAME', 'STATUS'], [['a-long-name', 'Ready'], ['b', 'NotReady']]);
  t.equal(text, ['NAME          STATUS', 'a-long-name   Ready', 'b             NotReady'].join('\n'), 'aligned, no borders, no trailing blanks');
  t.equal(renderTable(['NAME', 'AGE'], []), 'NAME   AGE', 'an empty list is just the header');
  const coloured = renderTable(['A', 'B'], [['\x1b[32mok\x1b[39m', 'x']]);
  t.match(coloured.split('\n')[1]!, /^\x1b\[32mok\x1b\[39m   x$/, 'ANSI codes do not count towards width');
  const widths = columnWidths([['NAME', 'PHASE'], ['web', 'Running']]);
  t.same(widths, [4, 7]);
  t.equal(formatRow(['web', 'Running'], widths), 'web    Running');
  t.equal(renderFields([['Name', 'x'], ['Long key', 'a\nb']]), 'Name:      x\nLong key:  a\n  b');
});

t.test('describe pod says whether it is ready (what discovery routes on)', async (t) => {
  const pod = {
    id: 'p1',
    name: 'web',
    spec: { env: {}, cpu: 0.1, memoryMiB: 64, ports: [], restartPolicy: 'Always', priority: 0, nodeSelector: {} },
    desired: 'running',
    status: { phase: 'Running', nodeId: 'n1', reason: 'Started', message: '', restarts: 0, startedAt: null, finishedAt: null, ready: true },
    createdAt: '2026-01-01T12:00:00Z',
  } as const;
  const ready = (p: typeof pod | { status: Record<string, unknown> }) => /^Ready:\s+(\S+)$/m.exec(describePod(p as never, 'node-1', Date.parse('2026-01-01T12:00:00Z')))?.[1];
  t.equal(ready(pod), 'true');
  t.equal(ready({ ...pod, status: { ...pod.status, ready: false } }), 'false');
  t.equal(ready({ ...pod, status: { ...pod.status, phase: 'Pending', nodeId: null, ready: undefined } }), 'false', 'a record that says nothing is not ready');
});

t.test('server-sent events parser', async (t) => {
  const p = new SseParser();
  t.same(p.push(': heartbeat\n\n'), [], 'comments and empty messages dispatch nothing');
  t.same(p.push('event: snapshot\nid: 7\nretry: 1000\ndata: {"a":\ndata:1}\n\n'), [{ event: 'snapshot', id: '7', data: '{"a":\n1}' }]);
  t.same(p.push('event: pod\r\ndata: x\r'), [], 'a message waits for its blank line');
  t.same(p.push('\n\r\n'), [{ event: 'pod', id: '7', data: 'x' }], 'CRLF split across chunks; the id carries over');
  t.same(p.push('data: only\r\rdata'), [{ event: 'message', id: '7', data: 'only' }], 'bare CR line ends; no event name is "message"');
  t.same(p.push('\n\n'), [{ event: 'message', id: '7', data: '' }], 'a field without a colon has an empty value');
  const row = eventRow(
    { id: 'e1', time: '2026-01-01T11:59:00Z', type: 'Normal', reason: 'NodeCordoned', message: 'node a: NodeCordoned', involved: { kind: 'node', id: 'n1' }, source: 'c1' },
    false,
    Date.parse('2026-01-01T12:00:00Z'),
  );
  t.same(row, ['1m', 'Normal', 'NodeCordoned', 'node/n1', 'c1', 'node a: NodeCordoned']);
});

t.test('config precedence', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'config.json');
  t.same(resolveConfig({}, {}, file), { server: DEFAULT_SERVER, source: 'default' });
  fs.writeFileSync(file, JSON.stringify({ server: 'http://from-file:1/', token: 'ft' }));
  t.same(resolveConfig({}, {}, file), { server: 'http://from-file:1', source: 'config', token: 'ft' });
  t.same(resolveConfig({}, { BERTH_SERVER: 'env:2', BERTH_TOKEN: 'et' }, file), { server: 'http://env:2', source: 'env', token: 'et' });
  t.same(resolveConfig({ server: 'https://flag:3', token: 'x' }, { BERTH_SERVER: 'env:2' }, file), { server: 'https://flag:3', source: 'flag', token: 'x' });
  t.equal(resolveConfig({}, { XDG_CONFIG_HOME: dir }).source, 'default', 'XDG_CONFIG_HOME/berth/config.json is looked up');
  fs.writeFileSync(file, '{nope');
  t.throws(() => resolveConfig({}, {}, file), /invalid config file/);
  t.equal(colorEnabled({ isTTY: true }, {}), true);
  t.equal(colorEnabled({ isTTY: true }, { NO_COLOR: '1' }), false);
  t.equal(colorEnabled({ isTTY: false }, {}), false);
});

t.test('manifests', async (t) => {
  const text = [
    'kind: Pod',
    'metadata: {name: a}',
    'spec:',
    '  command: [sleep, 100]',
    '  cpu: 250m',
    '  memory: 1Gi',
    '  env: [{name: X, value: 1}]',
    '  ports: [{containerPort: 80}, 81]',
    '---',
    '# empty document',
    '---',
    'kind: Pod',
    'metadata: {name: b}',
    'spec: {image: nginx, cpu: 1, memoryMiB: 64, env: {Y: two}, nodeSelector: {zone: earth}, restartPolicy: Never, priority: 5}',
  ].join('\n');
  const pods = parseManifests(text, 'm.yaml');
  t.same(pods.map((p) => p.request), [
    { name: 'a', command: ['sleep', '100'], cpu: 0.25, memoryMiB: 1024, env: { X: '1' }, ports: [80, 81] },
    { name: 'b', image: 'nginx', cpu: 1, memoryMiB: 64, env: { Y: 'two' }, nodeSelector: { zone: 'earth' }, restartPolicy: 'Never', priority: 5 },
  ]);
  t.same(parseManifests('', 'empty.yaml'), []);
  const errorOf = (src: string) => {
    try {
      parseManifests(src, 'f.yaml');
    } catch (err) {
      t.type(err, ManifestError);
      return (err as Error).message;
    }
    return 'no error';
  };
  t.match(errorOf('kind: Pod\nmetadata: {name: x\nspec: 1\n'), /^f\.yaml:3:1: /, 'YAML syntax errors give line:column');
  t.equal(errorOf('kind: Pod\nmetadata: {name: x}\nspec:\n  cpu: 1\n  flavour: mint\n').split(' ')[0], 'f.yaml:5:3:', 'unknown fields point at the key');
  t.match(errorOf('kind: Pod\nmetadata: {name: x}\nspec:\n  cpu: lots\n'), /^f\.yaml:4:3: spec\.cpu: invalid cpu/);
  t.match(errorOf('kind: Service\nmetadata: {name: x}\n'), /^f\.yaml:1:1: kind "Service" is not supported/);
  t.match(errorOf('kind: Pod\nspec: {cpu: 1}\n'), /metadata\.name is required/);
  t.match(errorOf('kind: Pod\nmetadata: {name: x}\nspec: {command: [a]}\n'), /spec\.cpu is required/);
  t.match(errorOf('kind: Pod\nmetadata: {name: x}\n'), /^f\.yaml:1:1: spec is required/);
  t.match(
    errorOf('kind: Pod\nmetadata: {name: x}\nspec: {cpu: 1}\n---\nkind: Pod\nmetadata: {name: y}\nspec: {cpu: 1, restartPolicy: Sometimes}\n'),
    /^f\.yaml:7:16: spec\.restartPolicy: expected one of Always, OnFailure, Never/,
    'errors in later documents point into them',
  );

  const existing = normalizedSpec({ name: 'a', command: ['sleep', '100'], cpu: 0.25 });
  t.same(specDiff(existing, normalizedSpec({ name: 'a', command: ['sleep', '100'], cpu: 0.25, memoryMiB: 128, env: {} })), [], 'defaults compare equal');
  t.same(specDiff({ ...existing, env: { b: '2', a: '1' } }, { ...existing, env: { a: '1', b: '2' } }), [], 'key order does not matter');
  t.same(specDiff(existing, normalizedSpec({ name: 'a', command: ['sleep', '100'], cpu: 0.5 })), ['cpu: 0.25 -> 0.5']);
});

t.test('completion candidates', async (t) => {
  const names = async (kind: 'nodes' | 'pods') => (kind === 'nodes' ? ['n1', 'n2'] : ['web', 'db']);
  t.same(await complete(['ge'], names), ['get']);
  t.same(await complete(['get', ''], names), ['nodes', 'pods', 'events']);
  t.same(await complete(['get', 'events', ''], names), []);
  t.same(await complete(['get', 'pods', ''], names), ['web', 'db']);
  t.same(await complete(['describe', 'no', 'n'], names), ['n1', 'n2']);
  t.same(await complete(['--server', 'http://x', 'cordon', ''], names), ['n1', 'n2']);
  t.same(await complete(['get', 'pods', '-o', ''], names), ['wide', 'json', 'yaml']);
  t.same(await complete(['stop', ''], names), ['pod']);
  t.same(await complete(['logs', 'w'], names), ['web']);
  t.same(await complete(['completion', ''], names), ['bash', 'zsh']);
  t.same(await complete(['get', 'pods', 'web', ''], names), []);
  t.same(await complete(['get', 'pods', ''], async () => Promise.reject(new Error('down'))), [], 'an unreachable API gives no names');
  t.same(extractGlobalFlags(['--server=http://a', '--token', 't', 'get', '']), { server: 'http://a', token: 't', rest: ['get', ''] });
  t.equal(kindOf('po'), 'pods');
  t.equal(kindOf('x'), undefined);
});

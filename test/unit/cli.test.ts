import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {
  colorEnabled, columnWidths, complete, extractGlobalFlags, formatAge, formatCpu, formatDuration, formatMemory, formatPercent, formatRow, describePod, kindOf, normalizedSpec, parseCpu, parseInteger, parseKeyValues, parseManifests, parseMemory, renderFields, renderTable, specDiff, ManifestError, SseParser, eventRow,
  JOB_COLUMNS, SERVICE_COLUMNS, bodyPreview, describeJob, describeService, formatMs, jobRow, parseHeader, readData, serviceChanges, serviceRow,
  type JobView, type Kind, type ServiceView,
} from '@berth/cli';
import { jobSummary, newestJobs, templateHash } from '@berth/core';
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

t.test('colour', async (t) => {
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
  t.match(errorOf('kind: Deployment\nmetadata: {name: x}\n'), /^f\.yaml:1:1: kind "Deployment" is not supported: use kind: Pod or kind: Service/);
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
  const names = async (kind: Kind) => ({ nodes: ['n1', 'n2'], pods: ['web', 'db'], services: ['echo', 'api'], jobs: ['j1'] })[kind];
  t.same(await complete(['ge'], names), ['get']);
  t.same(await complete(['get', ''], names), ['nodes', 'pods', 'services', 'jobs', 'events', 'tokens']);
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
  t.equal(kindOf('svc'), 'services');
  t.equal(kindOf('job'), 'jobs');
  t.same(await complete(['s'], names), ['scale', 'submit', 'stop', 'start']);
  t.same(await complete(['describe', ''], names), ['node', 'pod', 'service', 'job']);
  t.same(await complete(['describe', 'svc', 'e'], names), ['echo']);
  t.same(await complete(['delete', 'job', ''], names), ['j1']);
  t.same(await complete(['create', ''], names), ['service', 'token']);
  t.same(await complete(['scale', 'service', ''], names), ['echo', 'api']);
  t.same(await complete(['scale', 'service', 'echo', ''], names), [], 'the replica count is not completed');
  t.same(await complete(['submit', ''], names), ['echo', 'api']);
  t.same(await complete(['submit', 'echo', '--method', 'P'], names), ['POST', 'PUT', 'PATCH']);
  t.same(await complete(['get', 'jobs', '--service', ''], names), ['echo', 'api']);
  t.same(await complete(['get', 'jobs', '--status', 'T'], names), ['TimedOut']);
  t.same(await complete(['submit', 'echo', '--data', 'x', ''], names), [], 'a flag value is skipped');
});

// ---- services and jobs ----

const NOW = Date.parse('2026-01-01T12:00:00Z');
const service = (over: Partial<ServiceView> = {}): ServiceView => ({
  name: 'echo',
  replicas: 3,
  template: { command: ['node', 'server.js'], cpu: 0.25, memoryMiB: 64, ports: [8000], healthCheck: { path: '/healthz' } },
  templateHash: templateHash({ command: ['node', 'server.js'], cpu: 0.25, memoryMiB: 64, ports: [8000], healthCheck: { path: '/healthz' } }),
  createdAt: '2026-01-01T11:58:00Z',
  updatedAt: '2026-01-01T11:59:00Z',
  status: {
    currentReplicas: 3,
    readyReplicas: 2,
    updatedReplicas: 3,
    endpoints: [
      { podId: 'p1', podName: 'echo-a', nodeId: 'n1', address: '10.0.0.1:40001', ready: true, inFlight: 2 },
      { podId: 'p2', podName: 'echo-b', nodeId: 'n2', address: '10.0.0.2:40002', ready: true, inFlight: 0, ejectedUntil: '2026-01-01T12:00:05Z' },
      { podId: 'p3', podName: 'echo-c', nodeId: null, address: null, ready: false, inFlight: 0 },
    ],
  },
  ...over,
});
const job = (over: Partial<JobView> = {}): JobView => ({
  id: 'j1abc',
  service: 'echo',
  request: { method: 'POST', path: '/work?x=1', headers: { 'content-type': 'text/plain' }, body: 'hello', bodyEncoding: 'utf8' },
  timeoutMs: 60_000,
  attemptTimeoutMs: 10_000,
  maxAttempts: 3,
  status: 'Succeeded',
  reason: 'Answered',
  message: 'the pod answered 200',
  attempts: [
    { attempt: 1, replica: 'c1', podId: 'p2', nodeId: 'n2', startedAt: '2026-01-01T11:59:00.000Z', finishedAt: '2026-01-01T11:59:00.040Z', outcome: 'Error', statusCode: 503, error: 'the pod answered 503' },
    { attempt: 2, replica: 'c1', podId: 'gone', nodeId: 'n1', startedAt: '2026-01-01T11:59:00.050Z', finishedAt: '2026-01-01T11:59:01.250Z', outcome: 'Succeeded', statusCode: 200 },
  ],
  result: { statusCode: 200, headers: { 'content-type': 'application/json' }, body: '{"pod":"gone"}', bodyEncoding: 'utf8' },
  createdAt: '2026-01-01T11:59:00.000Z',
  updatedAt: '2026-01-01T11:59:01.250Z',
  finishedAt: '2026-01-01T11:59:01.250Z',
  ...over,
});

t.test('service rows and describe', async (t) => {
  t.same(serviceRow(service(), false, NOW), ['echo', '2/3', '3', '2m', '8000']);
  t.same(serviceRow(service({ port: 9000, template: { ...service().template, ports: [8000, 9000] } }), false, NOW)[4], '9000', "the service's own port wins");
  t.same(serviceRow(service(), true, NOW).slice(5), ['3', '250m', '64Mi', 'node server.js']);
  const table = renderTable(SERVICE_COLUMNS, [serviceRow(service(), false, NOW)]);
  t.equal(table, 'NAME   READY   UP-TO-DATE   AGE   PORT\necho   2/3     3            2m    8000');
  const text = describeService(service(), new Map([['n1', 'node-1']]), NOW);
  t.match(text, /^Name:\s+echo$/m);
  t.match(text, /^Replicas:\s+3 desired \| 3 current \| 2 ready \| 3 up-to-date$/m);
  t.match(text, /^Port:\s+8000 \(the template's first\)$/m);
  t.match(text, /^Template:\n  Image:\s+<none>\n  Command:\s+node server\.js$/m, 'the template, defaults applied');
  t.match(text, /^  Memory:\s+64Mi$/m);
  t.match(text, /^  Health check:\s+GET \/healthz on port PORT every \d+s/m);
  t.match(text, /^Endpoints \(3\):\n  POD\s+NODE\s+ADDRESS\s+READY\s+IN-FLIGHT\s+EJECTED$/m);
  t.match(text, /^  echo-a\s+node-1\s+10\.0\.0\.1:40001\s+true\s+2\s+<none>$/m, 'node names where known');
  t.match(text, /^  echo-b\s+n2\s+10\.0\.0\.2:40002\s+true\s+0\s+for 5\.0s$/m, 'ejected, for how long');
  t.match(text, /^  echo-c\s+<none>\s+<none>\s+false\s+0\s+<none>$/m);
  t.match(describeService(service({ status: { currentReplicas: 0, readyReplicas: 0, updatedReplicas: 0, endpoints: [] } }), new Map(), NOW), /^Endpoints \(0\):\n  <none>$/m);
});

t.test('job rows and describe', async (t) => {
  t.same(jobRow(job(), false, NOW), ['j1abc', 'echo', 'Succeeded', '2', '200', '1m']);
  t.same(jobRow(job(), true, NOW).slice(6), ['POST /work?x=1', '1.3s', 'Answered']);
  const queued = job({ status: 'Queued', reason: 'NoEndpoints', attempts: [], createdAt: '2026-01-01T11:59:59.000Z' });
  delete queued.result;
  delete queued.finishedAt;
  t.same(jobRow(queued, true, NOW), ['j1abc', 'echo', 'Queued', '0', '<none>', '1s', 'POST /work?x=1', '<running>', 'NoEndpoints']);
  t.same(jobRow(jobSummary(job()), false, NOW), jobRow(job(), false, NOW), "the live stream's summary renders as the record");
  t.equal(renderTable(JOB_COLUMNS, []), 'ID   SERVICE   STATUS   ATTEMPTS   CODE   AGE');
  const text = describeJob(job(), new Map([['p2', 'echo-b']]), new Map([['n1', 'node-1'], ['n2', 'node-2']]), NOW);
  for (const re of [
    /^Request:\s+POST \/work\?x=1$/m,
    /^Headers:\s+content-type: text\/plain$/m,
    /^Body:\s+hello$/m,
    /^Limits:\s+timeout 1m, 10s per attempt, at most 3 attempt\(s\)$/m,
    /^Status:\s+Succeeded$/m,
    /^Reason:\s+Answered$/m,
    /^Took:\s+1\.3s$/m,
    /^Attempts \(2\):\n  #\s+POD\s+NODE\s+REPLICA\s+STARTED\s+TOOK\s+OUTCOME\s+CODE\s+ERROR$/m,
    /^  1\s+echo-b\s+node-2\s+c1\s+1m\s+40ms\s+Error\s+503\s+the pod answered 503$/m,
    /^  2\s+gone\s+node-1\s+c1\s+59s\s+1\.2s\s+Succeeded\s+200$/m,
    /^Result:\n  Status code:\s+200\n  Content type:\s+application\/json\n  Body:\s+\{"pod":"gone"\}$/m,
  ]) {
    t.match(text, re);
  }
  t.notMatch(describeJob(queued, new Map(), new Map(), NOW), /Result:/, 'no result while it has none');
  t.match(describeJob(queued, new Map(), new Map(), NOW), /^Attempts \(0\):\n  <none>$/m);
  t.equal(bodyPreview(undefined, undefined), '<none>');
  t.equal(bodyPreview(Buffer.from([0, 1, 2, 255]).toString('base64'), 'base64'), '<4 bytes of binary data>');
  t.equal(bodyPreview('x'.repeat(2000), 'utf8', 10), `${'x'.repeat(10)}\n… (2000 bytes in all; -o json shows it whole)`);
  t.equal(formatMs(35), '35ms');
  t.equal(formatMs(1250), '1.3s');
  t.equal(formatMs(125_000), '2m');
});

t.test('job summaries and the newest jobs (the live stream)', async (t) => {
  t.same(jobSummary(job()), {
    id: 'j1abc', service: 'echo', method: 'POST', path: '/work?x=1', status: 'Succeeded', reason: 'Answered', message: 'the pod answered 200', attempts: 2, statusCode: 200,
    createdAt: '2026-01-01T11:59:00.000Z', updatedAt: '2026-01-01T11:59:01.250Z', finishedAt: '2026-01-01T11:59:01.250Z',
  });
  const failing = job({ status: 'Running' });
  delete failing.result;
  t.equal(jobSummary(failing).statusCode, 200, "without a result, the last attempt's code");
  const jobs = Array.from({ length: 200 }, (_, i) => ({ id: `j${String(i).padStart(3, '0')}`, createdAt: new Date(NOW + ((i * 37) % 200) * 1000).toISOString() }));
  const expected = [...jobs].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, 50);
  t.same(newestJobs(jobs, 50, (j) => j), expected, 'the 50 newest, newest first');
  const tied = [{ id: 'a', createdAt: 'x' }, { id: 'c', createdAt: 'x' }, { id: 'b', createdAt: 'x' }];
  t.same(newestJobs(tied, 2, (j) => j).map((j) => j.id), ['c', 'b'], 'ties by id');
  t.same(newestJobs([], 5, (j) => j), []);
});

t.test('service manifests and what apply changes', async (t) => {
  const text = [
    'kind: Service',
    'metadata: {name: api}',
    'spec:',
    '  replicas: 3',
    '  template:',
    '    command: [node, server.js]',
    '    cpu: 250m',
    '    memory: 64Mi',
    '    ports: [8000]',
    '    healthCheck: {path: /healthz}',
  ].join('\n');
  const [m] = parseManifests(text, 's.yaml');
  t.same(m, {
    kind: 'Service',
    line: 1,
    request: { name: 'api', replicas: 3, template: { command: ['node', 'server.js'], cpu: 0.25, memoryMiB: 64, ports: [8000], healthCheck: { path: '/healthz' } } },
  });
  const errorOf = (src: string) => {
    try {
      parseManifests(src, 's.yaml');
    } catch (err) {
      return (err as Error).message;
    }
    return 'no error';
  };
  t.match(errorOf('kind: Service\nmetadata: {name: a}\nspec:\n  template: {cpu: 1}\n'), /^s\.yaml:3:1: spec\.replicas is required/);
  t.match(errorOf('kind: Service\nmetadata: {name: a}\nspec:\n  replicas: 1\n'), /spec\.template is required and must be a mapping/);
  t.match(errorOf('kind: Service\nmetadata: {name: a}\nspec:\n  replicas: 1\n  template: {cpu: lots}\n'), /^s\.yaml:5:14: spec\.template\.cpu: invalid cpu/);
  t.match(errorOf('kind: Service\nmetadata: {name: a}\nspec:\n  replicas: 1\n  template:\n    cpu: 1\n    flavour: mint\n'), /^s\.yaml:7:5: spec\.template\.flavour is not a known field/);
  t.match(errorOf('kind: Service\nmetadata: {name: a}\nspec:\n  replicas: 1\n  size: 2\n  template: {cpu: 1}\n'), /^s\.yaml:5:3: spec\.size is not a known field of a service/);
  t.match(errorOf('kind: Service\nmetadata: {name: a}\nspec:\n  replicas: two\n  template: {cpu: 1}\n'), /spec\.replicas: expected a whole number/);

  if (m?.kind !== 'Service') throw new Error('a Service manifest');
  const wanted = m.request;
  const existing = service({ name: 'api', template: wanted.template, templateHash: templateHash(wanted.template) });
  t.same(serviceChanges(existing, wanted), { changes: [] }, 'the same manifest changes nothing');
  t.same(serviceChanges(existing, { ...wanted, template: { ...wanted.template, memoryMiB: 64, restartPolicy: 'Always' } }), { changes: [] }, 'defaults spelled out change nothing');
  t.same(serviceChanges(existing, { ...wanted, replicas: 5 }), { patch: { replicas: 5 }, changes: ['replicas: 3 -> 5'] });
  const moreCpu = { ...wanted.template, cpu: 0.5 };
  t.same(serviceChanges(existing, { ...wanted, template: moreCpu }), { patch: { template: moreCpu }, changes: ['template.cpu: 0.25 -> 0.5'] });
  t.same(serviceChanges(existing, { ...wanted, port: 8000 }), { changes: [] }, "the template's first port, named, is where requests go already");
  const twoPorts = { ...wanted.template, ports: [8000, 9000] };
  t.same(serviceChanges(existing, { ...wanted, template: twoPorts, port: 9000 }), { patch: { template: twoPorts, port: 9000 }, changes: ['template.ports: [8000] -> [8000,9000]', 'port: 8000 -> 9000'] });
});

t.test('submit flags', async (t) => {
  t.same(parseHeader('x-a:1'), ['x-a', '1']);
  t.same(parseHeader('Content-Type: text/plain; charset=utf-8'), ['Content-Type', 'text/plain; charset=utf-8']);
  t.throws(() => parseHeader('nocolon'), /expected NAME:VALUE/);
  t.throws(() => parseHeader(':x'), /expected NAME:VALUE/);
  t.equal(readData('plain text'), 'plain text');
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'body.json'), '{"a":1}');
  t.equal(readData(`@${path.join(dir, 'body.json')}`), '{"a":1}');
  t.equal(readData('@-', (f) => (f === 0 ? 'from stdin' : 'file')), 'from stdin');
  t.throws(() => readData(`@${path.join(dir, 'missing')}`), /--data @.*missing: cannot read .*missing: ENOENT/);
});

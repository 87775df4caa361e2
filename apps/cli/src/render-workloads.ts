import { jobSummary, serviceSpec, type JobStatus, type JobSummary } from '@berth/core';
import type { JobView, ServiceView } from './client.js';
import { formatAge, formatDuration } from './age.js';
import { PLAIN, specFields, type Palette } from './render.js';
import { renderFields, renderTable } from './table.js';
import { formatCpu, formatMemory } from './units.js';

/** Tables and describe blocks of services and jobs. Pure. */

/** The port a service's requests go to: its own, else its template's first. */
export function servicePort(s: Pick<ServiceView, 'port' | 'template'>): number | undefined {
  return s.port ?? s.template.ports?.[0];
}

/** `2/3`: ready over desired, green when every replica is ready. */
function readyOf(s: ServiceView, c: Palette): string {
  const text = `${s.status.readyReplicas}/${s.replicas}`;
  return s.status.readyReplicas >= s.replicas ? c.green(text) : c.yellow(text);
}

/** What the template runs: its image, else its command line. */
function runs(s: ServiceView): string {
  const text = s.template.image ?? (s.template.command ?? []).join(' ');
  return text.length > 50 ? `${text.slice(0, 49)}…` : text;
}

export const SERVICE_COLUMNS = ['NAME', 'READY', 'UP-TO-DATE', 'AGE', 'PORT'];
export const SERVICE_WIDE_COLUMNS = [...SERVICE_COLUMNS, 'CURRENT', 'CPU', 'MEMORY', 'RUNS'];

export function serviceRow(s: ServiceView, wide: boolean, now: number, c: Palette = PLAIN): string[] {
  const row = [s.name, readyOf(s, c), String(s.status.updatedReplicas), formatAge(s.createdAt, now), String(servicePort(s) ?? '<none>')];
  if (!wide) return row;
  return [...row, String(s.status.currentReplicas), formatCpu(s.template.cpu), formatMemory(s.template.memoryMiB ?? 128), runs(s)];
}

export function jobStatus(status: JobStatus, c: Palette = PLAIN): string {
  switch (status) {
    case 'Succeeded':
      return c.green(status);
    case 'Failed':
    case 'TimedOut':
      return c.red(status);
    case 'Queued':
    case 'Running':
      return c.yellow(status);
    default:
      return c.dim(status);
  }
}

export const JOB_COLUMNS = ['ID', 'SERVICE', 'STATUS', 'ATTEMPTS', 'CODE', 'AGE'];
export const JOB_WIDE_COLUMNS = [...JOB_COLUMNS, 'REQUEST', 'DURATION', 'REASON'];

/** A job's row, from its record or from the live stream's summary of it. */
export function jobRow(job: JobView | JobSummary, wide: boolean, now: number, c: Palette = PLAIN): string[] {
  const j = 'request' in job ? jobSummary(job) : job;
  const row = [j.id, j.service, jobStatus(j.status, c), String(j.attempts), j.statusCode === undefined ? '<none>' : String(j.statusCode), formatAge(j.createdAt, now)];
  if (!wide) return row;
  const took = j.finishedAt === undefined ? '<running>' : formatMs(Date.parse(j.finishedAt) - Date.parse(j.createdAt));
  return [...row, `${j.method} ${j.path}`, took, j.reason || '<none>'];
}

/** A duration that may be short: `35ms`, `1.2s`, else the age format (`3m`). */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '<unknown>';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  return formatDuration(ms);
}

const when = (iso: string | null | undefined, now: number) => (iso ? `${iso} (${formatAge(iso, now)} ago)` : '<none>');
const indent = (text: string) => text.split('\n').map((l) => `  ${l}`).join('\n');

/** `berth describe service`: replicas, the template's spec, and every endpoint as the answering replica routes to it. */
export function describeService(s: ServiceView, nodeNames: ReadonlyMap<string, string>, now: number, c: Palette = PLAIN): string {
  const st = s.status;
  const port = servicePort(s);
  const fields: Array<[string, string]> = [
    ['Name', s.name],
    ['Replicas', `${s.replicas} desired | ${st.currentReplicas} current | ${st.readyReplicas} ready | ${st.updatedReplicas} up-to-date`],
    ['Port', port === undefined ? '<none>' : `${port}${s.port === undefined ? " (the template's first)" : ''}`],
    ['Template hash', s.templateHash],
    ['Created', when(s.createdAt, now)],
    ['Updated', when(s.updatedAt, now)],
  ];
  const endpoints = st.endpoints.map((e) => {
    const ejected = e.ejectedUntil !== undefined && Date.parse(e.ejectedUntil) > now;
    return [
      e.podName,
      e.nodeId === null ? '<none>' : (nodeNames.get(e.nodeId) ?? e.nodeId),
      e.address ?? '<none>',
      e.ready ? c.green('true') : c.yellow('false'),
      String(e.inFlight),
      ejected ? c.red(`for ${formatMs(Date.parse(e.ejectedUntil!) - now)}`) : '<none>',
    ];
  });
  const table = endpoints.length === 0 ? '<none>' : renderTable(['POD', 'NODE', 'ADDRESS', 'READY', 'IN-FLIGHT', 'EJECTED'], endpoints);
  return `${renderFields(fields)}\nTemplate:\n${renderFields(specFields(serviceSpec(s.template)), '  ')}\nEndpoints (${st.endpoints.length}):\n${indent(table)}`;
}

/** How many characters of a body describe shows. */
export const BODY_PREVIEW_CHARS = 1024;

/** The start of a stored body: text as is (cut, saying how much there is), binary as its size. */
export function bodyPreview(body: string | undefined, encoding: 'utf8' | 'base64' | undefined, max = BODY_PREVIEW_CHARS): string {
  if (body === undefined || body === '') return '<none>';
  if (encoding === 'base64') return `<${Buffer.from(body, 'base64').length} bytes of binary data>`;
  if (body.length <= max) return body;
  return `${body.slice(0, max)}\n… (${Buffer.byteLength(body)} bytes in all; -o json shows it whole)`;
}

/** `berth describe job`: the request, where it is and why, each attempt, and the answer. */
export function describeJob(j: JobView, podNames: ReadonlyMap<string, string>, nodeNames: ReadonlyMap<string, string>, now: number, c: Palette = PLAIN): string {
  const headers = Object.entries(j.request.headers);
  const fields: Array<[string, string]> = [
    ['ID', j.id],
    ['Service', j.service],
    ['Request', `${j.request.method} ${j.request.path}`],
    ['Headers', headers.length === 0 ? '<none>' : headers.map(([k, v]) => `${k}: ${v}`).join('\n')],
    ['Body', bodyPreview(j.request.body, j.request.bodyEncoding, 200)],
    ...(j.idempotencyKey === undefined ? [] : [['Idempotency key', j.idempotencyKey] as [string, string]]),
    ['Limits', `timeout ${formatMs(j.timeoutMs)}, ${formatMs(j.attemptTimeoutMs)} per attempt, at most ${j.maxAttempts} attempt(s)`],
    ['Status', jobStatus(j.status, c)],
    ['Reason', j.reason || '<none>'],
    ['Message', j.message || '<none>'],
    ['Created', when(j.createdAt, now)],
    ['Finished', when(j.finishedAt, now)],
    ...(j.finishedAt === undefined ? [] : [['Took', formatMs(Date.parse(j.finishedAt) - Date.parse(j.createdAt))] as [string, string]]),
  ];
  const attempts = j.attempts.map((a) => [
    String(a.attempt),
    a.podId === null ? '<none>' : (podNames.get(a.podId) ?? a.podId),
    a.nodeId === null ? '<none>' : (nodeNames.get(a.nodeId) ?? a.nodeId),
    a.replica,
    formatAge(a.startedAt, now),
    a.finishedAt === null ? '<running>' : formatMs(Date.parse(a.finishedAt) - Date.parse(a.startedAt)),
    a.outcome === 'Succeeded' ? c.green(a.outcome) : a.outcome === 'Running' ? c.yellow(a.outcome) : c.red(a.outcome),
    a.statusCode === undefined ? '<none>' : String(a.statusCode),
    a.error ?? '',
  ]);
  const table = attempts.length === 0 ? '<none>' : renderTable(['#', 'POD', 'NODE', 'REPLICA', 'STARTED', 'TOOK', 'OUTCOME', 'CODE', 'ERROR'], attempts);
  let out = `${renderFields(fields)}\nAttempts (${j.attempts.length}):\n${indent(table)}`;
  if (j.result !== undefined) {
    const type = j.result.headers['content-type'];
    const result: Array<[string, string]> = [
      ['Status code', String(j.result.statusCode)],
      ...(type === undefined ? [] : [['Content type', type] as [string, string]]),
      ['Body', bodyPreview(j.result.body, j.result.bodyEncoding)],
    ];
    out += `\nResult:\n${renderFields(result, '  ')}`;
  }
  return out;
}

import { MAX_JOB_RESULT_BYTES, type AttemptOutcome, type JobRecord, type StoredBody } from '@berth/core';
import type { Router } from '../routing/router.js';
import type { ServiceEndpoint } from '../services/discovery.js';

/** How one attempt of a job on a pod ended. */
export interface AttemptResult {
  outcome: Exclude<AttemptOutcome, 'Running' | 'Lost' | 'Canceled'>;
  statusCode?: number;
  error?: string;
  result?: JobRecord['result'];
}

/**
 * Sends attempt `n` of `job` to one pod through the router (which counts it
 * as outstanding and ejects a pod that fails) and classifies the answer:
 * 2xx/3xx Succeeded, 4xx Failed, 5xx, a connection error or a timeout Error
 * or TimedOut (retried elsewhere), a body over MAX_JOB_RESULT_BYTES Failed.
 * Undefined when `signal` aborted it (the job is no longer this replica's).
 */
export async function callPod(router: Router, endpoint: ServiceEndpoint, job: JobRecord, n: number, timeoutMs: number, signal: AbortSignal): Promise<AttemptResult | undefined> {
  const req = job.request;
  const body = req.body === undefined ? undefined : Buffer.from(req.body, req.bodyEncoding ?? 'utf8');
  let ans;
  try {
    ans = await router.attempt(endpoint, {
      method: req.method,
      path: req.path,
      headers: { ...req.headers, 'x-berth-job-id': job.id, 'x-berth-attempt': String(n) },
      ...(body === undefined ? {} : { body }),
      timeoutMs,
      signal,
    });
  } catch (err) {
    if (signal.aborted) return undefined;
    return { outcome: 'TimedOut', error: `pod ${endpoint.podName} did not answer within ${timeoutMs} ms (${(err as Error).message})` };
  }
  if ('failure' in ans) return { outcome: ans.failure.kind === 'timeout' ? 'TimedOut' : 'Error', error: ans.failure.message };
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of ans.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_JOB_RESULT_BYTES) {
        ans.body.destroy();
        return { outcome: 'Failed', statusCode: ans.statusCode, error: `the result body is larger than ${MAX_JOB_RESULT_BYTES} bytes; a job keeps at most that` };
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (signal.aborted) return undefined;
    return { outcome: 'Error', statusCode: ans.statusCode, error: `pod ${endpoint.podName} broke off its answer: ${(err as Error).message}` };
  } finally {
    ans.done();
  }
  const result = { statusCode: ans.statusCode, headers: flatHeaders(ans.headers), ...storedBody(Buffer.concat(chunks)) };
  if (ans.statusCode >= 500) return { outcome: 'Error', statusCode: ans.statusCode, result, error: `HTTP ${ans.statusCode} from pod ${endpoint.podName}` };
  if (ans.statusCode >= 400) return { outcome: 'Failed', statusCode: ans.statusCode, result };
  return { outcome: 'Succeeded', statusCode: ans.statusCode, result };
}

/** Response headers as a job keeps them: one string each. */
function flatHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** A body as stored: text when it is valid UTF-8, else base64. */
function storedBody(buf: Buffer): StoredBody {
  const text = buf.toString('utf8');
  return Buffer.byteLength(text) === buf.length && !text.includes('\uFFFD') ? { body: text, bodyEncoding: 'utf8' } : { body: buf.toString('base64'), bodyEncoding: 'base64' };
}

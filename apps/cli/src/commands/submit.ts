import fs from 'node:fs';
import { Option } from '@commander-js/extra-typings';
import { JOB_METHODS, TERMINAL_JOB_STATUSES, type CreateJobRequest } from '@berth/core';
import type { JobView } from '../client.js';
import { parseInteger } from '../units.js';
import type { CommandContext, Program } from './context.js';
import { arg, collect, usage } from './options.js';

/** How long one long poll of `--wait` asks the server to hold (it holds at most 60 s); the loop repeats until the job ends. */
const WAIT_SECONDS = 30;

/** `K:V` or `K: V` (curl's -H) -> [K, V]. */
export function parseHeader(input: string): [string, string] {
  const i = input.indexOf(':');
  if (i <= 0) throw new Error(`invalid header ${JSON.stringify(input)}: expected NAME:VALUE`);
  return [input.slice(0, i).trim(), input.slice(i + 1).trim()];
}

/** `--data`: `@file` is the file's content, `@-` stdin's, anything else the text itself (curl's convention). */
export function readData(data: string, read: (file: string | 0) => string = (f) => fs.readFileSync(f, 'utf8')): string {
  if (!data.startsWith('@')) return data;
  const file = data.slice(1);
  try {
    return read(file === '-' ? 0 : file);
  } catch (err) {
    throw new Error(`--data ${data}: cannot read ${file === '-' ? 'stdin' : file}: ${(err as Error).message}`);
  }
}

/**
 * `berth submit SERVICE`: a job (POST /v1/jobs). Prints its id; with --wait,
 * long-polls it to the end, prints the pod's answer and exits 1 unless it
 * Succeeded.
 */
export function registerSubmit(program: Program, ctx: CommandContext): void {
  program
    .command('submit')
    .summary('Submit a job to a service: prints its id, or with --wait the answer')
    .description(
      "Submit a request to a service as a job (POST /v1/jobs): durable in etcd before it is acknowledged, routed to a ready pod, retried on another " +
        'after a 5xx, a connection error or an attempt timeout. Prints the job id. With --wait, waits for the job to finish (long polls of ' +
        "GET /v1/jobs/ID?wait=), prints the pod's answer body on stdout, and exits 1 unless the job Succeeded",
    )
    .argument('<service>', 'the service whose pods run it')
    .option('--path <path>', 'path and query on the pod (default /)', arg((s) => {
      if (!s.startsWith('/')) throw new Error(`--path ${JSON.stringify(s)} must start with /`);
      return s;
    }))
    .addOption(new Option('-X, --method <method>', 'HTTP method (default POST)').choices(JOB_METHODS))
    .option('-H, --header <name:value>', 'request header, repeatable', collect)
    .option('-d, --data <data>', 'request body: text, @file, or @- for stdin')
    .option('--timeout <ms>', 'the job is TimedOut this long after it was accepted (default 60000)', arg((s) => parseInteger(s, '--timeout', 1, 86_400_000)))
    .option('--attempt-timeout <ms>', 'one attempt waits this long before another pod is tried (default min(10000, --timeout))', arg((s) => parseInteger(s, '--attempt-timeout', 1, 86_400_000)))
    .option('--max-attempts <n>', 'tries on different pods before the job Fails (default 3)', arg((s) => parseInteger(s, '--max-attempts', 1, 20)))
    .option('--idempotency-key <key>', 'a resubmission with the same key answers the existing job instead of running it again')
    .option('--wait', "wait for the job to finish: print the pod's answer, exit 1 unless it Succeeded")
    .addOption(new Option('-o, --output <format>', 'print the job as json or yaml instead of its id (with --wait: the finished job, not the answer)').choices(['json', 'yaml'] as const))
    .action(async (service, opts) => {
      const headerFlags = opts.header;
      const headers = headerFlags === undefined ? undefined : Object.fromEntries(headerFlags.map((h) => usage(() => parseHeader(h))));
      const data = opts.data;
      const body: CreateJobRequest = {
        service,
        ...(opts.method === undefined ? {} : { method: opts.method }),
        ...(opts.path === undefined ? {} : { path: opts.path }),
        ...(headers === undefined ? {} : { headers }),
        ...(data === undefined ? {} : { body: usage(() => readData(data)) }),
        ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout }),
        ...(opts.attemptTimeout === undefined ? {} : { attemptTimeoutMs: opts.attemptTimeout }),
        ...(opts.maxAttempts === undefined ? {} : { maxAttempts: opts.maxAttempts }),
        ...(opts.idempotencyKey === undefined ? {} : { idempotencyKey: opts.idempotencyKey }),
      };
      const api = ctx.client();
      const asData = opts.output;
      const submitted = await api.submitJob(body);
      let job = submitted.job;
      if (!submitted.created) ctx.err(`job ${job.id} already exists for idempotency key ${JSON.stringify(opts.idempotencyKey)} (${job.status}): not submitted again`);
      if (!opts.wait) return asData ? ctx.printData(job, asData) : ctx.out(job.id);
      while (!TERMINAL_JOB_STATUSES.has(job.status)) job = await api.job(job.id, WAIT_SECONDS);
      if (asData) ctx.printData(job, asData);
      else if (job.result !== undefined) writeBody(ctx, job.result);
      if (job.status !== 'Succeeded') throw new JobFailed(job);
    });
}

/** The answer's body as the pod sent it (binary bodies are stored base64). */
function writeBody(ctx: CommandContext, result: NonNullable<JobView['result']>): void {
  const bytes = Buffer.from(result.body, result.bodyEncoding === 'base64' ? 'base64' : 'utf8');
  ctx.io.stdout.write(bytes);
  // A prompt must not be glued to an answer without a final newline; a pipe gets the bytes as they are.
  if (ctx.io.stdout.isTTY === true && bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a) ctx.io.stdout.write('\n');
}

/** `--wait` on a job that did not succeed: exit 1 with where it ended and why. */
export class JobFailed extends Error {
  override readonly name = 'JobFailed';
  constructor(readonly job: JobView) {
    const last = job.attempts[job.attempts.length - 1];
    const code = job.result?.statusCode ?? last?.statusCode;
    super(
      `job ${job.id} ${job.status}${job.reason ? ` (${job.reason})` : ''}${job.message ? `: ${job.message}` : ''}` +
        `${code === undefined ? '' : `; the pod answered ${code}`} after ${job.attempts.length} attempt${job.attempts.length === 1 ? '' : 's'}`,
    );
  }
}

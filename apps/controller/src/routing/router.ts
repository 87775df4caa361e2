import type { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { BerthError } from '@berth/core';
import type { Discovery, ServiceEndpoint } from '../services/discovery.js';
import { Balancer } from './balancer.js';

/** Request headers that describe one hop, not the request: never forwarded (RFC 9110 7.6.1, plus what undici sets itself). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'expect']);
/** Methods safe to send twice: a failed one is retried on another pod. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Answers that say the pod (not the request) failed: the request is retried elsewhere and the pod ejected. */
const RETRY_STATUS = new Set([502, 503, 504]);

export type Headers = Record<string, string | string[] | undefined>;

/** What to send to a pod. */
export interface OutboundRequest {
  method: string;
  /** Path and query, as the pod sees them. */
  path: string;
  headers: Headers;
  /** A buffer can be sent again; a stream cannot (the request is then not retried). */
  body?: Buffer | Readable;
  /** How long to wait for the answer's headers, and between chunks of its body. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** One pod's answer; `done` must be called once its body is consumed (it counts as outstanding until then). */
export interface PodAnswer {
  endpoint: ServiceEndpoint;
  statusCode: number;
  headers: Headers;
  body: Readable & { dump(opts?: { limit: number }): Promise<void>; arrayBuffer(): Promise<ArrayBuffer> };
  done: () => void;
}

/** How an attempt on one pod ended, as a job records it. */
export type AttemptFailure = { kind: 'timeout' | 'connection'; message: string };

/**
 * Sends requests to a service's pods: picks one with the balancer, keeps
 * connections alive in an undici pool per pod address, counts outstanding
 * requests, and feeds failures back to the balancer's outlier detection.
 * `forward` (the proxy) retries a failed idempotent request once on another
 * pod; jobs call `pick` and `attempt` themselves, as each attempt is recorded.
 */
export class Router {
  readonly balancer = new Balancer();
  private readonly agent: Agent;

  constructor(
    private readonly discovery: Discovery,
    /** This replica's id, sent as `x-berth-replica`. */
    private readonly replica: string,
  ) {
    this.agent = new Agent({ keepAliveTimeout: 10_000, connections: 128, pipelining: 1, connect: { timeout: 2000 } });
  }

  /** A ready endpoint of `service` not in `exclude`, or a NO_ENDPOINTS error naming why. */
  pick(service: string, exclude?: ReadonlySet<string>): ServiceEndpoint | BerthError {
    const { all, ready } = this.discovery.of(service);
    const pick = this.balancer.pick(service, all, ready, exclude);
    if ('endpoint' in pick) return pick.endpoint;
    return new BerthError('NO_ENDPOINTS', pick.detail, { reason: pick.reason, ...(pick.retryAt === undefined ? {} : { retryAt: pick.retryAt }) });
  }

  /**
   * Proxies a request: to a pod picked by the balancer, once more to another
   * pod when the first fails (refused, reset, timed out, or 502/503/504) and
   * the method is idempotent or `retry` says so. The last pod's answer is
   * returned as is; when no pod answered at all, UPSTREAM_UNREACHABLE.
   */
  async forward(service: string, req: OutboundRequest, retry = IDEMPOTENT.has(req.method)): Promise<PodAnswer> {
    const canRetry = retry && !(req.body !== undefined && !Buffer.isBuffer(req.body));
    const tried = new Set<string>();
    let lastFailure: AttemptFailure | undefined;
    for (let attempt = 1; attempt <= (canRetry ? 2 : 1); attempt++) {
      const endpoint = this.pick(service, tried);
      if (endpoint instanceof BerthError) {
        if (tried.size === 0) throw endpoint;
        break;
      }
      tried.add(endpoint.podId);
      const result = await this.attempt(endpoint, req);
      if ('failure' in result) {
        lastFailure = result.failure;
        continue;
      }
      const last = attempt === (canRetry ? 2 : 1);
      if (RETRY_STATUS.has(result.statusCode) && !last && this.hasAnother(service, tried)) {
        await result.body.dump().catch(() => undefined);
        result.done();
        continue;
      }
      return result;
    }
    throw new BerthError('UPSTREAM_UNREACHABLE', `no pod of service ${service} answered: ${lastFailure?.message ?? 'every pod tried failed'}`, { tried: [...tried] });
  }

  /** One request to one pod; a failure to get an answer is returned, not thrown. 502/503/504 answers eject the pod too. */
  async attempt(endpoint: ServiceEndpoint, req: OutboundRequest): Promise<PodAnswer | { failure: AttemptFailure }> {
    const end = this.balancer.begin(endpoint.podId);
    let res: Dispatcher.ResponseData;
    try {
      res = await this.agent.request({
        origin: `http://${endpoint.address!}`,
        path: req.path,
        method: req.method as Dispatcher.HttpMethod,
        headers: { ...forwardable(req.headers), 'x-berth-replica': this.replica, 'x-berth-pod': endpoint.podId },
        body: req.body ?? null,
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
        ...(req.signal === undefined ? {} : { signal: req.signal }),
      });
    } catch (err) {
      end();
      if (req.signal?.aborted) throw err;
      this.balancer.failed(endpoint.podId);
      return { failure: describe(err, endpoint, req.timeoutMs) };
    }
    if (RETRY_STATUS.has(res.statusCode)) this.balancer.failed(endpoint.podId);
    else this.balancer.succeeded(endpoint.podId);
    const body = res.body as PodAnswer['body'];
    body.once('close', end);
    body.once('error', end);
    return { endpoint, statusCode: res.statusCode, headers: res.headers as Headers, body, done: end };
  }

  /** Closes every pooled connection. */
  async close(): Promise<void> {
    await this.agent.close();
  }

  private hasAnother(service: string, tried: ReadonlySet<string>): boolean {
    return !(this.pick(service, tried) instanceof BerthError);
  }
}

/** Response headers that must not be copied onto the client's answer. */
export function answerHeaders(headers: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || (HOP_BY_HOP.has(k.toLowerCase()) && k.toLowerCase() !== 'content-length')) continue;
    out[k] = v;
  }
  return out;
}

function forwardable(headers: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k.toLowerCase())) out[k] = v;
  return out;
}

function describe(err: unknown, endpoint: ServiceEndpoint, timeoutMs: number): AttemptFailure {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return { kind: 'timeout', message: `pod ${endpoint.podName} at ${endpoint.address} did not answer within ${timeoutMs} ms` };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { kind: 'connection', message: `pod ${endpoint.podName} at ${endpoint.address}: ${code ? `${code} ` : ''}${message}` };
}

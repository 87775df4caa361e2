import type {
  AuditRecord,
  BerthEvent,
  ClusterView,
  CreateJobRequest,
  CreatePodRequest,
  CreateServiceRequest,
  CreatedToken,
  CreateTokenRequest,
  EventList,
  HealthView,
  JobList,
  JobStatus,
  JobView,
  LeaderView,
  NodeAction,
  NodeList,
  NodeStatus,
  NodeView,
  PatchServiceRequest,
  PodAction,
  PodList,
  PodView,
  ProvisionNodeRequest,
  ServiceList,
  ServiceView,
  SessionView,
  TokenView,
} from '@berth/core';

export type { AuditRecord, BerthEvent, ClusterView, CreatedToken, JobView, LeaderView, NodeView, PodView, ServiceView, SessionView, TokenView };

/** The longest `GET /v1/jobs/:id?wait=` the server holds a request (its MAX_WAIT_SECONDS). */
export const MAX_JOB_WAIT_SECONDS = 60;

/** What the client knew about a refused request, beyond the API's body. */
export interface ApiErrorContext {
  /** Seconds from a `Retry-After` header (429, 503). */
  retryAfterSeconds?: number;
  /** Where the token sent came from; undefined when none was sent. */
  tokenSource?: string;
}

/** The API answered with an error body `{error, message, details?}` (exit 1). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly context: ApiErrorContext = {},
  ) {
    super(message);
  }
}

/** `Retry-After` in seconds: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterSeconds(header: string | null, nowMs = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const h = header.trim();
  if (/^\d+$/.test(h)) return Number(h);
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - nowMs) / 1000));
}

/** The server could not be reached at all (exit 2). */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    readonly server: string,
    message: string,
  ) {
    super(message);
  }
}

/** Explains a fetch failure: the underlying cause (ECONNREFUSED, ENOTFOUND, timeout) when there is one. */
function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string } };
  if (e.name === 'TimeoutError') return 'the request timed out';
  const cause = e.cause;
  if (cause && typeof cause === 'object') {
    if ('errors' in cause && Array.isArray((cause as { errors: unknown[] }).errors)) {
      return (cause as { errors: Error[] }).errors.map((x) => x.message).join('; ');
    }
    return cause.message || cause.code || e.message;
  }
  return e.message;
}

/** How long a request may take: the client's default, none (`null`: it waits on the cluster), and an abort signal. */
interface RequestOptions {
  timeoutMs?: number | null;
  signal?: AbortSignal;
  accept?: string;
}

/** `/v1/things?a=1&b=2`, leaving out parameters that are undefined. */
function withQuery(path: string, query: Record<string, string | number | undefined>): string {
  const qs = new URLSearchParams(Object.entries(query).flatMap(([k, v]): Array<[string, string]> => (v === undefined ? [] : [[k, String(v)]]))).toString();
  return qs === '' ? path : `${path}?${qs}`;
}

const seg = encodeURIComponent;

/**
 * A typed client of the public REST API (any replica answers): one method per
 * endpoint, typed with the API's schemas from `@berth/core`. Requests that
 * wait on the cluster (provisioning, drains, deletes, log streams) have no
 * timeout; the rest use the client's.
 */
export class BerthClient {
  constructor(
    readonly server: string,
    private readonly token?: string,
    private readonly timeoutMs = 30_000,
    /** Where `token` came from, named when the server refuses it. */
    private readonly tokenSource = 'the token given',
  ) {}

  // ---- system ----

  /** `GET /healthz`: answers while the process runs, even without etcd. */
  healthz(): Promise<HealthView> {
    return this.json('GET', '/healthz');
  }

  /** `GET /v1/leader`: the leader as recorded in etcd. */
  leader(): Promise<LeaderView> {
    return this.json('GET', '/v1/leader');
  }

  /** `GET /v1/cluster`: leader, replicas and this replica's view. */
  cluster(): Promise<ClusterView> {
    return this.json('GET', '/v1/cluster');
  }

  // ---- nodes ----

  async nodes(query: { status?: NodeStatus } = {}): Promise<NodeView[]> {
    return (await this.json<NodeList>('GET', withQuery('/v1/nodes', query))).items;
  }

  node(name: string): Promise<NodeView> {
    return this.json('GET', `/v1/nodes/${seg(name)}`);
  }

  /** `POST /v1/nodes`: answers once the new node's agent registered. */
  provisionNode(body: ProvisionNodeRequest): Promise<NodeView> {
    return this.json('POST', '/v1/nodes', body, { timeoutMs: null });
  }

  /** `POST /v1/nodes/:id/cordon|uncordon|drain`. */
  nodeAction(name: string, action: NodeAction): Promise<NodeView> {
    return this.json('POST', `/v1/nodes/${seg(name)}/${action}`, undefined, { timeoutMs: null });
  }

  /** `DELETE /v1/nodes/:id`: drained first, then removed. */
  deleteNode(name: string): Promise<NodeView> {
    return this.json('DELETE', `/v1/nodes/${seg(name)}`, undefined, { timeoutMs: null });
  }

  // ---- pods ----

  async pods(query: { node?: string | undefined; phase?: string | undefined; service?: string | undefined } = {}): Promise<PodView[]> {
    return (await this.json<PodList>('GET', withQuery('/v1/pods', query))).items;
  }

  pod(name: string): Promise<PodView> {
    return this.json('GET', `/v1/pods/${seg(name)}`);
  }

  createPod(body: CreatePodRequest): Promise<PodView> {
    return this.json('POST', '/v1/pods', body);
  }

  /** `POST /v1/pods/:id/stop|start|pause|resume|restart`. */
  podAction(name: string, action: PodAction): Promise<PodView> {
    return this.json('POST', `/v1/pods/${seg(name)}/${action}`);
  }

  /** `DELETE /v1/pods/:id`: its agent stops it first. No timeout unless one is given. */
  deletePod(name: string, timeoutMs: number | null = null): Promise<PodView> {
    return this.json('DELETE', `/v1/pods/${seg(name)}`, undefined, { timeoutMs });
  }

  /** `GET /v1/pods/:id/logs`: the raw output stream (null body when there is none). */
  async logs(name: string, opts: { tail?: number | undefined; follow?: boolean | undefined } = {}): Promise<ReadableStream<Uint8Array> | null> {
    const path = withQuery(`/v1/pods/${seg(name)}/logs`, { tail: opts.tail, follow: opts.follow ? '1' : undefined });
    return (await this.send('GET', path, undefined, { timeoutMs: opts.follow ? null : 30_000 })).body;
  }

  // ---- services ----

  async services(): Promise<ServiceView[]> {
    return (await this.json<ServiceList>('GET', '/v1/services')).items;
  }

  service(name: string): Promise<ServiceView> {
    return this.json('GET', `/v1/services/${seg(name)}`);
  }

  createService(body: CreateServiceRequest): Promise<ServiceView> {
    return this.json('POST', '/v1/services', body);
  }

  /** `PATCH /v1/services/:name`: replicas, template (a rolling replacement) or port. */
  patchService(name: string, body: PatchServiceRequest): Promise<ServiceView> {
    return this.json('PATCH', `/v1/services/${seg(name)}`, body);
  }

  /** `DELETE /v1/services/:name`: its pods are removed too. */
  deleteService(name: string): Promise<ServiceView> {
    return this.json('DELETE', `/v1/services/${seg(name)}`);
  }

  // ---- jobs ----

  /** Jobs, newest first. */
  async jobs(query: { service?: string | undefined; status?: JobStatus | undefined; limit?: number | undefined } = {}): Promise<JobView[]> {
    return (await this.json<JobList>('GET', withQuery('/v1/jobs', query))).items;
  }

  /** `GET /v1/jobs/:id`; with `waitSeconds`, answered when the job finishes or after that long (at most MAX_JOB_WAIT_SECONDS). */
  job(id: string, waitSeconds?: number, signal?: AbortSignal): Promise<JobView> {
    const wait = waitSeconds === undefined || waitSeconds <= 0 ? undefined : Math.min(waitSeconds, MAX_JOB_WAIT_SECONDS);
    // The server holds a long poll for up to `wait` seconds: the request may take that long, and some more.
    return this.json('GET', withQuery(`/v1/jobs/${seg(id)}`, { wait }), undefined, { timeoutMs: wait === undefined ? undefined : wait * 1000 + this.timeoutMs, ...(signal ? { signal } : {}) });
  }

  /** `POST /v1/jobs`: answered once the job is durable. `created` is false when the idempotency key already named a job (200, not 202). */
  async submitJob(body: CreateJobRequest): Promise<{ job: JobView; created: boolean }> {
    const res = await this.send('POST', '/v1/jobs', body);
    return { job: (await this.parse<JobView>(res, 'POST', '/v1/jobs')), created: res.status === 202 };
  }

  /** `DELETE /v1/jobs/:id`: cancels a job that has not finished. */
  cancelJob(id: string): Promise<JobView> {
    return this.json('DELETE', `/v1/jobs/${seg(id)}`);
  }

  // ---- events ----

  /** The most recent audit events, newest last. */
  async events(limit?: number): Promise<BerthEvent[]> {
    return (await this.json<EventList>('GET', withQuery('/v1/events', { limit }))).items;
  }

  /**
   * `GET /v1/events?watch=1`: the Server-Sent Events stream (messages typed
   * by `WatchMessages` in `@berth/core`). Open until `signal` aborts it.
   */
  async watch(signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const res = await this.send('GET', '/v1/events?watch=1', undefined, { timeoutMs: null, signal, accept: 'text/event-stream' });
    if (res.body === null) throw new ConnectionError(this.server, 'empty response');
    return res.body;
  }

  // ---- auth ----

  /** `GET /v1/session`: who this client is to the server (token name and role, auth on or off). */
  session(): Promise<SessionView> {
    return this.json('GET', '/v1/session');
  }

  /** `GET /v1/tokens` (admin): names and roles, never secrets. */
  async tokens(): Promise<TokenView[]> {
    return (await this.json<{ items: TokenView[] }>('GET', '/v1/tokens')).items;
  }

  /** `POST /v1/tokens` (admin): the answer holds the secret, shown only this once. */
  createToken(body: CreateTokenRequest): Promise<CreatedToken> {
    return this.json('POST', '/v1/tokens', body);
  }

  /** `DELETE /v1/tokens/:name` (admin): every replica refuses the token once its cache sees the delete. */
  deleteToken(name: string): Promise<TokenView> {
    return this.json('DELETE', `/v1/tokens/${seg(name)}`);
  }

  /** `GET /v1/audit` (admin): API mutations, refused ones included, oldest first. */
  async audit(query: { since?: string | undefined; actor?: string | undefined; limit?: number | undefined } = {}): Promise<AuditRecord[]> {
    return (await this.json<{ items: AuditRecord[] }>('GET', withQuery('/v1/audit', query))).items;
  }

  // ---- transport ----

  /** Sends a request; returns the response when it is 2xx, throws ApiError or ConnectionError otherwise. */
  private async send(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: opts.accept ?? 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const timeout = opts.timeoutMs === undefined ? this.timeoutMs : opts.timeoutMs;
    const signals = [opts.signal, timeout === null ? undefined : AbortSignal.timeout(timeout)].filter((s): s is AbortSignal => s !== undefined);
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(signals.length === 0 ? {} : { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) }),
      });
    } catch (err) {
      throw new ConnectionError(this.server, `unable to connect to the server at ${this.server}: ${describeFetchError(err)}`);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let parsed: { error?: unknown; message?: unknown; details?: unknown } = {};
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        /* not JSON: a proxy or something that is not Berth */
      }
      const code = typeof parsed.error === 'string' ? parsed.error : `HTTP_${res.status}`;
      const message = typeof parsed.message === 'string' ? parsed.message : text.trim() || res.statusText || `the server answered ${res.status}`;
      const retry = retryAfterSeconds(res.headers.get('retry-after'));
      throw new ApiError(res.status, code, message, parsed.details, {
        ...(retry === undefined ? {} : { retryAfterSeconds: retry }),
        ...(this.token === undefined ? {} : { tokenSource: this.tokenSource }),
      });
    }
    return res;
  }

  /** A JSON request; the answer is trusted to match the endpoint's schema (the server serialises through it). */
  private async json<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return this.parse<T>(await this.send(method, path, body, opts), method, path);
  }

  private async parse<T>(res: Response, method: string, path: string): Promise<T> {
    const text = await res.text();
    try {
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } catch {
      throw new ApiError(res.status, 'BAD_RESPONSE', `the server at ${this.server} did not answer JSON for ${method} ${path}`);
    }
  }
}

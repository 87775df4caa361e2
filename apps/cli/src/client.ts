import type { BerthEvent, ClusterView, LeaderView, NodeRecord, NodeUsage, PodRecord, Resources } from '@berth/core';

/** A node as `GET /v1/nodes` shows it. */
export type NodeView = Omit<NodeRecord, 'provisioner'> & {
  allocated: Resources;
  usage: NodeUsage | null;
  lastHeartbeat: string | null;
  pods: string[];
  reservedPods: string[];
  provisioner?: NodeRecord['provisioner'];
};
export type PodView = PodRecord;
export type { BerthEvent, ClusterView, LeaderView };

/** The API answered with an error body `{error, message, details?}` (exit 1). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
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

/** A thin client of the public REST API (any replica answers). */
export class BerthClient {
  constructor(
    readonly server: string,
    private readonly token?: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /** Sends a request; returns the raw response when it is 2xx, throws ApiError or ConnectionError otherwise. */
  async raw(method: string, path: string, body?: unknown, opts: { timeoutMs?: number | null; signal?: AbortSignal; accept?: string } = {}): Promise<Response> {
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
      throw new ApiError(res.status, code, message, parsed.details);
    }
    return res;
  }

  /** JSON request. */
  async request<T>(method: string, path: string, body?: unknown, opts: { timeoutMs?: number | null } = {}): Promise<T> {
    const res = await this.raw(method, path, body, opts);
    const text = await res.text();
    try {
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } catch {
      throw new ApiError(res.status, 'BAD_RESPONSE', `the server at ${this.server} did not answer JSON for ${method} ${path}`);
    }
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  async nodes(): Promise<NodeView[]> {
    return (await this.get<{ items: NodeView[] }>('/v1/nodes')).items;
  }

  node(name: string): Promise<NodeView> {
    return this.get<NodeView>(`/v1/nodes/${encodeURIComponent(name)}`);
  }

  async pods(query: Record<string, string | undefined> = {}): Promise<PodView[]> {
    const qs = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined)).toString();
    return (await this.get<{ items: PodView[] }>(`/v1/pods${qs === '' ? '' : `?${qs}`}`)).items;
  }

  /** The most recent audit events, newest last. */
  async events(limit?: number): Promise<BerthEvent[]> {
    return (await this.get<{ items: BerthEvent[] }>(`/v1/events${limit === undefined ? '' : `?limit=${limit}`}`)).items;
  }

  pod(name: string): Promise<PodView> {
    return this.get<PodView>(`/v1/pods/${encodeURIComponent(name)}`);
  }
}

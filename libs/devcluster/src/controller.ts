import fs from 'node:fs';
import path from 'node:path';
import type { ClusterView, LeaderView } from '@berth/core';
import { freePort } from './ports.js';
import { ManagedProcess, nodeCommand, repoRoot } from './process.js';
import { waitFor } from './wait.js';

/** Options of a controller replica process. */
export interface ControllerProcessOptions {
  id: string;
  etcd: string;
  logDir: string;
  port?: number;
  /** Election lease TTL in seconds; the controller's default when omitted. */
  leaseTtl?: number;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Address the API listens on and is reached at (default 127.0.0.1). */
  host?: string;
  /** A command the replica runs under, e.g. ['ip', 'netns', 'exec', 'ns1'] (it must exec node, keeping the pid). */
  wrap?: string[];
  /** Where this process reaches the API when that is not `host` (e.g. the replica picks its own listen address, in a network namespace). */
  reachAt?: string;
  /** `--admin-token-file`: auth on; the helpers below send the file's token (created by the replica when missing). */
  adminTokenFile?: string;
}

/** A real `berth-controller` process, with helpers to query its API. */
export class ControllerProcess {
  readonly process: ManagedProcess;
  /** Address this process reaches the API at (where it listens, unless `reachAt` says otherwise). */
  readonly host: string;
  /** The token `request` sends (the admin token when `adminTokenFile` was given); undefined: none. */
  token: string | undefined;
  private readonly adminTokenFile: string | undefined;

  private constructor(
    readonly id: string,
    readonly port: number,
    opts: ControllerProcessOptions,
  ) {
    this.host = opts.reachAt ?? opts.host ?? '127.0.0.1';
    this.adminTokenFile = opts.adminTokenFile;
    const [command, pre] = nodeCommand(opts.wrap);
    this.process = new ManagedProcess(
      id,
      command,
      [
        ...pre,
        path.join(repoRoot, 'apps/controller/dist/main.js'),
        '--etcd', opts.etcd,
        '--port', String(port),
        '--id', id,
        ...(opts.leaseTtl === undefined ? [] : ['--lease-ttl', String(opts.leaseTtl)]),
        '--data-dir', path.join(opts.logDir, `${id}-data`),
        ...(opts.host === undefined ? [] : ['--host', opts.host]),
        ...(opts.adminTokenFile === undefined ? [] : ['--admin-token-file', opts.adminTokenFile]),
        ...(opts.extraArgs ?? []),
      ],
      { logFile: path.join(opts.logDir, `${id}.log`), env: { BERTH_LOG_LEVEL: 'info', ...opts.env } },
    );
  }

  /** Starts a replica and waits until its API answers; one that does not in time is killed, not left running unowned. */
  static async start(opts: ControllerProcessOptions): Promise<ControllerProcess> {
    const c = new ControllerProcess(opts.id, opts.port ?? (await freePort()), opts);
    try {
      await c.start();
    } catch (err) {
      // Nobody else holds this replica: one that never answered must not outlive the failure.
      await c.process.stop('SIGKILL');
      throw err;
    }
    return c;
  }

  /** Base URL of the replica's API. */
  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** (Re)starts the process and waits for `/healthz`. */
  async start(): Promise<void> {
    this.process.start();
    await waitFor(
      async () => {
        if (!this.process.running) throw new Error(`${this.id} exited: ${this.process.recentOutput(20)}`);
        return (await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1000) })).ok;
      },
      // Generous: a replica starting on a loaded 2-core machine (a test run) may take more than 15 s.
      { what: `${this.id} to answer /healthz`, timeoutMs: 30_000 },
    );
    if (this.adminTokenFile !== undefined) this.token ??= fs.readFileSync(this.adminTokenFile, 'utf8').trim();
  }

  /** GET a JSON path; throws on a non-2xx status. */
  async getJson<T>(p: string, timeoutMs = 1000): Promise<T> {
    const res = await this.request('GET', p, undefined, timeoutMs);
    if (res.status < 200 || res.status > 299) throw new Error(`${this.id} GET ${p}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as T;
  }

  /** Any API call; the body is parsed as JSON when the answer is JSON, else returned as text. */
  async request(method: string, p: string, body?: unknown, timeoutMs = 60_000): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.url}${p}`, {
      method,
      signal: AbortSignal.timeout(timeoutMs),
      headers: {
        ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (res.headers.get('content-type') ?? '').includes('application/json');
    return { status: res.status, body: json ? await res.json() : await res.text() };
  }

  leader(): Promise<LeaderView> {
    return this.getJson<LeaderView>('/v1/leader');
  }

  cluster(): Promise<ClusterView> {
    return this.getJson<ClusterView>('/v1/cluster');
  }

  /** Waits until this replica's `/readyz` answers 200. */
  async waitReady(timeoutMs = 15_000): Promise<void> {
    await waitFor(async () => (await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(1000) })).ok, {
      what: `${this.id} to be ready`,
      timeoutMs,
    });
  }

  /** Reads one metric value from `/metrics` (first sample of that name). */
  async metric(name: string): Promise<number | undefined> {
    const res = await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(1000), ...(this.token === undefined ? {} : { headers: { authorization: `Bearer ${this.token}` } }) });
    const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  }
}

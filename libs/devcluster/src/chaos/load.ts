import type { Ledger } from './checker.js';
import { RUN_MARKER } from './proc-sampler.js';
import { delay } from '../wait.js';

/*
 * Continuous pod churn through the public REST API, as a user would: creates
 * (most pinned to the process-runtime nodes, so they run as real processes),
 * deletes and restarts, each sent to a random controller that is up and
 * reachable. Every answer is recorded: a 201 is an acknowledged create whose
 * id the checker then expects in etcd until the pod is deleted. A create
 * whose outcome is unknown (timeout, 5xx) is retried once under the same
 * name, so a lost or doubled create would show.
 */

export interface LoadOptions {
  /** Marker value of the run, put into every pod's environment. */
  run: string;
  /** Base URLs of the controllers that may be asked now (up, not partitioned). */
  targets: () => string[];
  /** Live pods to keep (acknowledged, not deleted). */
  pods: number;
  /** Share of pods pinned to the process-runtime nodes (nodeSelector chaos=process). */
  processShare: number;
  /** Pause between requests (ms). */
  paceMs: number;
  random: () => number;
  /** The token requests carry (the controllers run with auth on). */
  token?: string;
}

interface Entry {
  id: string;
  name: string;
  ackedAt: number;
  deleteSentAt?: number;
}

/** Counts of one kind of request. */
export interface RequestStats {
  ok: number;
  failed: number;
  /** No answer (timeout, connection error) or 5xx: outcome unknown. */
  unknown: number;
  latenciesMs: number[];
}

const newStats = (): RequestStats => ({ ok: 0, failed: 0, unknown: 0, latenciesMs: [] });

export class LoadGenerator implements Ledger {
  private readonly entries = new Map<string, Entry>();
  private readonly idsByName = new Map<string, Set<string>>();
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private seq = 0;
  readonly stats = { create: newStats(), delete: newStats(), restart: newStats() };
  /** Last few unexpected answers, for the report. */
  readonly errors: string[] = [];

  constructor(private readonly opts: LoadOptions) {}

  acked(): Iterable<{ id: string; name: string; ackedAt: number }> {
    return this.entries.values();
  }

  deleteSentAt(id: string): number | undefined {
    return this.entries.get(id)?.deleteSentAt;
  }

  duplicateAcks(): Array<{ name: string; ids: string[] }> {
    return [...this.idsByName].filter(([, ids]) => ids.size > 1).map(([name, ids]) => ({ name, ids: [...ids] }));
  }

  /** Acknowledged pods not (yet) asked to be deleted. */
  livePods(): Entry[] {
    return [...this.entries.values()].filter((e) => e.deleteSentAt === undefined);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.step().catch((err: unknown) => this.note(`load step failed: ${String(err)}`));
        await delay(this.opts.paceMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private note(msg: string): void {
    this.errors.push(`${new Date().toISOString()} ${msg}`);
    if (this.errors.length > 50) this.errors.shift();
  }

  private pick<T>(list: T[]): T | undefined {
    return list.length === 0 ? undefined : list[Math.floor(this.opts.random() * list.length)];
  }

  private async step(): Promise<void> {
    const live = this.livePods();
    if (live.length < this.opts.pods) return this.create();
    const victim = this.pick(live)!;
    if (this.opts.random() < 0.6) return this.remove(victim);
    return this.restart(victim);
  }

  /** Sends one request to a random reachable controller; undefined when none answered. */
  private async send(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; ms: number } | undefined> {
    const target = this.pick(this.opts.targets());
    if (target === undefined) return undefined;
    const t0 = Date.now();
    try {
      const res = await fetch(`${target}${path}`, {
        method,
        signal: AbortSignal.timeout(10_000),
        headers: { ...(this.opts.token === undefined ? {} : { authorization: `Bearer ${this.opts.token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed, ms: Date.now() - t0 };
    } catch (err) {
      this.note(`${method} ${target}${path}: ${(err as Error).message}`);
      return undefined;
    }
  }

  private async create(): Promise<void> {
    const name = `chaos-${++this.seq}`;
    const pinned = this.opts.random() < this.opts.processShare;
    const spec = {
      name,
      command: ['sleep', '100000'],
      cpu: [0.1, 0.2, 0.25][this.seq % 3],
      memoryMiB: [32, 64][this.seq % 2],
      env: { [RUN_MARKER]: this.opts.run },
      ...(pinned ? { nodeSelector: { chaos: 'process' } } : {}),
    };
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await this.send('POST', '/v1/pods', spec);
      const stats = this.stats.create;
      if (res === undefined || res.status >= 500) {
        stats.unknown += 1;
        if (res !== undefined) this.note(`create ${name}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        continue; // the same name again: a second pod of one name would be a duplicate
      }
      stats.latenciesMs.push(res.ms);
      if (res.status === 201 && typeof res.body?.id === 'string') {
        stats.ok += 1;
        const id = res.body.id as string;
        this.entries.set(id, { id, name, ackedAt: Date.now() });
        const ids = this.idsByName.get(name) ?? new Set<string>();
        ids.add(id);
        this.idsByName.set(name, ids);
        return;
      }
      stats.failed += 1;
      // 409 after an unknown first attempt: that attempt created it (not acknowledged, so not tracked).
      if (!(attempt > 0 && res.status === 409)) this.note(`create ${name}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      return;
    }
  }

  private async remove(e: Entry): Promise<void> {
    e.deleteSentAt ??= Date.now();
    const res = await this.send('DELETE', `/v1/pods/${e.id}`);
    this.count(this.stats.delete, res, `delete ${e.name}`, [200, 404]);
  }

  private async restart(e: Entry): Promise<void> {
    const res = await this.send('POST', `/v1/pods/${e.id}/restart`);
    this.count(this.stats.restart, res, `restart ${e.name}`, [200]);
  }

  private count(stats: RequestStats, res: { status: number; body: unknown; ms: number } | undefined, what: string, ok: number[]): void {
    if (res === undefined || res.status >= 500) {
      stats.unknown += 1;
      if (res !== undefined) this.note(`${what}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      return;
    }
    stats.latenciesMs.push(res.ms);
    if (ok.includes(res.status)) stats.ok += 1;
    else {
      stats.failed += 1;
      this.note(`${what}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
    }
  }
}

import type { ServiceEndpoint } from '../services/discovery.js';

/** Passive outlier detection: how long a pod that failed a request is skipped, the first time and at most. */
export const EJECT_BASE_MS = 1000;
export const EJECT_MAX_MS = 30_000;

interface PodLoad {
  inFlight: number;
  /** Times ejected in a row (a success resets it); each ejection lasts twice the one before. */
  ejections: number;
  ejectedUntil: number;
}

/** Records of failed pods kept before the expired ones are dropped (pods that went away leave theirs). */
const MAX_RECORDS = 10_000;

/** Why no endpoint could be picked, for a 503 that says so. */
export type NoEndpointReason = 'no pods' | 'no ready pods' | 'all ejected' | 'all tried';

/** No endpoint: why, in words, and (all ejected) when the first ejection ends (ms). */
export type Pick = { endpoint: ServiceEndpoint } | { reason: NoEndpointReason; detail: string; retryAt?: number };

/**
 * This replica's choice among a service's ready pods: power of two choices
 * on outstanding requests (Envoy's and Finagle's least-request rule: two
 * random candidates, the less loaded wins), which keeps load even without
 * the herding of "always the least loaded" across three replicas that each
 * see only their own requests. A pod that failed a request (refused, reset,
 * 502/503/504) is skipped for a time that doubles with each failure in a
 * row, up to EJECT_MAX_MS (passive outlier detection); its first success
 * forgets its record.
 */
export class Balancer {
  private readonly loads = new Map<string, PodLoad>();
  /** Ejections so far, for metrics. */
  ejections = 0;

  constructor(private readonly random: () => number = Math.random) {}

  /** Picks a ready endpoint not in `exclude`. */
  pick(service: string, all: readonly ServiceEndpoint[], ready: readonly ServiceEndpoint[], exclude?: ReadonlySet<string>, now = Date.now()): Pick {
    if (all.length === 0) return { reason: 'no pods', detail: `service ${service} has no pods` };
    if (ready.length === 0) return { reason: 'no ready pods', detail: `service ${service} has ${all.length} pod(s), none ready (Running, passing its health check, on a Ready node)` };
    const usable: ServiceEndpoint[] = [];
    let ejected = 0;
    let retryAt = Infinity;
    for (const e of ready) {
      if (exclude?.has(e.podId)) continue;
      const until = this.loads.get(e.podId)?.ejectedUntil ?? 0;
      if (until > now) {
        ejected += 1;
        retryAt = Math.min(retryAt, until);
        continue;
      }
      usable.push(e);
    }
    if (usable.length === 0) {
      return ejected > 0
        ? { reason: 'all ejected', detail: `service ${service}: all ${ejected} ready pod(s) failed recently and are ejected for a while`, retryAt }
        : { reason: 'all tried', detail: `service ${service}: every ready pod was tried for this request` };
    }
    if (usable.length === 1) return { endpoint: usable[0]! };
    const i = Math.floor(this.random() * usable.length);
    let j = Math.floor(this.random() * (usable.length - 1));
    if (j >= i) j += 1;
    const a = usable[i]!;
    const b = usable[j]!;
    return { endpoint: this.inFlight(a.podId) <= this.inFlight(b.podId) ? a : b };
  }

  /** Counts a request to `podId` as outstanding until the returned function is called. */
  begin(podId: string): () => void {
    const load = this.load(podId);
    load.inFlight += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      load.inFlight -= 1;
      this.gc(podId, load);
    };
  }

  /** The pod answered: forget its failures. */
  succeeded(podId: string): void {
    const load = this.loads.get(podId);
    if (load === undefined) return;
    load.ejections = 0;
    this.gc(podId, load);
  }

  /** The pod failed a request: skip it for a while. Returns until when (ms). */
  failed(podId: string, now = Date.now()): number {
    if (this.loads.size > MAX_RECORDS) {
      for (const [id, l] of this.loads) if (l.inFlight === 0 && l.ejectedUntil <= now) this.loads.delete(id);
    }
    const load = this.load(podId);
    load.ejections += 1;
    this.ejections += 1;
    load.ejectedUntil = now + Math.min(EJECT_MAX_MS, EJECT_BASE_MS * 2 ** (load.ejections - 1));
    return load.ejectedUntil;
  }

  inFlight(podId: string): number {
    return this.loads.get(podId)?.inFlight ?? 0;
  }

  /** Until when (ms) the pod is ejected, if it is now. */
  ejectedUntil(podId: string, now = Date.now()): number | undefined {
    const until = this.loads.get(podId)?.ejectedUntil ?? 0;
    return until > now ? until : undefined;
  }

  private load(podId: string): PodLoad {
    let load = this.loads.get(podId);
    if (load === undefined) this.loads.set(podId, (load = { inFlight: 0, ejections: 0, ejectedUntil: 0 }));
    return load;
  }

  /** An idle, healthy pod needs no record. */
  private gc(podId: string, load: PodLoad): void {
    if (load.inFlight === 0 && load.ejections === 0) this.loads.delete(podId);
  }
}

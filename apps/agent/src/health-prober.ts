import type { Logger } from 'pino';
import type { HealthCheck } from '@berth/core';

/** Kubernetes' probe defaults, for fields a record leaves out. */
const PROBE_DEFAULTS = { intervalSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 };

/** Soonest a first probe runs after a pod is armed, so a new pod takes requests quickly. */
const WARM_UP_MS = 500;

interface Probe {
  timer: NodeJS.Timeout;
  /** While no probe has passed and the first interval has not elapsed: the next early probe. */
  warmUp?: NodeJS.Timeout;
  failures: number;
  inFlight: boolean;
  /** The latest verdict reported (undefined: none yet). */
  ready?: boolean;
  /** The check and port it probes: arming the same again keeps the count. */
  key: string;
}

/** What the prober tells the reconciler. */
export interface ProbeListener {
  /** `failureThreshold` probes failed in a row: the probe stopped; what to do is the reconciler's decision. */
  unhealthy: (podId: string, why: string) => void;
  /** The verdict changed: the first answer, any failure after a pass, a pass after a failure. */
  readiness: (podId: string, ready: boolean) => void;
}

/**
 * Runs pods' HTTP health checks (`spec.healthCheck`): a GET every interval
 * against 127.0.0.1 (pods use host networking); a status outside 200-399, an
 * error or no answer within the timeout is a failure. Every verdict that
 * changes is reported (readiness: one failure is enough to take a pod out of
 * service); after `failureThreshold` failures in a row the probe stops and
 * reports the pod unhealthy. Until the first pass, early probes run every
 * `min(interval, 500 ms)` within the first interval, so a new pod is ready
 * fast; they only ever make it ready, and their failures count toward no
 * restart (a slow starter is given its interval, as before).
 */
export class HealthProber {
  private readonly probes = new Map<string, Probe>();
  private closed = false;

  constructor(
    private readonly log: Logger,
    private readonly listener: ProbeListener,
  ) {}

  /** Probes `check` on `port` for the pod, unless the same probe already runs (its failure count is kept). */
  arm(pod: { id: string; name: string }, check: HealthCheck, port: number | undefined): void {
    if (this.closed) return;
    const resolvedPort = check.port ?? port;
    const key = JSON.stringify([check, resolvedPort]);
    if (this.probes.get(pod.id)?.key === key) return;
    this.clear(pod.id);
    if (resolvedPort === undefined) {
      this.log.warn({ pod: pod.name }, 'health check has no port and the pod has no host port; not probing (it never becomes ready)');
      return;
    }
    const url = `http://127.0.0.1:${resolvedPort}${check.path}`;
    // Whole milliseconds: AbortSignal.timeout throws on a fraction (599.9999999999981 s), which failed every probe at once.
    const intervalMs = Math.max(1, Math.round((check.intervalSeconds ?? PROBE_DEFAULTS.intervalSeconds) * 1000));
    const timeoutMs = Math.max(1, Math.round((check.timeoutSeconds ?? PROBE_DEFAULTS.timeoutSeconds) * 1000));
    const threshold = check.failureThreshold ?? PROBE_DEFAULTS.failureThreshold;
    const armedAt = Date.now();
    const probe: Probe = { failures: 0, inFlight: false, key, timer: setInterval(() => void run(true), intervalMs) };
    this.probes.set(pod.id, probe);
    const current = () => this.probes.get(pod.id) === probe;
    const run = async (counts: boolean) => {
      if (probe.inFlight) return;
      probe.inFlight = true;
      let problem: string | undefined;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status < 200 || res.status >= 400) problem = `HTTP ${res.status}`;
      } catch (err) {
        problem = err instanceof Error && err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : errorText(err);
      } finally {
        probe.inFlight = false;
      }
      if (!current()) return; // cleared or re-armed meanwhile
      if (probe.ready !== (problem === undefined)) {
        probe.ready = problem === undefined;
        this.listener.readiness(pod.id, probe.ready);
      }
      if (problem === undefined) {
        probe.failures = 0;
        return;
      }
      if (!counts) {
        this.log.debug({ pod: pod.name, url, problem }, 'early health check failed (not counted toward a restart)');
        return;
      }
      probe.failures += 1;
      this.log.info({ pod: pod.name, url, problem, failures: probe.failures }, 'health check failed');
      if (probe.failures < threshold) return;
      this.clear(pod.id);
      this.listener.unhealthy(pod.id, `GET ${url} failed ${probe.failures} times in a row (last: ${problem})`);
    };
    const warmUp = () => {
      // Early probes fit inside the first interval; the regular ones take over from there.
      if (!current() || probe.ready === true || Date.now() - armedAt + WARM_UP_MS >= intervalMs) return;
      probe.warmUp = setTimeout(() => void run(false).then(warmUp), WARM_UP_MS);
    };
    warmUp();
  }

  /** Stops probing the pod (stopped, paused, restarting, gone). */
  clear(podId: string): void {
    const probe = this.probes.get(podId);
    if (probe === undefined) return;
    clearInterval(probe.timer);
    clearTimeout(probe.warmUp);
    this.probes.delete(podId);
  }

  /** Stops every probe for good. */
  close(): void {
    this.closed = true;
    for (const id of [...this.probes.keys()]) this.clear(id);
  }
}

/** A fetch error with its cause (the cause says what went wrong: ECONNREFUSED, ...). */
function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}

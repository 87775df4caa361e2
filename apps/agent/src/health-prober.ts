import type { Logger } from 'pino';
import type { HealthCheck } from '@berth/core';

/** Kubernetes' probe defaults, for fields a record leaves out. */
const PROBE_DEFAULTS = { intervalSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 };

interface Probe {
  timer: NodeJS.Timeout;
  failures: number;
  inFlight: boolean;
  /** The check and port it probes: arming the same again keeps the count. */
  key: string;
}

/**
 * Runs pods' HTTP health checks (`spec.healthCheck`): a GET every interval
 * against 127.0.0.1 (pods use host networking); a status outside 200-399, an
 * error or no answer within the timeout is a failure. After
 * `failureThreshold` failures in a row the probe stops and reports the pod
 * unhealthy; what to do about it is the reconciler's decision.
 */
export class HealthProber {
  private readonly probes = new Map<string, Probe>();
  private closed = false;

  constructor(
    private readonly log: Logger,
    private readonly onUnhealthy: (podId: string, why: string) => void,
  ) {}

  /** Probes `check` on `port` for the pod, unless the same probe already runs (its failure count is kept). */
  arm(pod: { id: string; name: string }, check: HealthCheck, port: number | undefined): void {
    if (this.closed) return;
    const resolvedPort = check.port ?? port;
    const key = JSON.stringify([check, resolvedPort]);
    if (this.probes.get(pod.id)?.key === key) return;
    this.clear(pod.id);
    if (resolvedPort === undefined) {
      this.log.warn({ pod: pod.name }, 'health check has no port and the pod has no host port; not probing');
      return;
    }
    const url = `http://127.0.0.1:${resolvedPort}${check.path}`;
    const intervalMs = (check.intervalSeconds ?? PROBE_DEFAULTS.intervalSeconds) * 1000;
    const timeoutMs = (check.timeoutSeconds ?? PROBE_DEFAULTS.timeoutSeconds) * 1000;
    const threshold = check.failureThreshold ?? PROBE_DEFAULTS.failureThreshold;
    const probe: Probe = { failures: 0, inFlight: false, key, timer: setInterval(() => void run(), intervalMs) };
    this.probes.set(pod.id, probe);
    const run = async () => {
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
      if (this.probes.get(pod.id) !== probe) return; // cleared or re-armed meanwhile
      if (problem === undefined) {
        probe.failures = 0;
        return;
      }
      probe.failures += 1;
      this.log.info({ pod: pod.name, url, problem, failures: probe.failures }, 'health check failed');
      if (probe.failures < threshold) return;
      this.clear(pod.id);
      this.onUnhealthy(pod.id, `GET ${url} failed ${probe.failures} times in a row (last: ${problem})`);
    };
  }

  /** Stops probing the pod (stopped, paused, restarting, gone). */
  clear(podId: string): void {
    const probe = this.probes.get(podId);
    if (probe === undefined) return;
    clearInterval(probe.timer);
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

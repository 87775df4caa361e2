/** Ages the kubectl way: `45s`, `3m`, `2h`, `5d`, `2y`. Pure. */

/** Formats a duration in milliseconds. Negative (clock skew) counts as 0. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '<unknown>';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** Age of an ISO timestamp relative to `now` (ms); `<unknown>` for null or unparsable input. */
export function formatAge(iso: string | null | undefined, now: number = Date.now()): string {
  if (iso === null || iso === undefined || iso === '') return '<unknown>';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '<unknown>';
  return formatDuration(now - t);
}

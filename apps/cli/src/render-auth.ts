import type { AuditRecord, SessionView, TokenView } from './client.js';
import { formatAge } from './age.js';
import { renderFields } from './table.js';
import { PLAIN, type Palette } from './render.js';

/** Tokens, audit records and sessions as `berth` prints them. Pure. */

export const TOKEN_COLUMNS = ['NAME', 'ROLE', 'CREATED-BY', 'AGE'];

export function tokenRow(t: TokenView, now: number): string[] {
  return [t.name, t.role, t.createdBy, formatAge(t.createdAt, now)];
}

export const AUDIT_COLUMNS = ['TIME', 'ACTOR', 'ROLE', 'METHOD', 'ROUTE', 'TARGET', 'STATUS', 'REPLICA'];

/** One audit record; refused requests (4xx, 5xx) in red. Times to the second, UTC, as the API keeps them. */
export function auditRow(r: AuditRecord, c: Palette = PLAIN): string[] {
  const time = r.time.replace(/\.\d+Z$/, 'Z');
  const status = r.status >= 400 ? c.red(String(r.status)) : String(r.status);
  return [time, r.actor, r.role ?? '<none>', r.method, r.route, r.target ?? '<none>', status, r.replica];
}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `--since`: a duration back from `now` (`30s`, `10m`, `1h`, `2d`, `1h30m`)
 * or a time (`2026-01-02T03:04:05Z`, a date, anything with a zone Date
 * reads); the ISO time the API takes.
 */
export function parseSince(input: string, now: number = Date.now()): string {
  const s = input.trim();
  if (/^(\d+(\.\d+)?[smhd])+$/.test(s)) {
    let ms = 0;
    for (const m of s.matchAll(/(\d+(?:\.\d+)?)([smhd])/g)) ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    return new Date(now - ms).toISOString();
  }
  // A bare number is ambiguous (seconds? a year?): refused rather than guessed.
  const at = /^\d+$/.test(s) ? NaN : Date.parse(s);
  if (Number.isNaN(at)) throw new Error(`--since ${JSON.stringify(input)}: give a duration (30s, 10m, 1h, 2d) or a time (2026-01-02T03:04:05Z)`);
  return new Date(at).toISOString();
}

/** `berth whoami`. */
export function describeSession(s: SessionView, server: string, tokenSource: string | undefined, c: Palette = PLAIN): string {
  if (s.auth === 'off') {
    return renderFields([
      ['Server', server],
      ['Auth', c.yellow('off')],
      ['Role', `${s.role} (the server runs without authentication: every request may do everything)`],
    ]);
  }
  return renderFields([
    ['Server', server],
    ['Auth', c.green('on')],
    ['Name', s.name],
    ['Role', s.role],
    ['Via', s.via],
    ...(tokenSource === undefined ? [] : ([['Token from', tokenSource]] as Array<[string, string]>)),
  ]);
}

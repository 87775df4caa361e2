/**
 * Roles, and which one each API route needs: one table, read by the
 * controller (which refuses) and by the dashboard's script (which hides the
 * buttons a role cannot use). The browser loads this module's compiled file
 * as it is (`/dashboard/access.js`), so it imports nothing.
 */

/** Roles, each allowing everything the one before it does. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** True when a caller with role `have` may do what needs `need`. */
export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

/**
 * What a route needs, decided from its method and URL pattern, so a new
 * route gets a role without anyone remembering to give it one: reads need
 * `viewer`; writes of workloads (pods, services, jobs) need `operator`;
 * everything else that writes (nodes, tokens), and the token list and the
 * audit trail, need `admin`. `public` routes answer anyone: health,
 * readiness, the API document, the dashboard's files, and logging in and
 * out. The service proxy decides per request: a GET through it reads, a
 * POST writes.
 */
export type Access = Role | 'public';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** True for methods that change something (and so are audited). */
export function isMutation(method: string): boolean {
  return !READS.has(method.toUpperCase());
}

/** Routes that answer anyone. */
const PUBLIC = [/^\/healthz$/, /^\/readyz$/, /^\/openapi\.json$/, /^\/docs(\/|$)/, /^\/$/, /^\/dashboard\//];

/** The service proxy's route patterns. */
export const PROXY_ROUTE = /^\/v1\/services\/:name\/proxy(\/\*)?$/;

export interface AccessOptions {
  /** `--metrics-public`: Prometheus may scrape without a token. */
  metricsPublic: boolean;
}

/** The role (or `public`) a request to route pattern `url` (e.g. `/v1/pods/:id`) with `method` needs. */
export function requiredAccess(method: string, url: string | undefined, opts: AccessOptions): Access {
  const m = method.toUpperCase();
  // No route matched: a 404 is not a reason to tell an anonymous caller which paths exist.
  if (url === undefined) return 'viewer';
  if (PUBLIC.some((re) => re.test(url))) return 'public';
  if (url === '/metrics') return opts.metricsPublic ? 'public' : 'viewer';
  if (url === '/v1/session') return m === 'GET' ? 'viewer' : 'public';
  if (url.startsWith('/v1/tokens') || url.startsWith('/v1/audit')) return 'admin';
  if (!isMutation(m)) return 'viewer';
  if (PROXY_ROUTE.test(url)) return 'operator';
  if (/^\/v1\/(pods|services|jobs)(\/|$)/.test(url)) return 'operator';
  return 'admin';
}

/** True when `role` may send `method` to route pattern `url`. */
export function mayCall(role: Role, method: string, url: string, opts: AccessOptions): boolean {
  const need = requiredAccess(method, url, opts);
  return need === 'public' || roleAllows(role, need);
}

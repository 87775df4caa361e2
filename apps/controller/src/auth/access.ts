import { requiredAccess, type Access, type AccessOptions } from '@berth/core';

/**
 * Which role each route needs is one table in `@berth/core` (access.ts),
 * shared with the dashboard's script so the buttons it shows are exactly the
 * calls the API allows. This module adds how the OpenAPI document says it.
 */
export { isMutation, PROXY_ROUTE, requiredAccess, type Access, type AccessOptions } from '@berth/core';

/** How the OpenAPI document states an operation's access (the proxy's depends on the method, so it gets a sentence). */
export function accessDescription(methods: readonly string[], url: string, opts: AccessOptions): { role: Access; text: string } {
  const roles = [...new Set(methods.map((m) => requiredAccess(m, url, opts)))];
  if (roles.length > 1) return { role: 'viewer', text: 'Role: viewer for GET, HEAD and OPTIONS; operator for other methods.' };
  const role = roles[0] ?? 'viewer';
  return { role, text: role === 'public' ? 'No token needed.' : `Role: ${role} or above.` };
}

import type { FastifyInstance } from 'fastify';
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet';

/**
 * Security headers on every answer (`@fastify/helmet`), and the Content
 * Security Policy the dashboard is written to pass: scripts and styles only
 * from this replica's own files (no inline code, no CDN), calls only back to
 * this replica, never framed (clickjacking a button that drains a node), no
 * plugins, no `<base>` or form posts elsewhere. The Swagger UI at /docs gets
 * its own, relaxed only where its bundle needs it (see `swaggerUiCsp`).
 */

type Directives = Record<string, Iterable<string | ((req: unknown, res: unknown) => string)>>;

/** The policy of every answer, the dashboard's included; `extraConnect` adds sources `connect-src` allows. */
export function cspDirectives(tls: boolean, extraConnect?: () => string): Directives {
  return {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    scriptSrcAttr: ["'none'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    fontSrc: ["'self'"],
    connectSrc: extraConnect === undefined ? ["'self'"] : ["'self'", extraConnect],
    objectSrc: ["'none'"],
    baseUri: ["'self'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
    // On plain http an upgrade would break every subresource; with TLS it keeps them on https.
    ...(tls ? { upgradeInsecureRequests: [] } : {}),
  };
}

/**
 * The other replicas' origins, for the dashboard's `connect-src`: when the
 * replica that served the page stops answering, the page probes the others'
 * `/healthz` and moves to one that answers. Only well-formed http(s) origins
 * reach the header, so an odd address in an election key cannot add a directive.
 */
export function replicaOrigins(addresses: readonly string[]): string {
  const origins = new Set<string>();
  for (const address of addresses) {
    try {
      const { protocol, origin } = new URL(address);
      if ((protocol === 'http:' || protocol === 'https:') && /^https?:\/\/[A-Za-z0-9.:[\]-]+$/.test(origin)) origins.add(origin);
    } catch {
      /* not a URL: left out */
    }
  }
  return [...origins].join(' ');
}

/** Route-level helmet options for the dashboard page: the common policy plus the replicas it may fail over to. */
export function dashboardHelmet(tls: boolean, addresses: () => readonly string[]): FastifyHelmetOptions {
  return { contentSecurityPolicy: { useDefaults: false, directives: cspDirectives(tls, () => replicaOrigins(addresses())) } };
}

/**
 * Swagger UI's bundle sets inline `style` attributes and loads its logo and
 * icons as `data:` images; it runs no inline script. Its answers get the
 * common policy with inline styles allowed, nothing more.
 */
export function swaggerUiCsp(tls: boolean): string {
  const directives = cspDirectives(tls);
  directives.styleSrc = ["'self'", "'unsafe-inline'"];
  return Object.entries(directives)
    .map(([name, values]) => [name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), ...(values as string[])].join(' '))
    .join('; ');
}

/** Registers the headers on every route registered after it. HSTS only over TLS: over plain http it means nothing, and it would stick to the host name. */
export async function installSecurityHeaders(app: FastifyInstance, opts: { tls: boolean }): Promise<void> {
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: { useDefaults: false, directives: cspDirectives(opts.tls) },
    strictTransportSecurity: opts.tls ? { maxAge: 31_536_000, includeSubDomains: false } : false,
    xFrameOptions: { action: 'deny' },
    crossOriginResourcePolicy: { policy: 'same-origin' },
  });
}

import t from 'tap';
import Fastify from 'fastify';
import { dashboardHelmet, installSecurityHeaders, replicaOrigins } from '@berth/controller';

// The headers every replica sends, on a bare Fastify app: HSTS and the upgrade
// of subresources only over TLS, and the dashboard's connect-src built only
// from well-formed replica origins.

async function headersOf(tls: boolean, addresses: string[] = []) {
  const app = Fastify();
  await installSecurityHeaders(app, { tls });
  app.get('/', { helmet: dashboardHelmet(tls, () => addresses) }, async () => 'page');
  app.get('/v1/x', async () => ({ ok: true }));
  const page = (await app.inject({ method: 'GET', url: '/' })).headers;
  const api = (await app.inject({ method: 'GET', url: '/v1/x' })).headers;
  await app.close();
  return { page, api };
}

t.test('plain http: no HSTS, no upgrade of subresources; the common policy everywhere', async (t) => {
  const { page, api } = await headersOf(false, ['http://127.0.0.1:8081']);
  t.notOk(page['strict-transport-security'], 'no HSTS');
  t.notMatch(String(page['content-security-policy']), /upgrade-insecure-requests/);
  t.match(String(api['content-security-policy']), /connect-src 'self';/, 'an API answer: connect-src self only');
  t.match(String(page['content-security-policy']), /connect-src 'self' http:\/\/127\.0\.0\.1:8081;/, 'the page: and the other replicas');
  t.equal(api['x-frame-options'], 'DENY');
  t.equal(api['cross-origin-resource-policy'], 'same-origin');
});

t.test('TLS: HSTS and upgrade-insecure-requests', async (t) => {
  const { page } = await headersOf(true);
  t.match(String(page['strict-transport-security']), /max-age=31536000/);
  t.match(String(page['content-security-policy']), /upgrade-insecure-requests/);
});

t.test('replica origins: only well-formed http(s) origins reach the header', async (t) => {
  t.equal(replicaOrigins(['http://10.0.0.1:8080', 'https://c2.example:8443/x', 'http://10.0.0.1:8080/']), 'http://10.0.0.1:8080 https://c2.example:8443');
  t.equal(replicaOrigins(['not a url', 'ftp://h:21', "http://h:1; script-src 'unsafe-inline'", 'javascript:alert(1)']), '');
});

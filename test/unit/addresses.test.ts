import t from 'tap';
import { endpointHost, podEndpoint } from '@berth/core';
import { isLoopback, localAddressToward, planAddresses, urlHost } from '@berth/store';
import { parseConfig } from '@berth/controller';

// The addresses a process hands out: the advertised one defaults to the
// interface that reaches etcd, listening follows it, and a pod's endpoint is
// its node's advertised host with the pod's host port. (The multi-host e2e
// test checks the same across real network namespaces.)

t.test('loopback and URL hosts', async (t) => {
  for (const h of ['127.0.0.1', '127.3.2.1', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) t.ok(isLoopback(h), h);
  for (const h of ['10.0.0.1', '0.0.0.0', '::', 'example.com', '128.0.0.1']) t.notOk(isLoopback(h), h);
  t.equal(urlHost('10.0.0.1'), '10.0.0.1');
  t.equal(urlHost('fd00::1'), '[fd00::1]');
});

t.test('the local address toward an etcd endpoint (no packet is sent)', async (t) => {
  t.equal(await localAddressToward('http://127.0.0.1:2379'), '127.0.0.1');
  t.equal(await localAddressToward('127.0.0.1:2379'), '127.0.0.1', 'a bare host:port');
  t.equal(await localAddressToward('http://localhost:2379'), '127.0.0.1', 'a name is resolved first');
  t.equal(await localAddressToward('http://no-such-host.invalid:2379'), undefined, 'a name that does not resolve');
  t.equal(await localAddressToward('::not a url'), undefined);
});

t.test('address plans', async (t) => {
  const local = ['http://127.0.0.1:2379'];
  t.same(await planAddresses({ etcd: local }), { host: '127.0.0.1', advertise: '127.0.0.1', source: 'route to etcd' }, 'a one-host cluster stays on loopback');
  t.same(
    await planAddresses({ etcd: local, advertiseAddress: '10.1.2.3' }),
    { host: '0.0.0.0', advertise: '10.1.2.3', source: 'flag' },
    'an advertised address that is not loopback listens on every interface (it may be a NAT address no interface has)',
  );
  t.same(await planAddresses({ etcd: local, advertiseAddress: 'fd00::7' }), { host: '::', advertise: 'fd00::7', source: 'flag' });
  t.same(await planAddresses({ etcd: local, host: '10.1.2.3' }), { host: '10.1.2.3', advertise: '10.1.2.3', source: 'listen address' }, 'one listen address is advertised');
  t.same(await planAddresses({ etcd: local, host: '0.0.0.0' }), { host: '0.0.0.0', advertise: '127.0.0.1', source: 'route to etcd' });
  t.same(await planAddresses({ etcd: local, host: '0.0.0.0', advertiseAddress: '10.9.9.9' }), { host: '0.0.0.0', advertise: '10.9.9.9', source: 'flag' });
  const lonely = await planAddresses({ etcd: ['http://10.213.255.1:2379'], host: '127.0.0.1' });
  t.equal(lonely.advertise, '127.0.0.1');
  t.match(lonely.warning, /loopback but etcd is on another host.*--advertise-address/, 'a loopback address with a remote etcd is warned about');
});

t.test('a pod endpoint is its node advertised host and its host port', async (t) => {
  t.equal(endpointHost({ address: 'http://10.0.0.7:41000' }), '10.0.0.7');
  t.equal(endpointHost({ address: 'http://[fd00::7]:41000' }), '[fd00::7]', 'IPv6 in brackets, ready for a URL');
  t.equal(endpointHost({ address: 'http://node-3.example:41000' }), 'node-3.example');
  t.equal(endpointHost({ address: '' }), '', 'a node that has not registered');
  t.equal(podEndpoint({ address: 'http://10.0.0.7:41000' }, { status: { hostPort: 35001 } as never }), '10.0.0.7:35001');
  t.equal(podEndpoint({ address: 'http://10.0.0.7:41000' }, { status: {} as never }), undefined, 'no host port');
  t.equal(podEndpoint({ address: '' }, { status: { hostPort: 35001 } as never }), undefined, 'no node address');
});

t.test('controller flags: --advertise-address, and the old --advertise-url over it', async (t) => {
  // (--insecure-no-auth: a non-loopback address needs a token source or this flag.)
  const argv = (...flags: string[]) => ['node', 'berth-controller', '--etcd', 'http://127.0.0.1:2379', '--port', '8081', '--insecure-no-auth', ...flags];
  const plain = await parseConfig(argv());
  t.equal(plain.host, '127.0.0.1');
  t.equal(plain.advertiseUrl, 'http://127.0.0.1:8081');
  const advertised = await parseConfig(argv('--advertise-address', '10.4.5.6'));
  t.equal(advertised.host, '0.0.0.0');
  t.equal(advertised.advertiseUrl, 'http://10.4.5.6:8081');
  const v6 = await parseConfig(argv('--advertise-address', 'fd00::6'));
  t.equal(v6.advertiseUrl, 'http://[fd00::6]:8081');
  const url = await parseConfig(argv('--advertise-address', '10.4.5.6', '--advertise-url', 'http://berth.example:80'));
  t.equal(url.advertiseUrl, 'http://berth.example:80', '--advertise-url stays the more specific override');
  t.equal(url.host, '0.0.0.0');
});

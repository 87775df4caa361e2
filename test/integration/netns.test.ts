import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import { localAddressToward } from '@berth/store';
import { netnsProblem, removeLeftoverNetworks, SimulatedNetwork, simulatedHosts } from '../helpers/netns.js';

// The simulated hosts the multi-host tests stand on: hosts reach each other
// and nothing else, the route toward another host gives the host's own
// address, and nothing is left behind (not even by a run that crashed).

const problem = netnsProblem();
const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const namespaces = () => ip('netns', 'list');

t.test('simulated hosts', { skip: problem ?? false }, async (t) => {
  t.test('hosts reach each other over the switch, and nothing beyond it', async (t) => {
    const net = simulatedHosts(t, ['a', 'b']);
    const [a, b] = [net.host('a'), net.host('b')];
    t.match(a.ip, /^10\.213\.\d+\.1$/);
    t.match(b.ip, /^10\.213\.\d+\.2$/);
    t.equal(net.rootIp.replace(/\.254$/, ''), a.ip.replace(/\.1$/, ''), 'the test process is on the same /24');
    // A server on b, a client on a.
    const server = spawn('ip', ['netns', 'exec', b.ns, process.execPath, '-e', "const s = require('node:net').createServer((c) => c.end('hello from b')).listen(0, () => console.log(s.address().port));"], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => void server.kill('SIGKILL'));
    const [line] = (await once(server.stdout, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    const answer = await a.run(process.execPath, ['-e', `require('node:net').connect(${port}, '${b.ip}').on('data', (d) => process.stdout.write(d))`]);
    t.equal(answer, 'hello from b', 'a reaches a server on b at b\'s address');
    const route = await a.run('ip', ['-4', 'route', 'show']);
    t.match(route, new RegExp(`^${net.subnet.replace(/\./g, '\\.')} dev eth0`, 'm'), 'one route: the /24');
    t.notMatch(route, /default/, 'no default route');
    const leaving = await a.run('ip', ['route', 'get', '192.0.2.1']).then(
      () => 'routed',
      (err: Error) => err.message,
    );
    t.match(leaving, /unreachable/i, 'an address outside the /24 is unreachable from a host');
    // The kernel's choice of source address toward b, as an agent on a makes it for etcd on b.
    const from = await a.run(process.execPath, ['--input-type=module', '-e', `import dgram from 'node:dgram'; const s = dgram.createSocket('udp4'); s.connect(2379, '${b.ip}', () => { console.log(s.address().address); s.close(); });`]);
    t.equal(from.trim(), a.ip, "a's address toward b is a's own");
    t.equal(await localAddressToward(`http://${a.ip}:2379`), net.rootIp, 'and the test process reaches a through its own leg');
  });

  t.test('teardown removes every namespace and the root leg', async (t) => {
    const net = SimulatedNetwork.create(['x', 'y']);
    const names = net.hosts.map((h) => h.ns);
    for (const ns of names) t.match(namespaces(), ns);
    t.match(ip('-o', 'link', 'show'), net.rootLeg);
    net.destroy();
    net.destroy(); // idempotent
    for (const ns of names) t.notMatch(namespaces(), ns, `${ns} removed`);
    t.notMatch(ip('-o', 'link', 'show'), net.rootLeg, 'root leg removed');
    t.notMatch(ip('-4', 'route', 'show'), net.subnet, 'and its route');
  });

  t.test('what a crashed run left behind is removed', async (t) => {
    // A pid above the kernel's pid_max: that run's process is certainly gone.
    const ns = 'berthnet-4999999-0-h1';
    ip('netns', 'add', ns);
    t.teardown(() => {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* removed by the code under test */
      }
    });
    t.ok(removeLeftoverNetworks().includes(ns), 'reported as removed');
    t.notMatch(namespaces(), ns, 'and gone');
  });

  t.test('bad host names are refused before anything is built', async (t) => {
    t.throws(() => SimulatedNetwork.create(['Bad_Name']), /lower-case letters and digits/);
    t.throws(() => SimulatedNetwork.create(['a', 'a']), /must differ/);
  });
});

import { execFile, execFileSync } from 'node:child_process';
import type { Test } from 'tap';

/*
 * Hosts simulated as Linux network namespaces, for tests of what crosses
 * hosts. Each host is a namespace with loopback and one veth whose other end
 * is on a bridge; the bridge lives in a namespace of its own (the "switch"),
 * so the root namespace's firewall (Docker's FORWARD policy, say) never sees
 * the traffic between hosts. The hosts share one /24 of 10.213.0.0/16 that no
 * route of this machine already covers, and have no other route: nothing they
 * send can leave for another network. The root namespace gets one more leg
 * on the switch (address .254), so the test process itself can drive the APIs
 * and wait for processes; what must cross hosts is asserted from inside a
 * host (`SimHost.run`).
 *
 * Every name carries the pid of the test process (`berthnet-<pid>-<k>-<host>`,
 * root leg `bn<pid>-<k>`): teardown removes one network's namespaces (with
 * their veths, bridge and every process still inside) and its root leg; a
 * later run removes what a crashed one (whose pid is gone) left behind.
 */

const PREFIX = 'berthnet-';
const LEG_PREFIX = 'bn';
const HOST_NAME = /^[a-z][a-z0-9]{0,11}$/;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
}

function inNs(ns: string, ...args: string[]): string {
  return ip('netns', 'exec', ns, ...args);
}

function quietly(f: () => unknown): void {
  try {
    f();
  } catch {
    /* already gone */
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why simulated hosts cannot be built here (not root, no iproute2), or undefined. */
export function netnsProblem(): string | undefined {
  if (process.platform !== 'linux') return 'simulated hosts need Linux network namespaces';
  if (process.getuid?.() !== 0) return 'simulated hosts need root (ip netns, veth pairs, a bridge)';
  try {
    ip('netns', 'list');
  } catch (err) {
    return `simulated hosts need iproute2 (\`ip\`): ${(err as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

/** Kills whatever still runs inside a namespace, then deletes it (its veth ends and bridge go with it). */
function removeNamespace(ns: string): void {
  quietly(() => {
    for (const pid of ip('netns', 'pids', ns).split('\n').filter(Boolean)) quietly(() => process.kill(Number(pid), 'SIGKILL'));
  });
  quietly(() => ip('netns', 'del', ns));
}

function ourNamespaces(): string[] {
  try {
    return ip('netns', 'list')
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => n.startsWith(PREFIX));
  } catch {
    return [];
  }
}

/** Removes networks (namespaces and root legs) of test runs whose process is gone. */
export function removeLeftoverNetworks(): string[] {
  const removed: string[] = [];
  for (const ns of ourNamespaces()) {
    const owner = Number(ns.slice(PREFIX.length).split('-')[0]);
    if (Number.isInteger(owner) && owner !== process.pid && alive(owner)) continue;
    if (owner === process.pid && networks.some((n) => n.owns(ns))) continue;
    removeNamespace(ns);
    removed.push(ns);
  }
  for (const m of ip('-o', 'link', 'show').matchAll(new RegExp(`^\\d+: (${LEG_PREFIX}(\\d+)-(\\d+))[@:]`, 'gm'))) {
    const owner = Number(m[2]);
    if (owner !== process.pid && alive(owner)) continue;
    if (owner === process.pid && networks.some((n) => n.rootLeg === m[1])) continue;
    quietly(() => ip('link', 'del', m[1]!));
    removed.push(m[1]!);
  }
  return removed;
}

/** The /24 blocks of 10.213.0.0/16 that some route or address of the root namespace already overlaps (the default route aside). */
function takenBlocks(): Set<number> {
  const taken = new Set<number>();
  const text = `${ip('-4', 'route', 'show', 'table', 'all')}\n${ip('-4', '-o', 'addr', 'show')}`;
  for (const m of text.matchAll(/(?:^|\s)(\d+)\.(\d+)\.(\d+)\.(\d+)(?:\/(\d+))?/g)) {
    const len = m[5] === undefined ? 32 : Number(m[5]);
    if (len === 0) continue;
    const addr = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
    const size = 2 ** (32 - len);
    const start = addr - (addr % size);
    for (let block = 0; block < 256; block++) {
      const first = ((10 << 24) | (213 << 16) | (block << 8)) >>> 0;
      if (start <= first + 255 && first <= start + size - 1) taken.add(block);
    }
  }
  return taken;
}

/** One simulated host. */
export interface SimHost {
  name: string;
  /** Its namespace. */
  ns: string;
  /** Its one address (10.213.<block>.<i>). */
  ip: string;
  /** The command prefix that runs a process on it; `ip netns exec` execs, so the pid stays the process's. */
  wrap: string[];
  /** Runs a command on the host; resolves with its output, rejects (with its stderr) when it fails. */
  run(command: string, args: string[], timeoutMs?: number): Promise<string>;
}

const networks: SimulatedNetwork[] = [];
let counter = 0;
let exitHook = false;

/** Several hosts on one switch. */
export class SimulatedNetwork {
  readonly hosts: SimHost[] = [];
  /** This network's /24, e.g. 10.213.17.0/24. */
  readonly subnet: string;
  /** The test process's own address on the switch. */
  readonly rootIp: string;
  /** Interface name of the root namespace's leg. */
  readonly rootLeg: string;
  private readonly namespaces: string[] = [];
  private destroyed = false;

  private constructor(
    private readonly id: string,
    block: number,
  ) {
    this.subnet = `10.213.${block}.0/24`;
    this.rootIp = `10.213.${block}.254`;
    this.rootLeg = `${LEG_PREFIX}${id}`;
  }

  /** Builds a network of hosts named `names` (lower-case letters and digits), after removing what crashed runs left. */
  static create(names: string[]): SimulatedNetwork {
    if (names.length === 0 || names.length > 200) throw new Error('simulated network: 1 to 200 hosts');
    for (const n of names) if (!HOST_NAME.test(n) || n === 'sw') throw new Error(`simulated host name ${JSON.stringify(n)}: 1-12 lower-case letters and digits, not "sw"`);
    if (new Set(names).size !== names.length) throw new Error('simulated host names must differ');
    if (!exitHook) {
      exitHook = true;
      // Synchronous, so it also runs when a test crashes or a signal ends the run (killChildrenOnSignals exits).
      process.once('exit', () => {
        for (const n of [...networks]) n.destroy();
      });
    }
    removeLeftoverNetworks();
    const avoid = new Set<number>();
    // Another test process may pick the same block at the same moment: the one that finds a second
    // address of its /24 on the root namespace after adding its leg gives the block up and tries another.
    for (let attempt = 0; attempt < 4; attempt++) {
      const taken = takenBlocks();
      const k = counter++;
      let block = -1;
      for (let i = 0; i < 256 && block < 0; i++) {
        const candidate = (process.pid + k * 37 + i) % 256;
        if (!taken.has(candidate) && !avoid.has(candidate)) block = candidate;
      }
      if (block < 0) throw new Error('simulated network: every /24 of 10.213.0.0/16 is already routed on this machine');
      const net = new SimulatedNetwork(`${process.pid}-${k}`, block);
      networks.push(net);
      try {
        net.build(names, block);
      } catch (err) {
        net.destroy();
        throw new Error(`cannot build simulated hosts ${names.join(', ')}: ${(err as Error).message}`);
      }
      const sharing = ip('-4', '-o', 'addr', 'show').split('\n').filter((l) => l.includes(` 10.213.${block}.`) && !l.includes(` ${net.rootLeg} `));
      if (sharing.length === 0) return net;
      net.destroy();
      avoid.add(block);
    }
    throw new Error('simulated network: no /24 of 10.213.0.0/16 stayed ours (other test runs took each one tried)');
  }

  owns(ns: string): boolean {
    return this.namespaces.includes(ns);
  }

  private addNamespace(suffix: string): string {
    const ns = `${PREFIX}${this.id}-${suffix}`;
    removeNamespace(ns); // a crashed run of a process with the same pid
    this.namespaces.push(ns);
    ip('netns', 'add', ns);
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
    return ns;
  }

  private build(names: string[], block: number): void {
    const sw = this.addNamespace('sw');
    inNs(sw, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    inNs(sw, 'ip', 'link', 'set', 'br0', 'up');
    names.forEach((name, i) => {
      const ns = this.addNamespace(name);
      const hostIp = `10.213.${block}.${i + 1}`;
      // Both ends are born in their namespaces: no interface of a host ever appears in the root namespace.
      ip('link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', sw);
      inNs(sw, 'ip', 'link', 'set', `p${i}`, 'master', 'br0', 'up');
      inNs(ns, 'ip', 'addr', 'add', `${hostIp}/24`, 'dev', 'eth0');
      inNs(ns, 'ip', 'link', 'set', 'eth0', 'up');
      const wrap = ['ip', 'netns', 'exec', ns];
      this.hosts.push({
        name,
        ns,
        ip: hostIp,
        wrap,
        run: (command, args, timeoutMs = 30_000) =>
          new Promise((resolve, reject) => {
            execFile('ip', ['netns', 'exec', ns, command, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
              if (err) reject(new Error(`on ${name}: ${command} failed: ${err.message}\n${stderr}`));
              else resolve(stdout);
            });
          }),
      });
    });
    quietly(() => ip('link', 'del', this.rootLeg));
    ip('link', 'add', this.rootLeg, 'type', 'veth', 'peer', 'name', 'root', 'netns', sw);
    inNs(sw, 'ip', 'link', 'set', 'root', 'master', 'br0', 'up');
    ip('addr', 'add', `${this.rootIp}/24`, 'dev', this.rootLeg);
    ip('link', 'set', this.rootLeg, 'up');
  }

  host(name: string): SimHost {
    const h = this.hosts.find((x) => x.name === name);
    if (h === undefined) throw new Error(`no simulated host ${name}`);
    return h;
  }

  /** Removes every namespace (killing what still runs inside) and the root leg. Synchronous and idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of [...this.namespaces].reverse()) removeNamespace(ns);
    // Deleting a namespace frees its veths asynchronously; the root leg (and its route) go now.
    quietly(() => ip('link', 'del', this.rootLeg));
    networks.splice(networks.indexOf(this), 1);
  }
}

/**
 * Simulated hosts for one test, removed at its teardown. Register it before
 * the processes that run on it: teardowns run last-registered first, so those
 * processes stop in order before the namespaces (and what is left in them) go.
 */
export function simulatedHosts(t: Test, names: string[]): SimulatedNetwork {
  const net = SimulatedNetwork.create(names);
  t.teardown(() => net.destroy());
  return net;
}

import { execFileSync } from 'node:child_process';

/*
 * Network namespaces for silent partitions: a process started inside one
 * (`ip netns exec`) sees only loopback and one end of a veth pair whose other
 * end is on the host, with a /30 between them. Nothing else is routed, so
 * whatever it reaches, it reaches through that veth; dropping the veth's
 * traffic with iptables inside the namespace makes packets vanish and open
 * connections hang until some timeout notices (a TCP proxy that closes
 * connections is the other, loud, kind of partition). Every name carries the
 * owner's pid, so a later run can remove what a crashed one left behind.
 */

/** Prefix of every namespace the chaos run creates: `berthchaos-<pid>-<i>`. */
export const NETNS_PREFIX = 'berthchaos-';

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
}

function inNs(ns: string, cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
}

/** True when this process can create namespaces, veths and iptables rules (root, iproute2, iptables). */
export function netnsProblem(): string | undefined {
  if (process.getuid?.() !== 0) return 'silent partitions need root (ip netns, iptables)';
  try {
    ip('netns', 'list');
    execFileSync('iptables', ['--version'], { stdio: 'ignore' });
  } catch (err) {
    return `silent partitions need iproute2 and iptables: ${(err as Error).message}`;
  }
  return undefined;
}

/** Host-side and namespace-side addresses of one /30. */
export interface Subnet {
  hostIp: string;
  nsIp: string;
}

/** `count` /30 blocks of 10.250.0.0/16 that no interface of this host uses yet. */
export function freeSubnets(count: number, seed = process.pid): Subnet[] {
  const used = new Set<string>();
  for (const m of ip('-o', '-4', 'addr', 'show').matchAll(/inet (10\.250\.\d+\.\d+)\//g)) used.add(m[1]!);
  const out: Subnet[] = [];
  for (let i = 0; out.length < count && i < 16384; i++) {
    const block = ((seed * 13 + i) % 16384) * 4;
    const base = `10.250.${Math.floor(block / 256)}.`;
    const hostIp = `${base}${(block % 256) + 1}`;
    const nsIp = `${base}${(block % 256) + 2}`;
    if (!used.has(hostIp) && !used.has(nsIp)) out.push({ hostIp, nsIp });
  }
  if (out.length < count) throw new Error('no free /30 in 10.250.0.0/16 for the chaos namespaces');
  return out;
}

/** One namespace joined to the host by a veth pair. */
export class NetnsLink {
  private dropping = false;

  private constructor(
    readonly ns: string,
    readonly hostIf: string,
    readonly nsIf: string,
    readonly hostIp: string,
    readonly nsIp: string,
  ) {}

  /** Creates namespace `berthchaos-<pid>-<index>` with a veth to the host on `subnet`. */
  static create(index: number, subnet: Subnet): NetnsLink {
    const ns = `${NETNS_PREFIX}${process.pid}-${index}`;
    // Interface names are at most 15 characters.
    const link = new NetnsLink(ns, `bch${process.pid}-${index}`, `bcn${process.pid}-${index}`, subnet.hostIp, subnet.nsIp);
    try {
      ip('netns', 'add', ns);
      ip('link', 'add', link.hostIf, 'type', 'veth', 'peer', 'name', link.nsIf);
      ip('link', 'set', link.nsIf, 'netns', ns);
      ip('addr', 'add', `${subnet.hostIp}/30`, 'dev', link.hostIf);
      ip('link', 'set', link.hostIf, 'up');
      inNs(ns, 'ip', 'addr', 'add', `${subnet.nsIp}/30`, 'dev', link.nsIf);
      inNs(ns, 'ip', 'link', 'set', link.nsIf, 'up');
      inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
    } catch (err) {
      link.destroy();
      throw new Error(`cannot create network namespace ${ns}: ${(err as Error).message}`);
    }
    return link;
  }

  /** The command prefix that runs a process inside the namespace (it execs, so the pid stays the process's). */
  get wrap(): string[] {
    return ['ip', 'netns', 'exec', this.ns];
  }

  get partitioned(): boolean {
    return this.dropping;
  }

  /** Drops every packet on the veth, both ways, inside the namespace: connections hang, nothing is refused. */
  partition(): void {
    if (this.dropping) return;
    inNs(this.ns, 'iptables', '-I', 'INPUT', '-i', this.nsIf, '-j', 'DROP');
    inNs(this.ns, 'iptables', '-I', 'OUTPUT', '-o', this.nsIf, '-j', 'DROP');
    this.dropping = true;
  }

  /** Removes the drop rules. */
  heal(): void {
    if (!this.dropping) return;
    inNs(this.ns, 'iptables', '-D', 'INPUT', '-i', this.nsIf, '-j', 'DROP');
    inNs(this.ns, 'iptables', '-D', 'OUTPUT', '-o', this.nsIf, '-j', 'DROP');
    this.dropping = false;
  }

  /** Kills what still runs inside, deletes the namespace (its veth end, rules and the pair go with it). Synchronous, for exit handlers. */
  destroy(): void {
    removeNamespace(this.ns);
    try {
      ip('link', 'del', this.hostIf);
    } catch {
      /* gone with the namespace */
    }
  }
}

function removeNamespace(ns: string): void {
  try {
    for (const pid of ip('netns', 'pids', ns).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  } catch {
    /* no such namespace */
  }
  try {
    ip('netns', 'del', ns);
  } catch {
    /* no such namespace */
  }
}

/** True when a process with this pid exists. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function chaosNamespaces(): Array<{ ns: string; owner: number }> {
  try {
    return ip('netns', 'list')
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => n.startsWith(NETNS_PREFIX))
      .map((ns) => ({ ns, owner: Number(ns.slice(NETNS_PREFIX.length).split('-')[0]) }));
  } catch {
    return [];
  }
}

/** Removes the namespaces (with their veths and rules, and what runs inside) of the run with this pid. Synchronous. */
export function removeNamespacesOf(pid: number): void {
  for (const { ns, owner } of chaosNamespaces()) if (owner === pid) removeNamespace(ns);
}

/** Removes namespaces (and their veths) left by chaos runs whose process is gone; returns their names. */
export function removeLeftoverNamespaces(): string[] {
  const removed: string[] = [];
  for (const { ns, owner } of chaosNamespaces()) {
    if (Number.isInteger(owner) && owner !== process.pid && pidAlive(owner)) continue;
    removeNamespace(ns);
    removed.push(ns);
  }
  // A veth whose namespace end is gone disappears with it; one left on its own (a crash between the two
  // `ip` calls of create) is removed by its name.
  for (const m of ip('-o', 'link', 'show').matchAll(/^\d+: (bch(\d+)-\d+)[@:]/gm)) {
    if (pidAlive(Number(m[2])) && Number(m[2]) !== process.pid) continue;
    try {
      ip('link', 'del', m[1]!);
      removed.push(m[1]!);
    } catch {
      /* gone */
    }
  }
  return removed;
}

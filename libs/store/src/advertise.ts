import dgram from 'node:dgram';
import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';

/*
 * What address a controller or agent hands out, and where it listens. Every
 * address in etcd (a node's, a replica's, and through the node a pod's) is
 * used by processes on other hosts, so the default is the address of the
 * interface this host reaches etcd through: the one address the other hosts
 * are known to share a network with. The kernel picks it when a UDP socket
 * is connected toward etcd; connecting a datagram socket sends nothing.
 */

/** True for 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\./.test(h);
}

/** True for an address that means "every interface". */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** `host` as it appears in a URL (IPv6 addresses in brackets). */
export function urlHost(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host;
}

/**
 * The local address of the interface that reaches `endpoint` (a URL such as
 * http://10.0.0.5:2379), or undefined when there is no route to it or its
 * name does not resolve.
 */
export async function localAddressToward(endpoint: string): Promise<string | undefined> {
  let target: URL;
  try {
    target = new URL(endpoint.includes('://') ? endpoint : `http://${endpoint}`);
  } catch {
    return undefined;
  }
  const name = target.hostname.replace(/^\[|\]$/g, '');
  const ip = net.isIP(name) !== 0 ? name : await dns.lookup(name).then((r) => r.address).catch(() => undefined);
  if (ip === undefined) return undefined;
  const socket = dgram.createSocket(net.isIPv6(ip) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(Number(target.port) || 2379, ip, () => resolve());
    });
    return socket.address().address;
  } catch {
    return undefined;
  } finally {
    socket.close();
  }
}

/** Where a process listens and the address it gives the others. */
export interface AddressPlan {
  /** Address the API listens on. */
  host: string;
  /** Address other hosts reach this one at. */
  advertise: string;
  /** Why it is that address, for the start-up log. */
  source: 'flag' | 'listen address' | 'route to etcd' | 'hostname';
  /** Set when other hosts probably cannot reach `advertise` (loopback, while etcd is elsewhere). */
  warning?: string;
}

/**
 * Decides the listen and advertised addresses from `--host` and
 * `--advertise-address` (either may be absent) and the etcd endpoints:
 * - advertised: the flag; else `--host` when it names one address; else the
 *   address of the interface that reaches the first etcd endpoint; else (no
 *   route) the host name.
 * - listen: `--host`; else loopback when the advertised address is loopback
 *   (a one-host cluster stays private), else every interface, so that the
 *   other hosts reach it at the advertised address (which may be a NAT'd one
 *   that no local interface has).
 */
export async function planAddresses(opts: { etcd: string[]; host?: string | undefined; advertiseAddress?: string | undefined }): Promise<AddressPlan> {
  let advertise: string;
  let source: AddressPlan['source'];
  if (opts.advertiseAddress !== undefined) {
    advertise = opts.advertiseAddress;
    source = 'flag';
  } else if (opts.host !== undefined && !isWildcard(opts.host)) {
    advertise = opts.host;
    source = 'listen address';
  } else {
    const routed = opts.etcd.length > 0 ? await localAddressToward(opts.etcd[0]!) : undefined;
    advertise = routed ?? os.hostname();
    source = routed === undefined ? 'hostname' : 'route to etcd';
  }
  const host = opts.host ?? (isLoopback(advertise) ? (net.isIPv6(advertise) ? '::1' : '127.0.0.1') : net.isIPv6(advertise) ? '::' : '0.0.0.0');
  const etcdRemote = opts.etcd.some((e) => {
    try {
      return !isLoopback(new URL(e.includes('://') ? e : `http://${e}`).hostname);
    } catch {
      return false;
    }
  });
  const plan: AddressPlan = { host, advertise, source };
  if (isLoopback(advertise) && etcdRemote) {
    plan.warning = `the advertised address ${advertise} is loopback but etcd is on another host: processes on other hosts cannot reach this one (set --advertise-address)`;
  }
  return plan;
}

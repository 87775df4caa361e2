import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import type { CertFiles } from './certs.js';
import { freePort } from './ports.js';
import { ManagedProcess, runDir } from './process.js';
import { waitFor } from './wait.js';

/** Options of a single-member etcd. */
export interface EtcdOptions {
  /** Data directory; a fresh temp dir when omitted (removed by `destroy`). */
  dataDir?: string;
  /** Directory for the log file; defaults to the parent of the data dir. */
  logDir?: string;
  clientPort?: number;
  name?: string;
  /** Address it listens on and advertises (default 127.0.0.1), e.g. one inside a network namespace. */
  host?: string;
  /** A command it runs under, e.g. ['ip', 'netns', 'exec', 'ns1'] (it must exec etcd, keeping the pid). */
  wrap?: string[];
  /** More etcd flags, e.g. ['--auth-token-ttl', '2']. */
  extraArgs?: string[];
  /**
   * Serve clients over TLS (https URLs) with this server certificate, and
   * require client certificates signed by `ca` (`--client-cert-auth`);
   * `probe` is the client certificate the health check presents.
   */
  tls?: { ca: string; server: CertFiles; probe: CertFiles };
}

/** etcd's flags for TLS client connections that require a client certificate. */
function tlsArgs(tls: NonNullable<EtcdOptions['tls']>): string[] {
  return ['--cert-file', tls.server.cert, '--key-file', tls.server.key, '--trusted-ca-file', tls.ca, '--client-cert-auth'];
}

/** True when the `etcd` binary is on PATH. */
export function etcdInstalled(): boolean {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The flags of one etcd member on `host` (loopback by default; quiet logs: warnings and errors only). */
function etcdArgs(name: string, dataDir: string, clientPort: number, peerPort: number, initialCluster: string, host = '127.0.0.1', scheme = 'http'): string[] {
  const client = `${scheme}://${host}:${clientPort}`;
  const peer = `http://${host}:${peerPort}`;
  return [
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', client,
    '--advertise-client-urls', client,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', initialCluster,
    '--logger', 'zap',
    '--log-level', 'warn',
  ];
}

/**
 * A real etcd (Debian's etcd-server) on free loopback ports with its own data
 * dir. It can be stopped and started again on the same ports and data, to
 * test what happens while etcd is away.
 */
export class EtcdServer {
  readonly process: ManagedProcess;
  private readonly ownsDir: boolean;

  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
    logDir: string,
    name: string,
    ownsDir: boolean,
    readonly host = '127.0.0.1',
    wrap: string[] = [],
    extraArgs: string[] = [],
    readonly tls?: EtcdOptions['tls'],
  ) {
    this.ownsDir = ownsDir;
    const scheme = tls ? 'https' : 'http';
    const args = [...etcdArgs(name, dataDir, clientPort, peerPort, `${name}=http://${host}:${peerPort}`, host, scheme), ...(tls ? tlsArgs(tls) : []), ...extraArgs];
    const [command, ...pre] = [...wrap, 'etcd'];
    this.process = new ManagedProcess(`etcd-${name}`, command!, [...pre, ...args], {
      logFile: path.join(logDir, `etcd-${name}.log`),
    });
  }

  /** Starts a new etcd and waits until it serves requests. */
  static async start(opts: EtcdOptions = {}): Promise<EtcdServer> {
    const ownsDir = opts.dataDir === undefined;
    const dataDir = opts.dataDir ?? path.join(runDir('berth-etcd-'), 'data');
    const logDir = opts.logDir ?? path.dirname(dataDir);
    const clientPort = opts.clientPort ?? (await freePort());
    let peerPort = await freePort();
    while (peerPort === clientPort) peerPort = await freePort();
    const etcd = new EtcdServer(dataDir, clientPort, peerPort, logDir, opts.name ?? 'berth', ownsDir, opts.host, opts.wrap, opts.extraArgs, opts.tls);
    await etcd.start();
    return etcd;
  }

  /** Client URL, e.g. http://127.0.0.1:23790 (https with TLS). */
  get endpoint(): string {
    return `${this.tls ? 'https' : 'http'}://${this.host}:${this.clientPort}`;
  }

  /** etcd's /health: true when it serves requests (with auth on, too: etcd counts a refused probe read as healthy). */
  private async health(): Promise<boolean> {
    if (this.tls === undefined) {
      const res = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      return ((await res.json()) as { health?: string }).health === 'true';
    }
    const { ca, probe } = this.tls;
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.get(
        `${this.endpoint}/health`,
        { ca: fs.readFileSync(ca), cert: fs.readFileSync(probe.cert), key: fs.readFileSync(probe.key), timeout: 1000 },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve(text)).on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out'))).on('error', reject);
    });
    return (JSON.parse(body) as { health?: string }).health === 'true';
  }

  /** (Re)starts the process on the same ports and data, and waits until healthy. */
  async start(): Promise<void> {
    this.process.start();
    await waitFor(
      async () => {
        if (!this.process.running) throw new Error(`etcd exited: ${this.process.recentOutput(10)}`);
        return this.health();
      },
      { what: `etcd on ${this.endpoint} to become healthy`, timeoutMs: 20_000 },
    );
  }

  /** Stops etcd (SIGTERM); data stays for a later `start`. */
  stop(): Promise<void> {
    return this.process.stop('SIGTERM');
  }

  /** Stops etcd and removes its data dir if it made it. */
  async destroy(): Promise<void> {
    await this.process.stop('SIGKILL');
    if (this.ownsDir) fs.rmSync(path.dirname(this.dataDir), { recursive: true, force: true });
  }
}

/** One member of an {@link EtcdCluster}. */
export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  process: ManagedProcess;
}

/** Options of a multi-member etcd. */
export interface EtcdClusterOptions {
  /** Members (default 3). */
  size?: number;
  /** Directory for the members' data dirs and logs; a temp dir when omitted (removed by `destroy`). */
  dir?: string;
}

/**
 * A real etcd cluster of N members (Debian's etcd-server) on free loopback
 * ports, each with its own data dir, so a test can kill one member (the
 * others keep quorum) and start it again on the same ports and data.
 */
export class EtcdCluster {
  private constructor(
    readonly dir: string,
    readonly members: EtcdMember[],
    private readonly ownsDir: boolean,
  ) {}

  static async start(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const size = opts.size ?? 3;
    const ownsDir = opts.dir === undefined;
    const dir = opts.dir ?? runDir('berth-etcd-cluster-');
    const ports = new Set<number>();
    while (ports.size < size * 2) ports.add(await freePort());
    const [...all] = ports;
    const token = `berth-${path.basename(dir)}`;
    const names = Array.from({ length: size }, (_, i) => `m${i + 1}`);
    const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${all[size + i]}`).join(',');
    const members = names.map((name, i): EtcdMember => {
      const clientPort = all[i]!;
      const peerPort = all[size + i]!;
      const dataDir = path.join(dir, `${name}-data`);
      const proc = new ManagedProcess(
        `etcd-${name}`,
        'etcd',
        [...etcdArgs(name, dataDir, clientPort, peerPort, initialCluster), '--initial-cluster-state', 'new', '--initial-cluster-token', token],
        { logFile: path.join(dir, `etcd-${name}.log`) },
      );
      return { name, clientPort, peerPort, dataDir, process: proc };
    });
    const cluster = new EtcdCluster(dir, members, ownsDir);
    // The members need each other for a first quorum: start all, then wait for each.
    for (const m of members) m.process.start();
    try {
      await Promise.all(members.map((m) => cluster.waitHealthy(m)));
    } catch (err) {
      await cluster.destroy().catch(() => undefined);
      throw err;
    }
    return cluster;
  }

  /** Client URL of each member. */
  get endpoints(): string[] {
    return this.members.map((m) => `http://127.0.0.1:${m.clientPort}`);
  }

  /** The member by name (m1, m2, ...). */
  member(name: string): EtcdMember {
    const m = this.members.find((x) => x.name === name);
    if (m === undefined) throw new Error(`no etcd member ${name}`);
    return m;
  }

  /** True when the member answers its /health with true (it is up and the cluster has a leader). */
  async healthy(m: EtcdMember, timeoutMs = 1000): Promise<boolean> {
    try {
      const res = await fetch(`http://127.0.0.1:${m.clientPort}/health`, { signal: AbortSignal.timeout(timeoutMs) });
      return ((await res.json()) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }

  /** Waits until the member is healthy. */
  async waitHealthy(m: EtcdMember, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      async () => {
        if (!m.process.running) throw new Error(`etcd member ${m.name} exited: ${m.process.recentOutput(10)}`);
        return this.healthy(m);
      },
      { what: `etcd member ${m.name} on port ${m.clientPort} to become healthy`, timeoutMs, intervalMs: 100 },
    );
  }

  /** Starts a stopped member again on its ports and data, and waits until it is healthy. */
  async restart(m: EtcdMember, timeoutMs = 30_000): Promise<void> {
    m.process.start();
    await this.waitHealthy(m, timeoutMs);
  }

  /** Stops every member and removes the directory if this cluster made it. */
  async destroy(): Promise<void> {
    await Promise.all(this.members.map((m) => m.process.stop('SIGKILL')));
    if (this.ownsDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

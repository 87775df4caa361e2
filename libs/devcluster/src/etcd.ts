import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { freePort } from './ports.js';
import { ManagedProcess } from './process.js';
import { waitFor } from './wait.js';

/** Options of a single-member etcd. */
export interface EtcdOptions {
  /** Data directory; a fresh temp dir when omitted (removed by `destroy`). */
  dataDir?: string;
  /** Directory for the log file; defaults to the parent of the data dir. */
  logDir?: string;
  clientPort?: number;
  name?: string;
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
  ) {
    this.ownsDir = ownsDir;
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    this.process = new ManagedProcess(
      `etcd-${name}`,
      'etcd',
      [
        '--name', name,
        '--data-dir', dataDir,
        '--listen-client-urls', client,
        '--advertise-client-urls', client,
        '--listen-peer-urls', peer,
        '--initial-advertise-peer-urls', peer,
        '--initial-cluster', `${name}=${peer}`,
        '--logger', 'zap',
        '--log-level', 'warn',
      ],
      { logFile: path.join(logDir, `etcd-${name}.log`) },
    );
  }

  /** Starts a new etcd and waits until it serves requests. */
  static async start(opts: EtcdOptions = {}): Promise<EtcdServer> {
    const ownsDir = opts.dataDir === undefined;
    const dataDir = opts.dataDir ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'berth-etcd-')), 'data');
    const logDir = opts.logDir ?? path.dirname(dataDir);
    const clientPort = opts.clientPort ?? (await freePort());
    let peerPort = await freePort();
    while (peerPort === clientPort) peerPort = await freePort();
    const etcd = new EtcdServer(dataDir, clientPort, peerPort, logDir, opts.name ?? 'berth', ownsDir);
    await etcd.start();
    return etcd;
  }

  /** Client URL, e.g. http://127.0.0.1:23790. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  /** (Re)starts the process on the same ports and data, and waits until healthy. */
  async start(): Promise<void> {
    this.process.start();
    await waitFor(
      async () => {
        if (!this.process.running) throw new Error(`etcd exited: ${this.process.recentOutput(10)}`);
        const res = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        return body.health === 'true';
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

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the repository (this file lives in libs/devcluster/dist). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The command and leading arguments that run node, under `wrap` when given. */
export function nodeCommand(wrap: string[] | undefined): [string, string[]] {
  if (wrap === undefined || wrap.length === 0) return [process.execPath, []];
  return [wrap[0]!, [...wrap.slice(1), process.execPath]];
}

const live = new Set<ManagedProcess>();
process.once('exit', () => {
  // Last resort: never leave a child behind, even when a test crashes.
  for (const p of live) p.killNow();
});

/**
 * Makes SIGINT/SIGTERM of this process kill every managed child first (Node
 * skips 'exit' handlers when a signal ends it). For tests and benchmarks;
 * `npm start` installs its own orderly shutdown instead.
 */
export function killChildrenOnSignals(): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const p of live) p.killNow();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/** Options of a managed child process. */
export interface ProcessOptions {
  env?: Record<string, string>;
  /** Where stdout and stderr go (appended). */
  logFile: string;
  cwd?: string;
}

/**
 * A child process that the dev cluster, tests and benchmarks start: output to
 * a log file, an in-memory tail for failure messages, signal helpers, and a
 * registry so nothing outlives the parent.
 */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<number | null> = Promise.resolve(null);
  private tail: string[] = [];
  /** Exit code or signal of the last run, once it exited. */
  exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly name: string,
    readonly command: string,
    readonly args: string[],
    readonly opts: ProcessOptions,
  ) {}

  /** (Re)starts the process. */
  start(): this {
    if (this.running) throw new Error(`${this.name} is already running`);
    fs.mkdirSync(path.dirname(this.opts.logFile), { recursive: true });
    const log = fs.createWriteStream(this.opts.logFile, { flags: 'a' });
    const child = spawn(this.command, this.args, {
      cwd: this.opts.cwd ?? repoRoot,
      env: { ...process.env, ...this.opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a Ctrl-C in the terminal reaches only the parent, which stops children in order.
      detached: true,
    });
    this.child = child;
    this.exitStatus = undefined;
    this.tail = [];
    live.add(this);
    const collect = (chunk: Buffer) => {
      log.write(chunk);
      this.tail.push(chunk.toString('utf8'));
      if (this.tail.length > 200) this.tail.splice(0, this.tail.length - 200);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        live.delete(this);
        log.end();
        resolve(code);
      });
    });
    return this;
  }

  /** The OS process id of the current run. */
  get pid(): number {
    if (this.child?.pid === undefined) throw new Error(`${this.name} has no pid`);
    return this.child.pid;
  }

  /** True while the current run has not exited. */
  get running(): boolean {
    return this.child !== undefined && this.exitStatus === undefined;
  }

  /** The last output lines, for error messages. */
  recentOutput(lines = 40): string {
    return this.tail.join('').split('\n').slice(-lines).join('\n');
  }

  /** Sends a signal (no-op when not running). */
  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child?.kill(sig);
  }

  /** Resolves with the exit code when the current run ends. */
  waitExit(): Promise<number | null> {
    return this.exitPromise;
  }

  /** Sends `sig` and waits for the exit; escalates to SIGKILL after `graceMs`. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child?.kill('SIGCONT');
    this.child?.kill(sig);
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }

  /** Synchronous SIGKILL, for exit handlers. */
  killNow(): void {
    try {
      this.child?.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/**
 * A new temporary directory for a run's logs and data, passable (not
 * listable) by other users: a root agent runs each pod as its own user, and
 * refuses a data dir those users could not reach. (`mkdtemp` alone makes it 0700.)
 */
export function runDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o711);
  return dir;
}

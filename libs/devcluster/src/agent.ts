import path from 'node:path';
import { ManagedProcess, nodeCommand, repoRoot } from './process.js';
import { waitFor } from './wait.js';

/** Options of an agent process. */
export interface AgentProcessOptions {
  name: string;
  etcd: string;
  logDir: string;
  cpu?: number;
  memoryMiB?: number;
  runtime?: 'process' | 'simulated' | 'docker';
  /** Extra flags, e.g. ['--simulate', '1000']. */
  extraArgs?: string[];
  env?: Record<string, string>;
  /** A command the agent runs under, e.g. ['ip', 'netns', 'exec', 'ns1'] (it must exec node, keeping the pid). */
  wrap?: string[];
  /** `--data-dir` (pods' working directories, logs); default `<logDir>/agent-<name>-data`. */
  dataDir?: string;
}

/** A real `berth-agent` process. */
export class AgentProcess {
  readonly process: ManagedProcess;

  constructor(readonly opts: AgentProcessOptions) {
    const [command, pre] = nodeCommand(opts.wrap);
    this.process = new ManagedProcess(
      `agent-${opts.name}`,
      command,
      [
        ...pre,
        path.join(repoRoot, 'apps/agent/dist/main.js'),
        '--etcd', opts.etcd,
        '--name', opts.name,
        '--cpu', String(opts.cpu ?? 2),
        '--memory-mib', String(opts.memoryMiB ?? 2048),
        '--runtime', opts.runtime ?? 'process',
        '--data-dir', opts.dataDir ?? path.join(opts.logDir, `agent-${opts.name}-data`),
        ...(opts.extraArgs ?? []),
      ],
      { logFile: path.join(opts.logDir, `agent-${opts.name}.log`), ...(opts.env ? { env: opts.env } : {}) },
    );
  }

  get name(): string {
    return this.opts.name;
  }

  /** Starts the agent and waits until it logs that it runs. */
  async start(): Promise<this> {
    this.process.start();
    await waitFor(
      () => {
        if (!this.process.running) throw new Error(`agent ${this.name} exited: ${this.process.recentOutput(20)}`);
        return this.process.recentOutput(200).includes('"msg":"agent running"');
      },
      { what: `agent ${this.name} to register`, timeoutMs: 60_000 },
    );
    return this;
  }
}

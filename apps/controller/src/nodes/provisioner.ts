import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import type { Provisioner as ProvisionRecord, Resources, RuntimeKind } from '@berth/core';

/** What to start: one agent for one node. */
export interface AgentLaunch {
  nodeId: string;
  name: string;
  resources: Resources;
  runtime: RuntimeKind;
  labels: Record<string, string>;
  etcd: string[];
  /** The agent's etcd credential flags (file paths: a docker-mode agent gets each file mounted read-only at the same path). */
  etcdArgs?: string[];
}

/** The agent's entry point in this checkout (process mode) and in the image (docker mode). */
const localAgentMain = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../agent/dist/main.js');
/** Berth's image picks the program from its first argument (deploy/docker/entrypoint.sh). */
const imageAgentCommand = 'agent';

function agentArgs(l: AgentLaunch): string[] {
  const args = ['--etcd', l.etcd.join(','), ...(l.etcdArgs ?? []), '--name', l.name, '--cpu', String(l.resources.cpu), '--memory-mib', String(l.resources.memoryMiB), '--runtime', l.runtime];
  const labels = Object.entries(l.labels).map(([k, v]) => `${k}=${v}`).join(',');
  return labels ? [...args, '--labels', labels] : args;
}

/** The files the agent's etcd flags name (every value after a flag that ends in -file, -ca, -cert or -key). */
function credentialFiles(l: AgentLaunch): string[] {
  const args = l.etcdArgs ?? [];
  return args.filter((_, i) => i > 0 && /^--etcd-(password-file|ca|cert|key)$/.test(args[i - 1]!));
}

/**
 * Starts and removes node agents for `POST /v1/nodes`: adding a node starts
 * the agent that becomes it. With a reachable Docker engine and the
 * Berth image, a container with host networking, the node's CPU and memory
 * as limits and the label `berth.node=<id>`; otherwise a detached
 * child-process agent. Both outlive the replica that started them.
 */
export class NodeProvisioner {
  private readonly docker: Docker;

  constructor(
    private readonly replicaId: string,
    private readonly image: string,
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {
    // dockerode reads DOCKER_HOST (unix:// or tcp://) like the docker CLI.
    this.docker = new Docker();
  }

  /** 'docker' when the engine answers and has the agent image, else 'process'. */
  async mode(): Promise<'docker' | 'process'> {
    try {
      await this.docker.ping();
      await this.docker.getImage(this.image).inspect();
      return 'docker';
    } catch {
      return 'process';
    }
  }

  /** Starts the agent; returns how to find it again. */
  async launch(l: AgentLaunch): Promise<ProvisionRecord> {
    const mode = await this.mode();
    return mode === 'docker' ? this.launchContainer(l) : this.launchProcess(l);
  }

  private async launchContainer(l: AgentLaunch): Promise<ProvisionRecord> {
    const container = await this.docker.createContainer({
      name: `berth-node-${l.name}-${l.nodeId}`,
      Image: this.image,
      Cmd: [imageAgentCommand, ...agentArgs(l)],
      Labels: { 'berth.node': l.nodeId, 'berth.node.name': l.name, 'berth.provisioned-by': this.replicaId },
      HostConfig: {
        NetworkMode: 'host',
        NanoCpus: Math.round(l.resources.cpu * 1e9),
        Memory: l.resources.memoryMiB * 1024 * 1024,
        RestartPolicy: { Name: 'unless-stopped' },
        Binds: credentialFiles(l).map((f) => `${f}:${f}:ro`),
      },
    });
    await container.start();
    this.log.info({ node: l.name, container: container.id }, 'node container started');
    return { kind: 'docker', by: this.replicaId, host: os.hostname(), containerId: container.id };
  }

  private async launchProcess(l: AgentLaunch): Promise<ProvisionRecord> {
    const logFile = path.join(this.dataDir, 'nodes', `${l.name}-${l.nodeId}.log`);
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    const out = fs.openSync(logFile, 'a');
    const child = spawn(process.execPath, [localAgentMain, ...agentArgs(l)], { detached: true, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const pid = child.pid;
    child.unref();
    if (pid === undefined) throw new Error('could not start the agent process');
    this.log.info({ node: l.name, pid, logFile }, 'node agent process started');
    return { kind: 'process', by: this.replicaId, host: os.hostname(), pid, logFile };
  }

  /** The last lines the agent printed, for error messages. */
  async output(p: ProvisionRecord, lines = 15): Promise<string> {
    try {
      if (p.kind === 'docker' && p.containerId) {
        const buf = (await this.docker.getContainer(p.containerId).logs({ stdout: true, stderr: true, tail: lines })) as unknown as Buffer;
        return demux(buf);
      }
      if (p.logFile) return fs.readFileSync(p.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      /* nothing to show */
    }
    return '';
  }

  /** Stops and removes the agent (SIGTERM first, so it deregisters). Absent is fine. */
  async remove(p: ProvisionRecord): Promise<void> {
    if (p.kind === 'docker' && p.containerId) {
      const c = this.docker.getContainer(p.containerId);
      // Already stopped (304) or gone (404): the forced removal below settles either.
      await c.stop({ t: 5 }).catch(() => undefined);
      await c.remove({ force: true }).catch((err: { statusCode?: number }) => {
        if (err.statusCode !== 404) throw err;
      });
      this.log.info({ container: p.containerId }, 'node container removed');
      return;
    }
    if (p.kind === 'process' && p.pid !== undefined) {
      if (p.host !== os.hostname()) throw new Error(`node agent pid ${p.pid} runs on ${p.host}; stop it there`);
      await stopPid(p.pid, 5000);
      this.log.info({ pid: p.pid }, 'node agent process stopped');
    }
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the pid is gone. */
async function stopPid(pid: number, graceMs: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive()) process.kill(pid, 'SIGKILL');
}

/** Docker's multiplexed log format: 8-byte headers per frame. */
function demux(buf: Buffer): string {
  let out = '';
  for (let i = 0; i + 8 <= buf.length; ) {
    const size = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + size).toString('utf8');
    i += 8 + size;
  }
  return out;
}

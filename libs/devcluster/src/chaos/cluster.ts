import fs from 'node:fs';
import path from 'node:path';
import { AgentProcess } from '../agent.js';
import { ControllerProcess } from '../controller.js';
import { EtcdCluster } from '../etcd.js';
import type { ManagedProcess } from '../process.js';
import { TcpProxy } from '../proxy.js';
import { waitFor } from '../wait.js';
import { freeSubnets, NetnsLink } from './netns.js';

/*
 * The cluster a chaos run breaks: a 3-member etcd, three controllers, three
 * process-runtime agents and one agent simulating several nodes. Every
 * controller and agent reaches etcd only through proxies of its own (one per
 * member), so one agent can be cut off loudly (connections closed) and
 * everyone can be slowed down; one agent and one controller live in network
 * namespaces of their own, reaching their proxies over a veth on the host, so
 * they can be cut off silently (packets dropped).
 */

export interface ChaosClusterOptions {
  dir: string;
  /** Nodes the simulated agent runs. */
  simulate: number;
  /** Whether to put p3 and c3 in network namespaces (needs root). */
  netns: boolean;
  leaseTtl: number;
  heartbeatTtl: number;
  nodeGrace: number;
  agentArgs: string[];
  controllerArgs: string[];
  /** Called when a process exits that nobody asked to stop. */
  onCrash: (name: string, detail: string) => void;
}

/** An agent of the chaos cluster. */
export interface ChaosAgent {
  name: string;
  agent: AgentProcess;
  proxies: TcpProxy[];
  link: NetnsLink | undefined;
  simulated: boolean;
  /** Names of its nodes. */
  nodes: string[];
}

/** A controller of the chaos cluster. */
export interface ChaosController {
  id: string;
  controller: ControllerProcess;
  proxies: TcpProxy[];
  link: NetnsLink | undefined;
}

export class ChaosCluster {
  readonly agents: ChaosAgent[] = [];
  readonly controllers: ChaosController[] = [];
  readonly links: NetnsLink[] = [];
  /** Every pid any run of an agent had -> that agent's node name (process agents only). */
  private readonly agentPids = new Map<number, string>();
  /** Processes expected to exit (signalled by the run). */
  private readonly expected = new Set<ManagedProcess>();
  private stopping = false;

  private constructor(
    readonly opts: ChaosClusterOptions,
    readonly etcd: EtcdCluster,
  ) {}

  static async start(opts: ChaosClusterOptions): Promise<ChaosCluster> {
    const etcd = await EtcdCluster.start({ dir: path.join(opts.dir, 'etcd') });
    const c = new ChaosCluster(opts, etcd);
    try {
      await c.build();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  private async proxiesFor(listenHost: string): Promise<TcpProxy[]> {
    return Promise.all(this.etcd.members.map((m) => TcpProxy.start(m.clientPort, '127.0.0.1', listenHost)));
  }

  private async build(): Promise<void> {
    const o = this.opts;
    if (o.netns) {
      const subnets = freeSubnets(2);
      this.links.push(NetnsLink.create(0, subnets[0]!), NetnsLink.create(1, subnets[1]!));
    }
    const [agentLink, controllerLink] = this.links;
    const controllerArgs = ['--node-grace', String(o.nodeGrace), ...o.controllerArgs];
    for (const id of ['c1', 'c2', 'c3']) {
      const link = id === 'c3' ? controllerLink : undefined;
      const proxies = await this.proxiesFor(link?.hostIp ?? '127.0.0.1');
      const controller = await ControllerProcess.start({
        id,
        etcd: proxies.map((p) => p.endpoint).join(','),
        logDir: o.dir,
        leaseTtl: o.leaseTtl,
        extraArgs: controllerArgs,
        // Auth on, as in production: c3 listens beyond loopback, which needs it.
        adminTokenFile: this.adminTokenFile,
        // Listening on its end of the veth, it advertises that address too.
        ...(link === undefined ? {} : { host: link.nsIp, wrap: link.wrap }),
      });
      const c: ChaosController = { id, controller, proxies, link };
      this.controllers.push(c);
      this.supervise(controller.process, () => this.startController(c));
    }
    const agentArgs = ['--heartbeat-ttl', String(o.heartbeatTtl), ...o.agentArgs];
    const specs: Array<{ name: string; link?: NetnsLink; simulated: boolean }> = [
      { name: 'p1', simulated: false },
      { name: 'p2', simulated: false },
      { name: 'p3', simulated: false, ...(agentLink === undefined ? {} : { link: agentLink }) },
      { name: 'sim', simulated: true },
    ];
    for (const s of specs) {
      const proxies = await this.proxiesFor(s.link?.hostIp ?? '127.0.0.1');
      const agent = new AgentProcess({
        name: s.name,
        etcd: proxies.map((p) => p.endpoint).join(','),
        logDir: o.dir,
        cpu: s.simulated ? 2 : 3,
        memoryMiB: 4096,
        runtime: s.simulated ? 'simulated' : 'process',
        extraArgs: [
          ...agentArgs,
          '--labels', `chaos=${s.simulated ? 'sim' : 'process'}`,
          ...(s.simulated ? ['--simulate', String(o.simulate)] : []),
          ...(s.link === undefined ? [] : ['--host', s.link.nsIp]),
        ],
        ...(s.link === undefined ? {} : { wrap: s.link.wrap }),
      });
      const nodes = s.simulated ? Array.from({ length: o.simulate }, (_, i) => `${s.name}-${i}`) : [s.name];
      const a: ChaosAgent = { name: s.name, agent, proxies, link: s.link, simulated: s.simulated, nodes };
      this.agents.push(a);
      await this.startAgent(a);
    }
  }

  /** Starts (or restarts) an agent and remembers its pid for attributing pod processes. */
  async startAgent(a: ChaosAgent): Promise<void> {
    this.expected.delete(a.agent.process);
    try {
      await a.agent.start();
    } finally {
      if (!a.simulated && a.agent.process.running) this.agentPids.set(a.agent.process.pid, a.name);
    }
    this.supervise(a.agent.process, () => this.startAgent(a));
  }

  /** Restarts a controller the run stopped. */
  async startController(c: ChaosController): Promise<void> {
    this.expected.delete(c.controller.process);
    await c.controller.start();
    this.supervise(c.controller.process, () => this.startController(c));
  }

  /** Reports an exit nobody asked for, and starts the process again. */
  private supervise(p: ManagedProcess, restart: () => Promise<unknown>): void {
    const pid = p.pid;
    void p.waitExit().then(async () => {
      if (this.stopping || this.expected.has(p) || p.running) return;
      const status = p.exitStatus;
      this.opts.onCrash(p.name, `pid ${pid} exited (${status?.signal ?? `code ${status?.code}`}); last output:\n${p.recentOutput(15)}`);
      await new Promise((r) => setTimeout(r, 1000));
      if (!this.stopping && !p.running) await restart().catch(() => undefined);
    });
  }

  /** Signals a process the run means to stop or kill (it is not reported as a crash). */
  signal(p: ManagedProcess, sig: NodeJS.Signals): void {
    if (sig === 'SIGKILL' || sig === 'SIGTERM') this.expected.add(p);
    p.signal(sig);
  }

  /** Node name of the process agent that had this pid. */
  nodeOfPid(pid: number): string | undefined {
    const now = this.agents.find((a) => !a.simulated && a.agent.process.running && a.agent.process.pid === pid);
    return now?.name ?? this.agentPids.get(pid);
  }

  controller(id: string): ChaosController {
    const c = this.controllers.find((x) => x.id === id);
    if (c === undefined) throw new Error(`no controller ${id}`);
    return c;
  }

  /** API URLs of the controllers that run and are not partitioned. */
  /** The replicas' bootstrap admin token file (made by the first to start). */
  get adminTokenFile(): string {
    return path.join(this.opts.dir, 'admin-token');
  }

  /** The admin token the load sends. */
  adminToken(): string {
    return fs.readFileSync(this.adminTokenFile, 'utf8').trim();
  }

  reachableControllers(): string[] {
    return this.controllers.filter((c) => c.controller.process.running && !c.link?.partitioned).map((c) => c.controller.url);
  }

  /** Every proxy of every client (for a slow etcd). */
  get allProxies(): TcpProxy[] {
    return [...this.controllers.flatMap((c) => c.proxies), ...this.agents.flatMap((a) => a.proxies)];
  }

  /** Waits until every controller answers /healthz. */
  async waitControllersUp(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      async () => {
        const ok = await Promise.all(
          this.controllers.map(async (c) => c.controller.process.running && (await fetch(`${c.controller.url}/healthz`, { signal: AbortSignal.timeout(1000) })).ok),
        );
        return ok.every(Boolean);
      },
      { what: 'every controller to answer /healthz', timeoutMs, intervalMs: 200 },
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const l of this.links) if (l.partitioned) l.heal();
    await Promise.all(this.agents.map((a) => a.agent.process.stop('SIGTERM', 3000)));
    await Promise.all(this.controllers.map((c) => c.controller.process.stop('SIGTERM', 3000)));
    await Promise.all(this.allProxies.map((p) => p.close()));
    await this.etcd.destroy();
    for (const l of this.links) l.destroy();
  }
}

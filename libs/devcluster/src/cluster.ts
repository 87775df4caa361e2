import fs from 'node:fs';
import path from 'node:path';
import { ControllerProcess } from './controller.js';
import { EtcdServer } from './etcd.js';
import { runDir } from './process.js';
import { waitFor } from './wait.js';

/** Options of a local HA cluster. */
export interface LocalClusterOptions {
  controllers?: number;
  /**
   * Election lease TTL in seconds; 2 when omitted (etcd's minimum), so tests
   * and benchmarks fail over fast. Controllers started otherwise use the
   * product default (DEFAULT_LEADER_LEASE_TTL_SECONDS), which tolerates a slower etcd.
   */
  leaseTtl?: number;
  /** Directory for etcd data and logs; a temp dir when omitted. */
  dir?: string;
  /** Fixed API ports (else free ports). */
  ports?: number[];
  /** Use this etcd instead of starting one. */
  etcd?: EtcdServer;
  /** URL the controllers reach etcd at, when not its own (e.g. a `TcpProxy` in front of it). */
  etcdEndpoint?: string;
  /** Extra controller flags, e.g. ['--node-grace', '3']. */
  controllerArgs?: string[];
  /** Extra controller environment. */
  controllerEnv?: Record<string, string>;
  /** A command the controllers run under (it must exec node with the arguments it is given), e.g. to add `--cpu-prof`. */
  controllerWrap?: string[];
  /** `--admin-token-file` for every replica (auth on; created by whichever starts first). */
  adminTokenFile?: string;
}

/** etcd plus N controller replicas as real processes: used by `npm start`, the tests and the benchmarks. */
export class LocalCluster {
  private constructor(
    readonly dir: string,
    readonly etcd: EtcdServer,
    readonly controllers: ControllerProcess[],
    private readonly ownsEtcd: boolean,
  ) {}

  static async start(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
    const dir = opts.dir ?? runDir('berth-cluster-');
    const etcd = opts.etcd ?? (await EtcdServer.start({ dataDir: path.join(dir, 'etcd'), logDir: dir }));
    const n = opts.controllers ?? 3;
    const started = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        ControllerProcess.start({
          id: `c${i + 1}`,
          etcd: opts.etcdEndpoint ?? etcd.endpoint,
          logDir: dir,
          leaseTtl: opts.leaseTtl ?? 2,
          ...(opts.controllerArgs ? { extraArgs: opts.controllerArgs } : {}),
          ...(opts.controllerEnv ? { env: opts.controllerEnv } : {}),
          ...(opts.controllerWrap ? { wrap: opts.controllerWrap } : {}),
          ...(opts.adminTokenFile === undefined ? {} : { adminTokenFile: opts.adminTokenFile }),
          ...(opts.ports?.[i] === undefined ? {} : { port: opts.ports[i] }),
        }),
      ),
    );
    const failed = started.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      // The caller gets no cluster to stop: the replicas that did start must not outlive this call.
      await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.process.stop('SIGTERM') : undefined)));
      if (opts.etcd === undefined) await etcd.destroy();
      throw failed.reason;
    }
    const controllers = started.map((r) => (r as PromiseFulfilledResult<ControllerProcess>).value);
    return new LocalCluster(dir, etcd, controllers, opts.etcd === undefined);
  }

  /** Replicas whose process is running. */
  get running(): ControllerProcess[] {
    return this.controllers.filter((c) => c.process.running);
  }

  /** Replica by id. */
  controller(id: string): ControllerProcess {
    const c = this.controllers.find((x) => x.id === id);
    if (c === undefined) throw new Error(`no controller ${id}`);
    return c;
  }

  /**
   * Waits until every running replica reports the same leader (optionally one
   * that is not `excluding`) with its `since` set, and returns that leader's process.
   */
  async waitForAgreedLeader(opts: { excluding?: string; timeoutMs?: number; among?: ControllerProcess[] } = {}): Promise<ControllerProcess> {
    const id = await waitFor(
      async () => {
        const views = await Promise.all((opts.among ?? this.running).map((c) => c.leader()));
        const first = views[0];
        if (first?.leaderId == null || first.since === null || first.leaderId === opts.excluding) return undefined;
        if (!views.every((v) => v.leaderId === first.leaderId && v.term === first.term)) return undefined;
        // The holder of the oldest key must also act as leader (not an abandoned key awaiting expiry).
        const self = (await this.controller(first.leaderId).cluster()).self;
        return self.role === 'leader' && self.term === first.term ? first.leaderId : undefined;
      },
      { what: 'all replicas to agree on a leader', timeoutMs: opts.timeoutMs ?? 15_000 },
    );
    return this.controller(id);
  }

  /** Stops every replica, then etcd (and removes the temp dir it made unless `keep`). */
  async stop(keep = false): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.process.stop('SIGTERM')));
    if (!this.ownsEtcd) return;
    if (keep) await this.etcd.stop();
    else {
      await this.etcd.destroy();
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

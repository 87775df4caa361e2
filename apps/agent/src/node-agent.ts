import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import {
  errors,
  isBerthError,
  keyOf,
  nameKey,
  newId,
  type HeartbeatRecord,
  type NodeRecord,
  type NodeUsage,
  type Resources,
} from '@berth/core';
import { absent, commit, decodeJson, LeaseKeeper, modifiedAt, putJson, Repository, toBerthError, type Versioned } from '@berth/store';
import type { OwnKeyWatcher } from './own-keys.js';
import type { Runtime } from './runtime.js';

/** Agent software version reported in node records. */
export const AGENT_VERSION = '0.1.0';

/** What one node of an agent is configured with. */
export interface NodeAgentOptions {
  name: string;
  capacity: Resources;
  labels: Record<string, string>;
  runtime: Runtime;
  /** URL of the agent's API. */
  address: string;
  heartbeatTtlSeconds: number;
  reportIntervalMs: number;
  /** Reported in the node record, so the leader waits out this node's fence before declaring it Dead. */
  fenceAfterMs: number;
  forceStopMs: number;
  /** Measures usage (the host's, or the simulated runtime's). */
  usage: () => NodeUsage;
  /** The secret this agent's API requires (NodeCredential), published for controllers with each new heartbeat lease. */
  credential?: string;
}

/** Shared by every node of one agent process. */
export interface NodeAgentDeps {
  client: Etcd3;
  keeper: LeaseKeeper;
  ownKeys: OwnKeyWatcher;
  log: Logger;
  /**
   * Called when the node must stop: deleted from the cluster (`deleted`: its
   * pods must not outlive it here, the leader reschedules them), or taken
   * over by another agent (which adopts what runs).
   */
  onFatal: (nodeName: string, reason: string, deleted: boolean) => void;
  /** The node's runtime answers again after being away: its pods are looked at again. */
  onRuntimeBack?: (nodeId: string) => void;
}

/**
 * One node as its agent sees it: registers `/berth/nodes/<id>` (re-joining the
 * same id when the name exists), holds a lease of its own and keeps
 * `/berth/heartbeats/<id>` on it, and rewrites the heartbeat with usage every
 * report interval. It never writes the node's status: the leader does.
 */
export class NodeAgent {
  /** Identifies this process's hold on the node. */
  readonly instance = newId();
  /** Revision of this agent's latest heartbeat write: only a newer foreign write is a takeover. */
  private ownPutRevision = 0;
  private readonly nodes: Repository<NodeRecord>;
  private nodeId: string | undefined;
  private leaseId: string | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private reheartbeating: Promise<void> | undefined;
  private lastRuntimeReady: boolean | undefined;
  /** The node record's status is Dead (as last read or watched). */
  private dead = false;
  /** The lease the heartbeat key was last written on: only its keepalives keep the node alive in the leader's eyes. */
  private heartbeatLease: string | undefined;
  /** Send time (`performance.now()`) of the last acknowledged keepalive of `heartbeatLease`; kept when that lease is lost. */
  private ackedAt = 0;
  /** Heartbeat reports written, for benchmarks. */
  reports = 0;

  constructor(
    private readonly deps: NodeAgentDeps,
    readonly opts: NodeAgentOptions,
  ) {
    this.nodes = new Repository<NodeRecord>(deps.client, 'nodes', 'node');
  }

  /** The node id, once registered. */
  get id(): string {
    if (this.nodeId === undefined) throw new Error(`node ${this.opts.name} is not registered yet`);
    return this.nodeId;
  }

  private get log(): Logger {
    return this.deps.log;
  }

  /** Registers (or re-joins), starts heartbeating and reporting. */
  async start(): Promise<void> {
    const node = await this.register();
    this.nodeId = node.value.id;
    this.dead = node.value.status === 'Dead';
    this.deps.ownKeys.subscribe(keyOf('nodes', this.id), (type, kv) => {
      if (type === 'delete' && !this.stopped) return this.fatal('its node record was deleted from the cluster', true);
      const rec = decodeJson<NodeRecord>(kv);
      if (rec !== undefined) this.dead = rec.value.status === 'Dead';
    });
    this.deps.ownKeys.subscribe(keyOf('heartbeats', this.id), (type, kv) => {
      if (this.stopped) return;
      if (type === 'delete') return void this.reheartbeat('heartbeat key deleted');
      const hb = decodeJson<HeartbeatRecord>(kv);
      if (hb !== undefined && hb.value.instance !== this.instance && hb.modRevision > this.ownPutRevision) {
        this.fatal(`another agent (instance ${hb.value.instance}) took over node ${this.id}`);
      }
    });
    // The previous instance's key can change between our read and our write (its lease expiring
    // deletes it): read again and take it over then; a change that keeps happening is a real conflict.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.heartbeat(true);
        break;
      } catch (err) {
        if (!isBerthError(err, 'CONFLICT') || attempt >= 5 || this.stopped) throw err;
        this.log.info({ node: this.opts.name, err }, 'heartbeat changed while taking it over; reading it again');
      }
    }
    // Spread reports of many simulated nodes over the interval instead of bursts.
    const offset = Math.floor(Math.random() * this.opts.reportIntervalMs);
    this.reportTimer = setTimeout(() => {
      void this.report();
      this.reportTimer = setInterval(() => void this.report(), this.opts.reportIntervalMs);
    }, offset);
  }

  /** The node record as etcd has it. */
  record(): Promise<Versioned<NodeRecord> | undefined> {
    return this.nodes.get(this.id);
  }

  /**
   * Stops heartbeating. With `deregister`, first marks the node deregistered
   * (its pods are then treated as on a drained node) and revokes the lease so
   * the leader sees the heartbeat vanish at once.
   */
  async stop(deregister: boolean): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reportTimer);
    clearInterval(this.reportTimer);
    const leaseId = this.leaseId;
    if (!deregister || this.nodeId === undefined) {
      if (leaseId) this.deps.keeper.forget(leaseId);
      return;
    }
    // Only the agent that holds the node may deregister it (a newer agent may have taken it over).
    await this.markDeregistered();
    if (leaseId) await this.deps.keeper.revoke(leaseId);
    this.log.info({ node: this.opts.name, id: this.nodeId }, 'node deregistered');
  }

  /** Marks the node deregistered (it is leaving the cluster): the leader evicts its pods. Only the agent that holds the node may. */
  async markDeregistered(): Promise<void> {
    if (this.nodeId === undefined) return;
    const hb = await this.readHeartbeat().catch(() => undefined);
    if (hb?.value.instance === this.instance) await this.updateRecord((n) => (n.deregisteredAt ? n : { ...n, deregisteredAt: new Date().toISOString() }));
  }

  /** Stops this node for good (it was deleted, or another agent holds it) and tells the process. */
  private fatal(reason: string, deleted = false): void {
    if (this.stopped) return;
    void this.stop(false);
    this.deps.onFatal(this.opts.name, reason, deleted);
  }

  /** Re-reads the node's own keys after a watch reconnect, which may have skipped their changes. */
  async verify(): Promise<void> {
    if (this.stopped || this.nodeId === undefined) return;
    const rec = await this.nodes.get(this.id);
    if (rec === undefined) return this.fatal('its node record was deleted from the cluster', true);
    this.dead = rec.value.status === 'Dead';
    const hb = await this.readHeartbeat();
    if (hb === undefined) return this.reheartbeat('heartbeat key missing after a reconnect');
    if (hb.value.instance !== this.instance && hb.modRevision > this.ownPutRevision) this.fatal(`another agent (instance ${hb.value.instance}) took over node ${this.id}`);
  }

  /** Called by the lease keeper when etcd lost this node's lease. */
  onLeaseLost(leaseId: string): void {
    if (leaseId === this.leaseId && !this.stopped) void this.reheartbeat('lease lost');
  }

  /** The node's lease, while it holds one. */
  get lease(): string | undefined {
    return this.leaseId;
  }

  /** The node id while the node is registered, has held a heartbeat and is not stopped: what the fence watches. */
  get fenceableId(): string | undefined {
    return this.stopped || this.heartbeatLease === undefined ? undefined : this.nodeId;
  }

  /**
   * How long (ms) since the send time of the last keepalive etcd acknowledged
   * for the lease holding this node's heartbeat (`now` on the
   * `performance.now()` clock). A lease granted but not yet holding the key
   * does not count: the leader may already count from the old key's loss.
   */
  silentMs(now = performance.now()): number {
    const since = this.heartbeatLease === undefined ? undefined : this.deps.keeper.sinceAcked(this.heartbeatLease);
    if (since !== undefined) this.ackedAt = Math.max(this.ackedAt, now - since);
    return now - this.ackedAt;
  }

  /**
   * True while the node record says Dead: the leader may be moving its pods
   * elsewhere at any moment, so none may run here until it says Ready again
   * (that write also fails any unbinding the leader decided on the Dead record).
   */
  get declaredDead(): boolean {
    return this.dead;
  }

  /** True while the heartbeat key is on the lease this agent keeps alive (no re-establishing under way). */
  holdsHeartbeat(): boolean {
    const lease = this.heartbeatLease;
    return !this.stopped && lease !== undefined && lease === this.leaseId && this.reheartbeating === undefined && this.deps.keeper.alive(lease);
  }

  private async register(): Promise<Versioned<NodeRecord>> {
    const { name } = this.opts;
    const indexKey = nameKey('nodes', name);
    for (let attempt = 0; attempt < 20; attempt++) {
      const claimed = await this.deps.client.get(indexKey).string().catch((err: unknown) => {
        throw toBerthError(err);
      });
      if (claimed !== null) {
        const id = JSON.parse(claimed) as string;
        const existing = await this.nodes.get(id);
        if (existing === undefined) {
          // A name claimed for a node that no longer exists: release it, then retry.
          await commit(this.deps.client, [{ key: indexKey, target: 'Value', cmp: '==', value: claimed }], [{ type: 'delete', key: indexKey }]);
          continue;
        }
        const spec = this.specFields();
        // What the agent reports about itself is replaced whole: a field this agent does not report goes.
        const { deregisteredAt: _gone, isolation: _before, ...rest } = existing.value;
        const rejoined: NodeRecord = { ...rest, ...spec };
        try {
          const rev = await this.nodes.update(id, rejoined, existing.modRevision);
          this.log.info({ node: name, id }, 'node re-joined the cluster');
          return { ...existing, value: rejoined, modRevision: rev };
        } catch (err) {
          if (isBerthError(err, 'CONFLICT')) continue;
          throw err;
        }
      }
      const now = new Date().toISOString();
      const id = newId();
      const record: NodeRecord = {
        id,
        ...this.specFields(),
        status: 'NotReady',
        reason: 'Registering',
        statusChangedAt: now,
        cordoned: false,
        draining: false,
        registeredAt: now,
      };
      const nodeKey = keyOf('nodes', id);
      const res = await commit(this.deps.client, [absent(indexKey), absent(nodeKey)], [putJson(indexKey, id), putJson(nodeKey, record)]);
      if (res.succeeded) {
        this.log.info({ node: name, id }, 'node registered');
        return { key: nodeKey, value: record, createRevision: res.revision, modRevision: res.revision, version: 1, lease: '0' };
      }
    }
    throw new Error(`could not register node ${name}: too much contention on its name`);
  }

  private specFields(): Pick<NodeRecord, 'name' | 'labels' | 'runtime' | 'address' | 'capacity' | 'agent' | 'fence' | 'isolation'> {
    const isolation = this.opts.runtime.isolationReport?.();
    return {
      name: this.opts.name,
      labels: this.opts.labels,
      runtime: this.opts.runtime.kind,
      address: this.opts.address,
      capacity: this.opts.capacity,
      agent: { hostname: os.hostname(), pid: process.pid, startedAt: new Date().toISOString(), version: AGENT_VERSION },
      fence: { heartbeatTtlMs: this.opts.heartbeatTtlSeconds * 1000, fenceAfterMs: this.opts.fenceAfterMs, forceStopMs: this.opts.forceStopMs },
      ...(isolation === undefined ? {} : { isolation }),
    };
  }

  private async heartbeatValue(): Promise<HeartbeatRecord> {
    const runtime = this.opts.runtime.health ? await this.opts.runtime.health() : { ready: true, message: `${this.opts.runtime.kind} runtime` };
    // A runtime that is away cannot list its pods; report none rather than fail the heartbeat.
    const pods = runtime.ready ? (await this.opts.runtime.list().catch(() => [])).map((p) => p.id) : [];
    if (this.lastRuntimeReady !== runtime.ready) {
      const back = this.lastRuntimeReady === false && runtime.ready;
      this.lastRuntimeReady = runtime.ready;
      this.log[runtime.ready ? 'info' : 'warn']({ node: this.opts.name }, runtime.message);
      // What died while the runtime was away (an engine restart stops its containers) may never be reported.
      if (back) this.deps.onRuntimeBack?.(this.id);
    }
    return { nodeId: this.id, reportedAt: new Date().toISOString(), usage: this.opts.usage(), pods, instance: this.instance, runtime };
  }

  private async readHeartbeat(): Promise<Versioned<HeartbeatRecord> | undefined> {
    try {
      const kv = (await this.deps.client.get(keyOf('heartbeats', this.id)).exec()).kvs[0];
      return kv === undefined ? undefined : decodeJson<HeartbeatRecord>(kv);
    } catch (err) {
      throw toBerthError(err);
    }
  }

  /**
   * Takes a fresh lease and (re)writes the heartbeat key on it. At start the
   * agent takes the node over from a previous instance (a restart after a
   * crash); later it only re-establishes its own heartbeat, and yields if
   * another instance holds the key.
   */
  private async heartbeat(takeOver: boolean): Promise<void> {
    const key = keyOf('heartbeats', this.id);
    const previous = await this.readHeartbeat();
    if (previous && previous.value.instance !== this.instance) {
      if (!takeOver) return this.fatal(`another agent (instance ${previous.value.instance}) holds node ${this.id}`);
      this.log.warn({ node: this.opts.name, previous: previous.value.instance }, 'taking over the heartbeat of a previous agent instance');
    }
    const lease = await this.deps.keeper.grant(this.opts.heartbeatTtlSeconds);
    const old = this.leaseId;
    this.leaseId = lease;
    if (old) this.deps.keeper.forget(old);
    // Guarded on what was just read, so two agents never both believe they wrote last.
    const guard = previous === undefined ? absent(key) : modifiedAt(key, previous.modRevision);
    // The credential lives and dies with the heartbeat: no stale secret outlives the agent that made it.
    const credential = this.opts.credential === undefined ? [] : [putJson(keyOf('nodeCreds', this.id), this.opts.credential, lease)];
    const res = await commit(this.deps.client, [guard], [putJson(key, await this.heartbeatValue(), lease), ...credential]);
    if (!res.succeeded) throw errors.conflict(`heartbeat of node ${this.id} changed while taking it; retrying`);
    this.ownPutRevision = res.revision;
    // From now on this lease's keepalives are what keep the node alive for the leader.
    this.heartbeatLease = lease;
    this.silentMs();
  }

  /** Re-establishes the heartbeat after its lease or key vanished, once at a time, retrying while etcd is away. */
  private reheartbeat(why: string): Promise<void> {
    this.reheartbeating ??= (async () => {
      this.log.warn({ node: this.opts.name, why }, 're-establishing heartbeat');
      for (let delay = 100; !this.stopped; delay = Math.min(delay * 2, 2000)) {
        try {
          await this.heartbeat(false);
          return;
        } catch (err) {
          this.log.warn({ err }, 'heartbeat failed; retrying');
          await sleep(delay);
        }
      }
    })().finally(() => (this.reheartbeating = undefined));
    return this.reheartbeating;
  }

  /** Rewrites the heartbeat with fresh usage, only while it is still on this node's lease. */
  private async report(): Promise<void> {
    const lease = this.leaseId;
    if (this.stopped || lease === undefined || this.reheartbeating) return;
    const key = keyOf('heartbeats', this.id);
    try {
      const res = await commit(this.deps.client, [{ key, target: 'Lease', cmp: '==', value: lease }], [putJson(key, await this.heartbeatValue(), lease)]);
      if (res.succeeded) {
        this.reports += 1;
        this.ownPutRevision = res.revision;
      }
      else void this.reheartbeat('heartbeat key is not on our lease');
    } catch (err) {
      this.log.warn({ err }, 'usage report failed');
    }
  }

  private async updateRecord(change: (n: NodeRecord) => NodeRecord): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await this.nodes.get(this.id);
      if (cur === undefined) return;
      try {
        await this.nodes.update(this.id, change(cur.value), cur.modRevision);
        return;
      } catch (err) {
        if (!isBerthError(err, 'CONFLICT')) throw err;
      }
    }
  }
}

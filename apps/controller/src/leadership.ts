import type { LeaderRecord, LeaderView, ReplicaInfo, ReplicaView } from '@berth/core';
import type { Fence, Informer } from '@berth/store';

/** What this replica believes about its own office (the `LeaderElector` is one). */
export interface LeaderRole {
  readonly isLeader: boolean;
  readonly fence: Fence | undefined;
}

/** The caches the view reads (`ClusterState` has them). */
export interface ElectionCaches {
  readonly replicas: Informer<ReplicaInfo>;
  readonly leaderRecord: Informer<LeaderRecord>;
}

/**
 * Who leads, as etcd says: computed from the election keys in the watch
 * cache rather than from any replica's belief, so every replica gives the
 * same answer. Also this replica's own identity and role, for `/v1/cluster`
 * and the live feed.
 */
export class LeadershipView {
  constructor(
    /** This replica. */
    readonly self: ReplicaInfo,
    private readonly caches: ElectionCaches,
    private readonly role: LeaderRole,
    /** The election lease TTL every replica campaigns with. */
    readonly leaseTtlSeconds: number,
  ) {}

  /** True while this replica holds office (its own belief, fenced in etcd on every leader write). */
  get isLeader(): boolean {
    return this.role.isLeader;
  }

  /** The term this replica leads in, or null while it follows. */
  get term(): number | null {
    return this.role.fence?.term ?? null;
  }

  /** The leader as etcd says: the oldest election key, with the record it wrote once in office. */
  leaderView(): LeaderView {
    const leader = this.replicaViews().find((r) => r.leader);
    if (leader === undefined) return { leaderId: null, address: null, term: null, since: null };
    const record = this.caches.leaderRecord.list()[0]?.value;
    return {
      leaderId: leader.id,
      address: leader.address,
      term: leader.createRevision,
      // A record of an earlier term says nothing about this one.
      since: record?.term === leader.createRevision ? record.since : null,
    };
  }

  /** True when some replica holds the oldest election key. */
  hasLeader(): boolean {
    return this.caches.replicas.size > 0;
  }

  /** Every campaigning replica, oldest (the leader) first. */
  replicaViews(): ReplicaView[] {
    const keys = this.caches.replicas.list().sort((a, b) => a.createRevision - b.createRevision);
    return keys.map((kv, i) => ({
      id: kv.value.id,
      address: kv.value.address,
      pid: kv.value.pid,
      startedAt: kv.value.startedAt,
      leader: i === 0,
      electionKey: kv.key,
      createRevision: kv.createRevision,
    }));
  }
}

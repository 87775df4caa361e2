import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Campaign, Election, Etcd3, Lease } from 'etcd3';
import type { Logger } from 'pino';
import { ELECTION_NAME, ROOT, isBerthError, leaderRecordKey, type LeaderRecord, type ReplicaInfo } from '@berth/core';
import { commitFenced, putJson, type Fence } from './txn.js';
import type { EventRecorder } from './events.js';
import { RENEW_EVERY_MS, renewMarginMs } from './timing.js';

/** Options of a replica's leader elector. */
export interface ElectorOptions {
  client: Etcd3;
  /** This replica; the value of its election key. */
  replica: ReplicaInfo;
  /** Lease TTL in seconds (DEFAULT_LEADER_LEASE_TTL_SECONDS for controllers; etcd's minimum is 2). */
  ttlSeconds: number;
  log: Logger;
  events: EventRecorder;
  /**
   * Stop leading when this much of the TTL is left since the send time of
   * the last keepalive etcd acknowledged (Kubernetes' renewDeadline idea).
   * Default: `renewMarginMs(ttlSeconds)`, TTL / 8 and at least 250 ms.
   */
  renewMarginMs?: number;
}

/** Events of the elector; `elected` and `deposed` alternate strictly. */
export interface ElectorEvents {
  /**
   * This replica leads; start leader loops, and write only through `fence`.
   * The revision is that of the term's first fenced write (the leader
   * record): every earlier leader's write is at or below it.
   */
  elected: [Fence, number];
  /** This replica stopped leading (reason given); leader loops must stop now. */
  deposed: [string];
  /** A leader-only write was rejected by etcd (the fence did its job). */
  fencedRejection: [string];
}

/** etcd3 keeps a campaign's lease private; the renew deadline needs its keepalive events and resigning needs retries. */
function leaseOf(campaign: Campaign): Lease {
  return (campaign as unknown as { lease: Lease }).lease;
}

/** The renew deadline's clock: monotonic, so a wall-clock step can neither hasten nor delay a step-down. */
const clock = (): number => performance.now();

const CAMPAIGN_RETRY_MIN_MS = 100;
const CAMPAIGN_RETRY_MAX_MS = 2000;
/** Extra keepalives of a campaign lease waiting for an answer at once (see renewOften). */
const MAX_RENEWS_IN_FLIGHT = 8;

/**
 * Campaigns for leadership with etcd3's `Election` (keys
 * `/berth/election/controller/<lease>`), and decides when this replica may act
 * as leader. etcd3 only reports a lost lease after about 2 x TTL, so the
 * elector also steps down when TTL minus a margin has passed since the send
 * time of the last keepalive etcd acknowledged. A slow etcd delays those
 * acknowledgements; up to `toleratedKeepaliveRoundTripMs(ttl)` it costs
 * nothing (3 s at the default TTL). The leader's term is its election key's
 * create revision; every leader write is fenced on it.
 */
export class LeaderElector extends EventEmitter<ElectorEvents> {
  /** One Election (one namespace, one watch manager) for every campaign of this replica. */
  private election: Election | undefined;
  private campaign: Campaign | undefined;
  private current: Fence | undefined;
  private leaderSince: Date | undefined;
  private lastRenewSentAt = 0;
  private inflightKeepalives: number[] = [];
  private deadlineTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  /** The campaign whose taking of office is under way. */
  private taking: Campaign | undefined;
  private retryMs = CAMPAIGN_RETRY_MIN_MS;
  private stopped = false;
  private readonly marginMs: number;
  /** Leader-only writes etcd rejected because the fence no longer held. */
  fencedRejections = 0;
  /** Times this replica took office. */
  terms = 0;

  constructor(private readonly opts: ElectorOptions) {
    super();
    this.marginMs = opts.renewMarginMs ?? renewMarginMs(opts.ttlSeconds);
  }

  /** The fencing token while this replica leads. */
  get fence(): Fence | undefined {
    return this.current;
  }

  /** True while this replica may act as leader. */
  get isLeader(): boolean {
    return this.current !== undefined;
  }

  /** When this replica took office, while it leads. */
  get since(): Date | undefined {
    return this.leaderSince;
  }

  /** Starts campaigning. */
  start(): void {
    this.runCampaign();
  }

  /**
   * Runs `fn` with the current fence; a LEADERSHIP_LOST from it means the
   * fence failed in etcd, so the elector steps down at once.
   */
  async withFence<R>(fn: (fence: Fence) => Promise<R>): Promise<R | undefined> {
    const fence = this.current;
    if (fence === undefined) return undefined;
    try {
      return await fn(fence);
    } catch (err) {
      if (isBerthError(err, 'LEADERSHIP_LOST')) this.noteRejection(err.message, fence);
      throw err;
    }
  }

  /**
   * Gives up the current term (when leading) and campaigns again from the
   * back of the line: another replica gets the office. For a leader that
   * cannot act (its caches never caught up).
   */
  async resign(reason: string): Promise<void> {
    if (this.current !== undefined && this.campaign !== undefined) await this.abandon(this.campaign, reason);
  }

  /** Resigns (deleting the election key so another replica takes over at once) and stops campaigning. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdogTimer);
    clearInterval(this.renewTimer);
    await this.stepDown('replica shutting down', 'LeaderResigned');
    const campaign = this.campaign;
    this.campaign = undefined;
    if (campaign) await campaign.resign().catch((err: unknown) => this.opts.log.warn({ err }, 'resign failed; the lease will expire'));
  }

  private runCampaign(): void {
    if (this.stopped) return;
    const { client, replica, ttlSeconds, log } = this.opts;
    const campaignStartedAt = clock();
    this.election ??= client.namespace(ROOT).election(ELECTION_NAME, ttlSeconds);
    const campaign = this.election.campaign(JSON.stringify(replica));
    this.campaign = campaign;
    const lease = leaseOf(campaign);
    this.lastRenewSentAt = campaignStartedAt;
    this.inflightKeepalives = [];
    lease.on('keepaliveEstablished', () => {
      if (this.campaign === campaign) this.inflightKeepalives = [];
    });
    lease.on('keepaliveFired', () => {
      if (this.campaign === campaign) this.inflightKeepalives.push(clock());
    });
    lease.on('keepaliveSucceeded', () => {
      if (this.campaign !== campaign) return;
      const sentAt = this.inflightKeepalives.shift();
      if (sentAt !== undefined) this.lastRenewSentAt = Math.max(this.lastRenewSentAt, sentAt);
      this.armDeadline();
    });
    lease.on('keepaliveFailed', (err: unknown) => {
      if (this.campaign === campaign) log.warn({ err }, 'election lease keepalive failed');
    });
    campaign.on('error', (err: Error) => {
      if (this.campaign !== campaign) return;
      log.warn({ err }, 'campaign failed');
      void this.abandon(campaign, `campaign failed: ${err.message}`);
    });
    campaign.on('elected', () => {
      if (this.campaign === campaign) void this.takeOffice(campaign);
    });
    this.watch(campaign);
    this.renewOften(campaign, lease);
    log.debug('campaigning for leadership');
  }

  /**
   * etcd3 renews a campaign's lease every TTL / 3. When etcd loses its raft
   * leader, keepalives stall for an election (1-2 s) plus the client's move
   * to another member; had the last acknowledged one been sent up to TTL / 3
   * before, the renew deadline passed and the leader stepped down (chaos run:
   * a new term on every raft-leader kill). An extra keepalive every
   * RENEW_EVERY_MS keeps the last acknowledged send recent, so a stall (or a
   * round trip) of up to TTL - margin - RENEW_EVERY_MS costs no term.
   */
  private renewOften(campaign: Campaign, lease: Lease): void {
    clearInterval(this.renewTimer);
    let inflight = 0;
    this.renewTimer = setInterval(() => {
      if (this.campaign !== campaign) return clearInterval(this.renewTimer);
      // Only the leader's renew deadline needs them (a follower's campaign has etcd3's own keepalives).
      if (this.current === undefined && this.taking !== campaign) return;
      // Pipelined (a slow etcd answers each late, not each after the last), but bounded.
      if (inflight >= MAX_RENEWS_IN_FLIGHT) return;
      inflight += 1;
      const sentAt = clock();
      let counted = true;
      // A stream that never answers must not block the next attempts for good.
      const giveUp = setTimeout(() => {
        counted = false;
        inflight -= 1;
      }, MAX_RENEWS_IN_FLIGHT * RENEW_EVERY_MS);
      lease
        .keepaliveOnce()
        .then(() => {
          if (this.campaign !== campaign || sentAt <= this.lastRenewSentAt) return;
          this.lastRenewSentAt = sentAt;
          this.armDeadline();
        })
        .catch(() => undefined) // etcd3's own keepalive reports failures and a lost lease
        .finally(() => {
          clearTimeout(giveUp);
          if (counted) inflight -= 1;
        });
    }, RENEW_EVERY_MS);
    this.renewTimer.unref();
  }

  /**
   * A campaign waits for the key before its own to be deleted, through one
   * watch. When etcd loses its raft leader that watch can be reset just as
   * the key goes, and etcd3's campaign then waits for ever: every replica
   * campaigning and none elected (seen in the chaos run). So, every TTL, a
   * campaign that is not elected reads the election's first key from etcd;
   * when it has been its own key twice in a row, this replica is the leader
   * by the election's own rule (the oldest key leads) and takes office.
   */
  private watch(campaign: Campaign): void {
    clearInterval(this.watchdogTimer);
    let firstSeen = 0;
    const { client, ttlSeconds, log } = this.opts;
    this.watchdogTimer = setInterval(() => {
      if (this.campaign !== campaign) return clearInterval(this.watchdogTimer);
      if (this.current !== undefined) return void (firstSeen = 0);
      void (async () => {
        const ours = await campaign.getCampaignKey();
        // The election's prefix, as etcd3 builds it: the key without its lease id.
        const first = await client.getAll().prefix(ours.slice(0, ours.lastIndexOf('/') + 1)).sort('Create', 'Ascend').limit(1).keys();
        if (this.campaign !== campaign || this.current !== undefined) return;
        firstSeen = first[0] === ours ? firstSeen + 1 : 0;
        if (firstSeen < 2) return;
        log.warn({ key: ours }, 'this campaign holds the oldest election key but etcd3 never said so (a lost watch event): taking office');
        firstSeen = 0;
        await this.takeOffice(campaign);
      })().catch((err: unknown) => log.debug({ err }, 'could not check the election'));
    }, ttlSeconds * 1000);
    this.watchdogTimer.unref();
  }

  private async takeOffice(campaign: Campaign): Promise<void> {
    const { client, replica, log } = this.opts;
    // Both etcd3's 'elected' and the watchdog may call this: one taking of office per campaign.
    if (this.taking === campaign || this.current !== undefined) return;
    this.taking = campaign;
    try {
      const electionKey = await campaign.getCampaignKey();
      const kv = (await client.get(electionKey).exec()).kvs[0];
      if (this.campaign !== campaign) return;
      if (kv === undefined) throw new Error(`election key ${electionKey} vanished before taking office`);
      if (this.deadlinePassed()) throw new Error('lease renewal is overdue at election time');
      const fence: Fence = { electionKey, term: Number(kv.create_revision) };
      const since = new Date();
      const record: LeaderRecord = { leaderId: replica.id, address: replica.address, term: fence.term, since: since.toISOString() };
      // The first fenced write: if it fails, this replica never acted as leader.
      const { revision } = await commitFenced(client, fence, [], [putJson(leaderRecordKey, record)]);
      if (this.campaign !== campaign || this.stopped) return;
      this.current = fence;
      this.leaderSince = since;
      this.terms += 1;
      this.retryMs = CAMPAIGN_RETRY_MIN_MS;
      this.armDeadline();
      log.info({ term: fence.term, electionKey, revision }, 'elected leader');
      this.emit('elected', fence, revision);
      this.opts.events
        .recordFenced(fence, {
          type: 'Normal',
          reason: 'LeaderElected',
          message: `${replica.id} leads with term ${fence.term}`,
          involved: { kind: 'controller', id: replica.id },
        })
        .catch((err: unknown) => this.onLeaderWriteError(err, fence));
    } catch (err) {
      if (isBerthError(err, 'LEADERSHIP_LOST')) this.fencedRejections += 1;
      log.warn({ err }, 'could not take office');
      await this.abandon(campaign, 'could not take office');
    } finally {
      if (this.taking === campaign) this.taking = undefined;
    }
  }

  private onLeaderWriteError(err: unknown, fence: Fence): void {
    if (isBerthError(err, 'LEADERSHIP_LOST')) {
      this.noteRejection(err.message, fence);
    } else {
      this.opts.log.warn({ err }, 'leader write failed');
    }
  }

  private noteRejection(message: string, fence: Fence): void {
    this.fencedRejections += 1;
    this.opts.log.warn({ term: fence.term }, message);
    this.emit('fencedRejection', message);
    if (this.current === fence && this.campaign) void this.abandon(this.campaign, 'a fenced write was rejected by etcd');
  }

  /** Stops leading (if leading), drops the campaign and campaigns again after a backoff. */
  private async abandon(campaign: Campaign, reason: string): Promise<void> {
    if (this.campaign !== campaign) return;
    this.campaign = undefined;
    // Stop renewing at once: the key must not outlive this decision by more than its TTL.
    leaseOf(campaign).release();
    // Leader loops stop synchronously here; recording the step-down may wait on etcd, the next campaign must not.
    const recorded = this.stepDown(reason, 'LeaderSteppedDown');
    campaign.removeAllListeners('elected');
    campaign.on('error', () => undefined);
    this.revokeUntilGone(campaign);
    if (!this.stopped) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.runCampaign(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, CAMPAIGN_RETRY_MAX_MS);
    }
    await recorded;
  }

  /**
   * Deletes an abandoned campaign's key by revoking its lease, retrying while
   * etcd is away: a key left behind would keep every other replica waiting
   * for its lease to expire (and etcd extends leases when it restarts).
   */
  private revokeUntilGone(campaign: Campaign): void {
    const lease = leaseOf(campaign);
    const giveUpAt = Date.now() + 20 * this.opts.ttlSeconds * 1000;
    const attempt = (): void => {
      lease.revoke().catch((err: unknown) => {
        if (Date.now() > giveUpAt) return this.opts.log.warn({ err }, 'could not revoke an abandoned election lease');
        setTimeout(attempt, 250).unref();
      });
    };
    // etcd3 may have resigned the campaign itself (then resign() does nothing): always revoke the lease directly.
    campaign.resign().catch(() => undefined);
    attempt();
  }

  /**
   * Leader loops stop synchronously (the `deposed` event) before anything is
   * awaited. Then the elector records the step-down through the fence: etcd
   * accepts it only if this replica still held office, so a paused leader's
   * attempt is rejected, which is exactly what fencing is for.
   */
  private async stepDown(reason: string, eventReason: 'LeaderSteppedDown' | 'LeaderResigned'): Promise<void> {
    const fence = this.current;
    clearTimeout(this.deadlineTimer);
    if (fence === undefined) return;
    const { replica, log, events } = this.opts;
    this.current = undefined;
    this.leaderSince = undefined;
    log.warn({ term: fence.term, reason }, 'no longer leader');
    this.emit('deposed', reason);
    try {
      await events.recordFenced(fence, {
        type: eventReason === 'LeaderResigned' ? 'Normal' : 'Warning',
        reason: eventReason,
        message: `${replica.id} stopped leading term ${fence.term}: ${reason}`,
        involved: { kind: 'controller', id: replica.id },
      });
    } catch (err) {
      if (isBerthError(err, 'LEADERSHIP_LOST')) {
        this.fencedRejections += 1;
        log.warn({ term: fence.term, err }, 'step-down record rejected by the fence');
        this.emit('fencedRejection', err.message);
      } else {
        log.warn({ err }, 'could not record step-down');
      }
    }
  }

  private deadlinePassed(): boolean {
    return clock() >= this.lastRenewSentAt + this.opts.ttlSeconds * 1000 - this.marginMs;
  }

  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    if (this.current === undefined) return;
    const wait = this.lastRenewSentAt + this.opts.ttlSeconds * 1000 - this.marginMs - clock();
    this.deadlineTimer = setTimeout(() => {
      if (this.current === undefined || !this.campaign) return;
      if (!this.deadlinePassed()) return this.armDeadline();
      void this.abandon(this.campaign, `no lease renewal acknowledged for ${Math.round(clock() - this.lastRenewSentAt)} ms`);
    }, Math.max(0, wait));
  }
}

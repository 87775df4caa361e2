/*
 * Berth's clocks against etcd's, in one place (ARCHITECTURE.md, "Timing
 * against etcd").
 *
 * etcd's own timing (defaults of etcd 3.4): raft heartbeat 100 ms, election
 * timeout 1 s, so losing etcd's raft leader stalls writes and linearizable
 * reads for 1-2 s; the shortest lease etcd grants is 1.5 election timeouts
 * (2 s), so that a lease survives one raft election; a proposal times out
 * on the server after 5 s + 2 election timeouts (7 s); etcdctl gives a
 * command 5 s; the gRPC server refuses client pings more often than every 5 s.
 *
 * Berth's rule: a slow etcd (a busy disk, a distant member) slows Berth
 * down and never fails it while etcd answers. Every deadline below is sized
 * so that an etcd answering within TOLERATED_ROUND_TRIP_MS is "up", and a
 * deadline that passes is about that call alone: it never resets the
 * connection or its other streams (see connection-guard.ts).
 */

/** A request/answer round trip to etcd that every deadline tolerates (the 1 s of a slow etcd, doubled). */
export const TOLERATED_ROUND_TRIP_MS = 2000;

/**
 * Deadline of one unary etcd call: etcdctl's command timeout. It covers the
 * tolerated round trip plus an etcd leader election (up to 2 s) during which
 * the call waits; it stays below etcd's own 7 s request timeout, so a call
 * that passes it has met a real outage (no quorum), not a slow answer.
 */
export const CALL_TIMEOUT_MS = 5000;

/**
 * How long etcd may leave the health probes unanswered before the API
 * counts it as down (503 at once instead of a frozen cache). Also each
 * probe's deadline. Longer than the tolerated round trip and than etcd's own
 * leader election, so neither latency nor a raft election turns the API away.
 */
export const ETCD_DOWN_AFTER_MS = 3000;

/**
 * Default TTL of the controllers' election lease (`--lease-ttl`). A killed
 * leader is replaced about this long (plus etcd's 0.5 s expiry sweep) later;
 * Kubernetes' 15 s would make every failover 15 s. 2 s (etcd's minimum)
 * fails over fastest but deposes a leader whose keepalive round trip passes
 * 1.25 s; 4 s tolerates 3 s (see `toleratedKeepaliveRoundTripMs`).
 */
export const DEFAULT_LEADER_LEASE_TTL_SECONDS = 4;

/**
 * How early, before the election lease could expire, a leader stops acting
 * as leader. The lease is known to live until the *send* time of the last
 * keepalive etcd acknowledged plus the TTL; the margin covers the step-down
 * timer firing late (a busy event loop) and clock-rate differences. TTL / 8,
 * at least 250 ms: 500 ms at the default TTL.
 */
export function renewMarginMs(ttlSeconds: number): number {
  return Math.max(250, (ttlSeconds * 1000) / 8);
}

/**
 * How often the elector sends a keepalive of its campaign lease of its own,
 * besides etcd3's every TTL / 3: what it tolerates grows from 2/3 TTL -
 * margin to TTL - margin - this (the chaos run's etcd raft-leader kills
 * stalled keepalives long enough to depose a leader at TTL / 3).
 */
export const RENEW_EVERY_MS = 500;

/**
 * The longest keepalive round trip (or stall) a leader survives. The leader
 * steps down at (send time of the last acknowledged keepalive) + TTL -
 * margin; keepalives are sent every RENEW_EVERY_MS (pipelined) and by etcd3
 * every TTL / 3, so the answer to the next one must arrive within TTL -
 * margin - min(RENEW_EVERY_MS, TTL / 3) of the last acknowledged send.
 */
export function toleratedKeepaliveRoundTripMs(ttlSeconds: number, marginMs = renewMarginMs(ttlSeconds)): number {
  return ttlSeconds * 1000 - marginMs - Math.min(RENEW_EVERY_MS, (ttlSeconds * 1000) / 3);
}

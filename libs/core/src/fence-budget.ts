/**
 * The fence budget: how long the leader must wait before it may unbind the
 * pods of a node whose heartbeat vanished, so that an agent cut off from etcd
 * has certainly killed them first (ARCHITECTURE.md, "Agent self-fencing and
 * the fence budget").
 *
 * Let `s` be the send time of the last keepalive etcd acknowledged to the
 * agent. The agent fences at `s + fenceAfter` and its pods are dead by
 * `s + fenceAfter + forceStop`. etcd cannot delete the heartbeat key before
 * `s + TTL` (the lease was extended by a request sent no earlier than `s`),
 * so the leader observes the loss at `L >= s + TTL` and declares the node Dead
 * at `L + deadAfter`. No pod runs twice when
 * `TTL + deadAfter >= fenceAfter + forceStop + margin`; the margin covers the
 * agent's check period, a busy event loop and clock-rate differences.
 */

/** Upper bound the agent enforces on force-stopping a fenced node's pods: SIGKILL, then wait this long for the exit. */
export const FORCE_STOP_MS = 2000;
/** Slack between the agent's fence being complete and the leader's unbinding. */
export const FENCE_MARGIN_MS = 1000;
/** The agents' default `--heartbeat-ttl` (seconds); the leader assumes it for a node whose record it never saw. */
export const DEFAULT_HEARTBEAT_TTL_SECONDS = 4;
/** The controllers' default `--node-grace` (seconds), also the agent's default assumption of it. */
export const DEFAULT_NODE_GRACE_SECONDS = 5;

/** What an agent reports about its fence in its node record. */
export interface NodeFence {
  /** Its heartbeat lease TTL. */
  heartbeatTtlMs: number;
  /** No keepalive acknowledged this long (from its send time): the agent kills its pods. */
  fenceAfterMs: number;
  /** Bound on killing them. */
  forceStopMs: number;
}

/**
 * How long after the leader saw a node's heartbeat vanish it may declare the
 * node Dead (and unbind its pods): the grace, stretched to the node's own
 * fence budget when that is longer. A record without `fence` (an older
 * agent) gets the grace alone.
 */
export function deadAfterMs(graceMs: number, fence: NodeFence | undefined): number {
  if (fence === undefined) return graceMs;
  return Math.max(graceMs, fence.fenceAfterMs + fence.forceStopMs + FENCE_MARGIN_MS - fence.heartbeatTtlMs);
}

/**
 * The agent's default `--fence-after`: the longest silence the budget allows
 * against the grace it assumes (`TTL + grace - forceStop - margin`, 6 s at
 * the defaults), never less than the TTL. A blip shorter than that (an etcd
 * leader election, a slow etcd) costs no pod its process; the leader still
 * finds every pod of a node that stays away dead before it runs it elsewhere.
 */
export function defaultFenceAfterMs(heartbeatTtlMs: number, nodeGraceMs: number): number {
  return Math.max(heartbeatTtlMs, heartbeatTtlMs + nodeGraceMs - FORCE_STOP_MS - FENCE_MARGIN_MS);
}

/** An agent's fence flags, in ms. */
export interface AgentFenceFlags {
  heartbeatTtlMs: number;
  heartbeatIntervalMs: number;
  fenceAfterMs: number;
  /** The grace the agent assumes the controllers use (`--node-grace`). */
  nodeGraceMs: number;
}

const s = (ms: number) => `${ms / 1000} s`;

/** Why an agent must refuse these flags, or undefined when they keep the budget. */
export function agentFenceProblem(f: AgentFenceFlags): string | undefined {
  if (f.fenceAfterMs < 2 * f.heartbeatIntervalMs) {
    return `--fence-after (${s(f.fenceAfterMs)}) must be at least 2 heartbeat intervals (--heartbeat-interval ${f.heartbeatIntervalMs} ms): one late keepalive would kill every pod of the node`;
  }
  const need = f.fenceAfterMs + FORCE_STOP_MS + FENCE_MARGIN_MS;
  if (f.heartbeatTtlMs + f.nodeGraceMs < need) {
    return (
      `the fence budget is broken: --heartbeat-ttl (${s(f.heartbeatTtlMs)}) + --node-grace (${s(f.nodeGraceMs)}) = ${s(f.heartbeatTtlMs + f.nodeGraceMs)} ` +
      `must be at least --fence-after (${s(f.fenceAfterMs)}) + force-stop (${s(FORCE_STOP_MS)}) + margin (${s(FENCE_MARGIN_MS)}) = ${s(need)}, ` +
      `or the leader could run this node's pods elsewhere before this agent has killed them: lower --fence-after or raise --heartbeat-ttl ` +
      `(--node-grace must match the controllers' --node-grace)`
    );
  }
  return undefined;
}

/** Why a controller must refuse this `--node-grace`, or undefined. */
export function controllerGraceProblem(nodeGraceMs: number): string | undefined {
  const need = FORCE_STOP_MS + FENCE_MARGIN_MS;
  if (nodeGraceMs >= need) return undefined;
  return (
    `--node-grace (${s(nodeGraceMs)}) must be at least force-stop (${s(FORCE_STOP_MS)}) + margin (${s(FENCE_MARGIN_MS)}) = ${s(need)}: ` +
    `an agent that fences after its heartbeat TTL needs that long to kill its pods before they may run elsewhere`
  );
}

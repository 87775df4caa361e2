import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { agentFenceProblem, DEFAULT_HEARTBEAT_TTL_SECONDS, DEFAULT_NODE_GRACE_SECONDS, defaultFenceAfterMs, DNS_LABEL, RUNTIMES, type RuntimeKind } from '@berth/core';
import { ETCD_CREDENTIAL_FLAGS, loadEtcdCredentials, parseEndpoints, planAddresses, type AddressPlan, type EtcdCredentialFlags, type EtcdCredentials } from '@berth/store';
import { POD_LIMIT_MODES, type PodLimitMode } from './isolation/pod-isolation.js';
import { DEFAULT_POD_UID_RANGE, resolveRunAs, type RunAs } from './isolation/users.js';
import { UsageSampler } from './usage.js';

/** Everything an agent is configured with (flags, or BERTH_* env vars). */
export interface AgentConfig {
  etcd: string[];
  /** This agent's own etcd identity (--etcd-user, --etcd-ca, ...), if any. */
  etcdCredentials: EtcdCredentials | undefined;
  name: string;
  cpu: number;
  memoryMiB: number;
  runtime: RuntimeKind;
  labels: Record<string, string>;
  /** Address the agent API listens on. */
  host: string;
  port: number;
  /** Host part of the node's address (the agent API's URL), which controllers and the pods' clients on other hosts use. */
  advertiseHost: string;
  /** How `advertiseHost` was chosen, and a warning when other hosts probably cannot reach it. */
  addressPlan: AddressPlan;
  simulate: number;
  heartbeatIntervalMs: number;
  heartbeatTtlSeconds: number;
  reportIntervalMs: number;
  /** No keepalive acknowledged this long (from its send time): every pod of the node is killed (`--fence-after`). */
  fenceAfterMs: number;
  /** The grace the controllers give a node before declaring it Dead, as this agent assumes it (`--node-grace`). */
  nodeGraceMs: number;
  /** Where the process runtime keeps pod output. */
  dataDir: string;
  /** Grace between SIGTERM and SIGKILL when a pod is stopped (ms). */
  stopTimeoutMs: number;
  /** Cap of the exponential back-off between restarts of a crashing pod (ms). */
  restartBackoffMaxMs: number;
  /** Who process-runtime pods run as (`--run-as-user`, `--pod-uid-range`). */
  runAs: RunAs;
  /** How process-runtime pods' cpu and memory are enforced (`--pod-limits`). */
  podLimits: PodLimitMode;
  /** Most processes one pod may have (docker PidsLimit; pids.max of a process pod's cgroup). */
  pidsLimit: number;
  /** How long one Docker engine call may take before it is aborted and retried (`--runtime-request-timeout`, ms). */
  runtimeRequestTimeoutMs: number;
  logLevel: string;
}

function positive(name: string, integer: boolean) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`${name} must be a positive ${integer ? 'integer' : 'number'}`);
    }
    return n;
  };
}

function labels(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of raw.split(',').filter((p) => p.length > 0)) {
    const [k, v, ...rest] = pair.split('=');
    if (!k || v === undefined || rest.length > 0) throw new InvalidArgumentError(`--labels: expected k=v[,k=v...], got ${JSON.stringify(pair)}`);
    out[k] = v;
  }
  return out;
}

/** `--advertise-address`: an IP address (a host name goes to `--advertise-host`). */
function ipAddress(flag: string) {
  return (raw: string): string => {
    const ip = raw.replace(/^\[|\]$/g, '');
    if (net.isIP(ip) === 0) throw new InvalidArgumentError(`${flag} must be an IP address, got ${JSON.stringify(raw)}`);
    return ip;
  };
}

/** Parses the command line (exits with a usage message on bad flags) and decides the addresses, which may look up the route to etcd. */
export async function parseConfig(argv: string[]): Promise<AgentConfig> {
  const cmd = new Command('berth-agent')
    .description('Berth node agent: registers its node, heartbeats through an etcd lease, runs the pods bound to it.')
    .addOption(new Option('--etcd <urls>', 'etcd endpoints, comma-separated').env('BERTH_ETCD').default('http://127.0.0.1:2379'))
    .addOption(new Option('--name <name>', 'node name (DNS-1123 label); restarting with the same name re-joins the same node').env('BERTH_NODE_NAME').default(os.hostname().toLowerCase()))
    .addOption(new Option('--cpu <cores>', 'CPU capacity in cores (default: detected)').env('BERTH_CPU').argParser(positive('--cpu', false)))
    .addOption(new Option('--memory-mib <n>', 'memory capacity in MiB (default: detected from /proc/meminfo)').env('BERTH_MEMORY_MIB').argParser(positive('--memory-mib', true)))
    .addOption(new Option('--runtime <kind>', 'how pods run').env('BERTH_RUNTIME').choices(RUNTIMES).default('process'))
    .addOption(new Option('--labels <k=v,...>', 'node labels for nodeSelector').env('BERTH_LABELS').argParser(labels).default({}))
    .addOption(new Option('--advertise-address <ip>', 'address other hosts reach this node at: the node\'s address (agent API) and its pods\' endpoints (default: --host when it names one address, else the local address of the interface that reaches the first etcd endpoint)').env('BERTH_ADVERTISE_ADDRESS').argParser(ipAddress('--advertise-address')))
    .addOption(new Option('--host <h>', 'address the agent API listens on (default: 127.0.0.1 when the advertised address is loopback, else 0.0.0.0, every interface)').env('BERTH_AGENT_HOST'))
    .addOption(new Option('--port <n>', 'agent API port (0: any free port)').env('BERTH_AGENT_PORT').default(0).argParser((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('--port must be an integer in [0, 65535]');
      return n;
    }))
    .addOption(new Option('--advertise-host <h>', 'host name or address controllers use to reach the agent API, when it differs from --advertise-address (e.g. a DNS name)').env('BERTH_ADVERTISE_HOST'))
    .addOption(new Option('--simulate <count>', 'run COUNT simulated nodes named <name>-<i> in this process (scale runs)').env('BERTH_SIMULATE').argParser(positive('--simulate', true)))
    .addOption(new Option('--heartbeat-interval <ms>', 'lease keepalive period (scale runs of many simulated nodes may want 1000)').env('BERTH_HEARTBEAT_INTERVAL_MS').default(500).argParser(positive('--heartbeat-interval', true)))
    .addOption(new Option('--heartbeat-ttl <seconds>', 'heartbeat lease TTL: the node is NotReady this long after its agent stops; with the interval it sets the keepalive round trip a slow etcd may take (TTL - interval)').env('BERTH_HEARTBEAT_TTL').default(DEFAULT_HEARTBEAT_TTL_SECONDS).argParser(positive('--heartbeat-ttl', true)))
    .addOption(new Option('--fence-after <seconds>', 'kill every pod of the node (no grace) once no keepalive was acknowledged for this long, counted from its send time (default: the longest the fence budget allows, --heartbeat-ttl + --node-grace - 3 s, at least --heartbeat-ttl)').env('BERTH_FENCE_AFTER').argParser(positive('--fence-after', false)))
    .addOption(new Option('--node-grace <seconds>', "the controllers' --node-grace, which must match it: the agent refuses fence flags that would let the leader move its pods before it has killed them").env('BERTH_NODE_GRACE').default(DEFAULT_NODE_GRACE_SECONDS).argParser(positive('--node-grace', false)))
    .addOption(new Option('--report-interval <ms>', 'usage report period').env('BERTH_REPORT_INTERVAL_MS').default(5000).argParser(positive('--report-interval', true)))
    .addOption(new Option('--data-dir <dir>', 'where pod output is kept (default: <tmp>/berth-agent-<name>)').env('BERTH_AGENT_DATA_DIR'))
    .addOption(new Option('--stop-timeout <seconds>', 'grace between SIGTERM and SIGKILL when a pod is stopped').env('BERTH_STOP_TIMEOUT').default(10).argParser(positive('--stop-timeout', false)))
    .addOption(new Option('--restart-backoff-max <ms>', 'cap of the exponential back-off (from 500 ms, doubling) between restarts of a crashing pod').env('BERTH_RESTART_BACKOFF_MAX_MS').default(30000).argParser(positive('--restart-backoff-max', true)))
    .addOption(new Option('--run-as-user <user>', "who process-runtime pods run as: per-pod (each pod its own uid and gid from --pod-uid-range; the default when the agent is root), a user name or uid[:gid] every pod shares, or root (no switch: pods run as the agent). An agent that is not root runs pods as itself").env('BERTH_RUN_AS_USER'))
    .addOption(new Option('--pod-uid-range <first-last>', 'uids (and gids) per-pod users are taken from; no existing user should have one').env('BERTH_POD_UID_RANGE').default(DEFAULT_POD_UID_RANGE))
    .addOption(new Option('--pod-limits <how>', "how process-runtime pods' cpu and memory are enforced: auto (cgroups when the agent is root and they are writable, else rlimits), cgroup (or refuse to start), rlimit (memory only), none").env('BERTH_POD_LIMITS').choices(POD_LIMIT_MODES).default('auto'))
    .addOption(new Option('--pids-limit <n>', 'most processes (threads included) one pod may run').env('BERTH_PIDS_LIMIT').default(1024).argParser(positive('--pids-limit', true)))
    .addOption(new Option('--runtime-request-timeout <seconds>', 'how long one Docker engine call may take; one the engine never answers is then aborted and the pod sync retried, like the kubelet flag of this name').env('BERTH_RUNTIME_REQUEST_TIMEOUT').default(60).argParser(positive('--runtime-request-timeout', false)))
    .addOption(new Option('--log-level <level>', 'pino log level').env('BERTH_LOG_LEVEL').default('info'))
    .showHelpAfterError('(run with --help for usage)');
  for (const [flags, help, env] of ETCD_CREDENTIAL_FLAGS) cmd.addOption(new Option(flags, help).env(env));
  cmd.parse(argv);
  const o = cmd.opts<EtcdCredentialFlags & {
    etcd: string; name: string; cpu?: number; memoryMib?: number; runtime: RuntimeKind; labels: Record<string, string>;
    host?: string; port: number; advertiseHost?: string; advertiseAddress?: string; simulate?: number; heartbeatInterval: number; heartbeatTtl: number;
    reportInterval: number; fenceAfter?: number; nodeGrace: number; dataDir?: string; stopTimeout: number; restartBackoffMax: number; logLevel: string;
    runAsUser?: string; podUidRange: string; podLimits: PodLimitMode; pidsLimit: number; runtimeRequestTimeout: number;
  }>();
  if (!DNS_LABEL.test(o.name)) cmd.error(`error: --name ${JSON.stringify(o.name)} must be a DNS-1123 label (lower-case letters, digits and '-', at most 63)`);
  if (o.heartbeatInterval >= o.heartbeatTtl * 1000) cmd.error('error: --heartbeat-interval must be shorter than --heartbeat-ttl');
  if (o.simulate !== undefined && o.runtime !== 'simulated') cmd.error('error: --simulate needs --runtime simulated');
  const nodeGraceMs = Math.round(o.nodeGrace * 1000);
  const fenceAfterMs = o.fenceAfter !== undefined ? Math.round(o.fenceAfter * 1000) : defaultFenceAfterMs(o.heartbeatTtl * 1000, nodeGraceMs);
  const fenceProblem = agentFenceProblem({ heartbeatTtlMs: o.heartbeatTtl * 1000, heartbeatIntervalMs: o.heartbeatInterval, fenceAfterMs, nodeGraceMs });
  if (fenceProblem !== undefined) cmd.error(`error: ${fenceProblem}`);
  let runAs: RunAs = { kind: 'agent', label: 'root' };
  try {
    runAs = resolveRunAs(o.runAsUser, o.podUidRange, (process.getuid?.() ?? 1) === 0);
  } catch (err) {
    cmd.error(`error: ${(err as Error).message}`);
  }
  const etcd = parseEndpoints(o.etcd);
  let etcdCredentials: EtcdCredentials | undefined;
  try {
    etcdCredentials = loadEtcdCredentials(o);
  } catch (err) {
    cmd.error(`error: ${(err as Error).message}`);
  }
  const planned = await planAddresses({ etcd, host: o.host, advertiseAddress: o.advertiseAddress });
  // An explicit host is the operator's word: no warning about the address it replaces.
  const { warning: _unused, ...withoutWarning } = planned;
  const addressPlan = o.advertiseHost === undefined ? planned : withoutWarning;
  return {
    etcd,
    etcdCredentials,
    name: o.name,
    cpu: o.cpu ?? os.cpus().length,
    memoryMiB: o.memoryMib ?? UsageSampler.totalMemoryMiB(),
    runtime: o.runtime,
    labels: o.labels,
    host: addressPlan.host,
    port: o.port,
    advertiseHost: o.advertiseHost ?? addressPlan.advertise,
    addressPlan,
    simulate: o.simulate ?? 0,
    heartbeatIntervalMs: o.heartbeatInterval,
    heartbeatTtlSeconds: o.heartbeatTtl,
    reportIntervalMs: o.reportInterval,
    fenceAfterMs,
    nodeGraceMs,
    dataDir: o.dataDir ?? path.join(os.tmpdir(), `berth-agent-${o.name}`),
    stopTimeoutMs: Math.round(o.stopTimeout * 1000),
    restartBackoffMaxMs: o.restartBackoffMax,
    runAs,
    podLimits: o.podLimits,
    pidsLimit: o.pidsLimit,
    runtimeRequestTimeoutMs: Math.round(o.runtimeRequestTimeout * 1000),
    logLevel: o.logLevel,
  };
}

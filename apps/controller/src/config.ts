import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_LEADER_LEASE_TTL_SECONDS, parseEndpoints, planAddresses, urlHost, type AddressPlan } from '@berth/store';
import { ETCD_CREDENTIAL_FLAGS, loadEtcdCredentials, type EtcdCredentialFlags, type EtcdCredentials } from '@berth/store';
import { controllerGraceProblem, DEFAULT_NODE_GRACE_SECONDS, LIMITS, SCHEDULING_POLICIES, type SchedulingPolicy } from '@berth/core';

/** Everything a controller replica is configured with (flags, or BERTH_* env vars). */
export interface ControllerConfig {
  etcd: string[];
  /** This replica's own etcd identity (--etcd-user, --etcd-ca, ...), if any. */
  etcdCredentials: EtcdCredentials | undefined;
  /** etcd credential flags the agents this replica provisions get (theirs, not the controller's: --node-etcd-user). */
  nodeEtcdArgs: string[];
  port: number;
  /** Address the API listens on. */
  host: string;
  id: string;
  /** URL other processes (on other hosts too) use to reach this replica's API. */
  advertiseUrl: string;
  /** How the advertised address was chosen, and a warning when other hosts probably cannot reach it. */
  addressPlan: AddressPlan;
  leaseTtl: number;
  /** Cluster-wide default scheduling policy; a pod may name its own (`spec.policy`). */
  policy: SchedulingPolicy;
  /** How long a node stays NotReady before it is declared Dead. */
  nodeGraceMs: number;
  /** Image provisioned node containers run. */
  image: string;
  /** Where provisioned agent processes log. */
  dataDir: string;
  /** How long `POST /v1/nodes` waits for the new agent to register. */
  provisionTimeoutMs: number;
  /** How long a finished job's record and result are kept in etcd. */
  jobResultTtlSeconds: number;
  /** Largest request body the API (and the service proxy) accepts; larger ones are 413 PAYLOAD_TOO_LARGE. */
  bodyLimitBytes: number;
  logLevel: string;
  /** API authentication, limits and the audit trail. */
  auth: AuthConfig;
  /** TLS for the API: PEM files. */
  tls?: { cert: string; key: string };
}

/** `--admin-token-file` and what goes with it. */
export interface AuthConfig {
  /** The bootstrap admin token's file; undefined: auth off (loopback only, unless `insecure`). */
  adminTokenFile?: string;
  /** `--insecure-no-auth`: serve a non-loopback address without authentication. */
  insecure: boolean;
  metricsPublic: boolean;
  /** Requests per second per token; 0: unlimited. */
  rateLimit: { read: number; write: number };
  auditTtlSeconds: number;
}

function intIn(name: string, min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}]`);
    return n;
  };
}

/** `--advertise-address`: an IP address (a host name goes into `--advertise-url`). */
function ipAddress(raw: string): string {
  const ip = raw.replace(/^\[|\]$/g, '');
  if (net.isIP(ip) === 0) throw new InvalidArgumentError(`--advertise-address must be an IP address, got ${JSON.stringify(raw)}`);
  return ip;
}

/** Parses the command line (exits with a usage message on bad flags) and decides the addresses, which may look up the route to etcd. */
export async function parseConfig(argv: string[]): Promise<ControllerConfig> {
  const cmd = new Command('berth-controller')
    .description('Berth controller replica: REST API and dashboard on every replica; the elected leader schedules.')
    .addOption(new Option('--etcd <urls>', 'etcd endpoints, comma-separated').env('BERTH_ETCD').default('http://127.0.0.1:2379'))
    .addOption(new Option('--port <n>', 'API port').env('BERTH_PORT').default(8080).argParser(intIn('--port', 0, 65535)))
    .addOption(new Option('--advertise-address <ip>', 'address other hosts reach this replica at (default: --host when it names one address, else the local address of the interface that reaches the first etcd endpoint)').env('BERTH_ADVERTISE_ADDRESS').argParser(ipAddress))
    .addOption(new Option('--host <h>', 'address to listen on (default: 127.0.0.1 when the advertised address is loopback, else 0.0.0.0, every interface)').env('BERTH_HOST'))
    .addOption(new Option('--id <name>', 'replica id (default: <hostname>-<port>)').env('BERTH_ID'))
    .addOption(new Option('--advertise-url <url>', 'URL other processes use to reach this replica, when it is not http://<advertise-address>:<port> (e.g. behind a proxy)').env('BERTH_ADVERTISE_URL'))
    .addOption(
      new Option('--lease-ttl <seconds>', 'leader election lease TTL: a killed leader is replaced about this long later; a leader keeps office while etcd answers its keepalives within TTL - TTL/8 - 0.5 s (3 s at 4 s)')
        .env('BERTH_LEASE_TTL')
        .default(DEFAULT_LEADER_LEASE_TTL_SECONDS)
        .argParser(intIn('--lease-ttl', 2, 60)),
    )
    .addOption(new Option('--policy <name>', 'default scheduling policy').env('BERTH_POLICY').choices(SCHEDULING_POLICIES).default('spread'))
    .addOption(
      new Option('--node-grace <seconds>', "NotReady -> Dead after this long without a heartbeat (longer for a node whose agent's fence budget needs it; agents assume this value through their own --node-grace)")
        .env('BERTH_NODE_GRACE')
        .default(DEFAULT_NODE_GRACE_SECONDS)
        .argParser(intIn('--node-grace', 1, 3600)),
    )
    .addOption(new Option('--image <tag>', 'image for provisioned node containers').env('BERTH_IMAGE').default('berth:local'))
    .addOption(
      new Option('--provision-timeout <seconds>', 'POST /v1/nodes answers 504 (and removes what it started) after this long').env('BERTH_PROVISION_TIMEOUT').default(30).argParser(intIn('--provision-timeout', 1, 600)),
    )
    .addOption(
      new Option('--job-result-ttl <seconds>', "a finished job's record and result stay in etcd this long").env('BERTH_JOB_RESULT_TTL').default(3600).argParser(intIn('--job-result-ttl', 10, 7 * 86400)),
    )
    .addOption(new Option('--body-limit-bytes <n>', 'largest request body accepted (JSON and proxied); larger is 413').env('BERTH_BODY_LIMIT_BYTES').default(LIMITS.bodyBytes).argParser(intIn('--body-limit-bytes', 1024, LIMITS.maxBodyBytes)))
    .addOption(new Option('--data-dir <dir>', 'where provisioned agent processes log').env('BERTH_DATA_DIR'))
    .addOption(new Option('--log-level <level>', 'pino log level').env('BERTH_LOG_LEVEL').default('info'))
    .addOption(new Option('--admin-token-file <file>', 'bootstrap admin token (created, mode 0600, when missing); with it every /v1 request needs a token').env('BERTH_ADMIN_TOKEN_FILE'))
    .addOption(new Option('--insecure-no-auth', 'serve a non-loopback address without any authentication (anyone who reaches it can do anything)').env('BERTH_INSECURE_NO_AUTH'))
    .addOption(new Option('--metrics-public', '/metrics answers without a token (for a Prometheus without one)').env('BERTH_METRICS_PUBLIC'))
    .addOption(new Option('--rate-limit-read <n>', 'reads per second per token (per client address without one); 0: unlimited; default 200 with auth on, 0 with it off').env('BERTH_RATE_LIMIT_READ').argParser(intIn('--rate-limit-read', 0, 1_000_000)))
    .addOption(new Option('--rate-limit-write <n>', 'writes per second per token (per client address without one); 0: unlimited; default 100 with auth on, 0 with it off').env('BERTH_RATE_LIMIT_WRITE').argParser(intIn('--rate-limit-write', 0, 1_000_000)))
    .addOption(new Option('--audit-ttl <seconds>', 'how long audit records stay in etcd').env('BERTH_AUDIT_TTL').default(7 * 86400).argParser(intIn('--audit-ttl', 60, 90 * 86400)))
    .addOption(new Option('--tls-cert <file>', 'serve the API over TLS with this PEM certificate (with --tls-key)').env('BERTH_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'PEM private key of --tls-cert').env('BERTH_TLS_KEY'))
    .showHelpAfterError('(run with --help for usage)');
  for (const [flags, help, env] of ETCD_CREDENTIAL_FLAGS) cmd.addOption(new Option(flags, help).env(env));
  cmd.addOption(new Option('--node-etcd-user <name>', 'etcd user of the agents POST /v1/nodes starts (with --node-etcd-password-file)').env('BERTH_NODE_ETCD_USER'));
  cmd.addOption(new Option('--node-etcd-password-file <file>', "file with that user's password, passed to those agents by path").env('BERTH_NODE_ETCD_PASSWORD_FILE'));
  cmd.parse(argv);
  const o = cmd.opts<EtcdCredentialFlags & { nodeEtcdUser?: string; nodeEtcdPasswordFile?: string } & {
    etcd: string;
    port: number;
    host?: string;
    advertiseAddress?: string;
    id?: string;
    advertiseUrl?: string;
    leaseTtl: number;
    policy: SchedulingPolicy;
    nodeGrace: number;
    image: string;
    dataDir?: string;
    provisionTimeout: number;
    jobResultTtl: number;
    bodyLimitBytes: number;
    logLevel: string;
    adminTokenFile?: string;
    insecureNoAuth?: boolean;
    metricsPublic?: boolean;
    rateLimitRead?: number;
    rateLimitWrite?: number;
    auditTtl: number;
    tlsCert?: string;
    tlsKey?: string;
  }>();
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) cmd.error('error: --tls-cert and --tls-key go together');
  const graceProblem = controllerGraceProblem(o.nodeGrace * 1000);
  if (graceProblem !== undefined) cmd.error(`error: ${graceProblem}`);
  const etcd = parseEndpoints(o.etcd);
  let etcdCredentials: EtcdCredentials | undefined;
  let nodeEtcdArgs: string[] = [];
  try {
    etcdCredentials = loadEtcdCredentials(o);
    nodeEtcdArgs = provisionedAgentEtcdArgs(o);
  } catch (err) {
    cmd.error(`error: ${(err as Error).message}`);
  }
  const planned = await planAddresses({ etcd, host: o.host, advertiseAddress: o.advertiseAddress });
  // An explicit URL is the operator's word: no warning about the address it replaces.
  const { warning: _unused, ...withoutWarning } = planned;
  const addressPlan = o.advertiseUrl === undefined ? planned : withoutWarning;
  return {
    etcd,
    etcdCredentials,
    nodeEtcdArgs,
    port: o.port,
    host: addressPlan.host,
    id: o.id ?? `${os.hostname()}-${o.port}`,
    advertiseUrl: o.advertiseUrl ?? `${o.tlsCert === undefined ? 'http' : 'https'}://${urlHost(addressPlan.advertise)}:${o.port}`,
    addressPlan,
    leaseTtl: o.leaseTtl,
    policy: o.policy,
    nodeGraceMs: o.nodeGrace * 1000,
    image: o.image,
    dataDir: o.dataDir ?? path.join(os.tmpdir(), `berth-controller-${o.id ?? o.port}`),
    provisionTimeoutMs: o.provisionTimeout * 1000,
    jobResultTtlSeconds: o.jobResultTtl,
    bodyLimitBytes: o.bodyLimitBytes,
    logLevel: o.logLevel,
    auth: authConfig(o, addressPlan.host, (m) => cmd.error(`error: ${m}`)),
    ...(o.tlsCert !== undefined && o.tlsKey !== undefined ? { tls: { cert: o.tlsCert, key: o.tlsKey } } : {}),
  };
}

/** True when `host` only ever answers this machine. */
export function loopbackOnly(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * Auth on with a token source; off only on loopback, or when the operator
 * says `--insecure-no-auth`. Rate limits default on with auth: without it
 * every local client is the same anonymous caller.
 */
function authConfig(
  o: { adminTokenFile?: string; insecureNoAuth?: boolean; metricsPublic?: boolean; rateLimitRead?: number; rateLimitWrite?: number; auditTtl: number },
  host: string,
  fail: (message: string) => never,
): AuthConfig {
  const on = o.adminTokenFile !== undefined && o.adminTokenFile !== '';
  if (on && o.insecureNoAuth === true) fail('--admin-token-file and --insecure-no-auth contradict each other');
  if (!on && o.insecureNoAuth !== true && !loopbackOnly(host)) {
    fail(`refusing to serve ${host} without authentication: give --admin-token-file (or BERTH_ADMIN_TOKEN_FILE), listen on 127.0.0.1 (--host), or say --insecure-no-auth`);
  }
  return {
    ...(on ? { adminTokenFile: path.resolve(o.adminTokenFile as string) } : {}),
    insecure: o.insecureNoAuth === true,
    metricsPublic: o.metricsPublic === true,
    rateLimit: { read: o.rateLimitRead ?? (on ? 200 : 0), write: o.rateLimitWrite ?? (on ? 100 : 0) },
    auditTtlSeconds: o.auditTtl,
  };
}

/**
 * The etcd flags of a provisioned agent: its own user, and the replica's TLS
 * files. The client certificate goes along only with a user: etcd takes a
 * certificate's CN as the user when no password token is sent, and an agent
 * must never act as the controller.
 */
function provisionedAgentEtcdArgs(o: EtcdCredentialFlags & { nodeEtcdUser?: string; nodeEtcdPasswordFile?: string }): string[] {
  if ((o.nodeEtcdUser === undefined) !== (o.nodeEtcdPasswordFile === undefined)) throw new Error('--node-etcd-user and --node-etcd-password-file go together: give both or neither');
  const node = loadEtcdCredentials({ etcdUser: o.nodeEtcdUser, etcdPasswordFile: o.nodeEtcdPasswordFile });
  const args: string[] = [];
  if (node !== undefined) args.push('--etcd-user', o.nodeEtcdUser!, '--etcd-password-file', path.resolve(o.nodeEtcdPasswordFile!));
  if (o.etcdCa !== undefined) args.push('--etcd-ca', path.resolve(o.etcdCa));
  if (node !== undefined && o.etcdCert !== undefined && o.etcdKey !== undefined) args.push('--etcd-cert', path.resolve(o.etcdCert), '--etcd-key', path.resolve(o.etcdKey));
  return args;
}

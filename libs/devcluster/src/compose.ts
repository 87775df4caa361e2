import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { freePort } from './ports.js';
import { repoRoot } from './process.js';
import { waitFor } from './wait.js';

/** Runs the docker CLI against the engine in DOCKER_HOST; returns its trimmed stdout, throws with its stderr. */
export function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }).trim();
}

/** Loopback ports of one host-network run of compose.ha.yml. */
export interface ComposePorts {
  etcdClient: [number, number, number];
  etcdPeer: [number, number, number];
  controllers: [number, number, number];
  agents: [number, number];
}

type Service = Record<string, unknown> & { environment?: Record<string, string>; ports?: unknown; build?: unknown; extra_hosts?: Record<string, string> };

/**
 * compose.ha.yml with every service on the host's network: the test engine has
 * no bridge, and tests talk to loopback only. What changes is exactly what
 * depends on the network: `network_mode: host` instead of the project network,
 * no published ports (docker-compose rejects them on the host network), and
 * the listen/advertise addresses and etcd endpoints as loopback ports. Images,
 * commands, healthchecks, restart policies, volumes, labels and every other
 * setting are the file's own. `build:` is dropped: the image is built beforehand.
 */
export function hostNetworkVariant(source: string, p: ComposePorts): string {
  const doc = YAML.parse(source, { merge: true }) as { services: Record<string, Service>; volumes?: unknown };
  const url = (port: number) => `http://127.0.0.1:${port}`;
  const endpoints = p.etcdClient.map(url).join(',');
  const initialCluster = p.etcdPeer.map((port, i) => `etcd${i + 1}=${url(port)}`).join(',');
  const services: Record<string, Service> = {};
  for (const [name, svc] of Object.entries(doc.services)) {
    const { ports: _ports, build: _build, ...rest } = svc;
    // A one-shot service without a network (the secrets' init) is the same on any network.
    if (svc.network_mode === 'none') {
      services[name] = rest;
      continue;
    }
    const s: Service = { ...rest, network_mode: 'host', environment: { ...(svc.environment ?? {}) } };
    const env = s.environment!;
    const etcd = /^etcd(\d)$/.exec(name);
    const controller = /^c(\d)$/.exec(name);
    const agent = /^agent(\d)$/.exec(name);
    if (etcd) {
      const i = Number(etcd[1]) - 1;
      Object.assign(env, {
        ETCD_INITIAL_CLUSTER: initialCluster,
        ETCD_LISTEN_CLIENT_URLS: url(p.etcdClient[i]!),
        ETCD_ADVERTISE_CLIENT_URLS: url(p.etcdClient[i]!),
        ETCDCTL_ENDPOINTS: url(p.etcdClient[i]!),
        ETCD_LISTEN_PEER_URLS: url(p.etcdPeer[i]!),
        ETCD_INITIAL_ADVERTISE_PEER_URLS: url(p.etcdPeer[i]!),
      });
    } else if (controller) {
      const port = p.controllers[Number(controller[1]) - 1]!;
      Object.assign(env, { BERTH_ETCD: endpoints, BERTH_HOST: '127.0.0.1', BERTH_PORT: String(port), BERTH_ADVERTISE_URL: url(port), BERTH_SERVER: url(port) });
      // Agents are reached on loopback, not through the bridge gateway.
      s.extra_hosts = { ...(svc.extra_hosts ?? {}), 'host.docker.internal': '127.0.0.1' };
    } else if (agent) {
      const port = p.agents[Number(agent[1]) - 1]!;
      Object.assign(env, { BERTH_ETCD: endpoints, BERTH_AGENT_HOST: '127.0.0.1', BERTH_AGENT_PORT: String(port), BERTH_ADVERTISE_HOST: '127.0.0.1' });
    } else if (name === 'etcd-auth-init') {
      env.BERTH_ETCD = endpoints;
    } else {
      throw new Error(`compose.ha.yml has a service this variant does not know how to put on the host network: ${name}`);
    }
    services[name] = s;
  }
  // YAML 1.1 as docker-compose (PyYAML) reads it: `restart: "no"` must stay a string, not become false.
  return YAML.stringify({ services, volumes: doc.volumes }, { aliasDuplicateObjects: false, version: '1.1' });
}

/**
 * compose.ha.yml (its host-network variant) driven by docker-compose against
 * the engine in DOCKER_HOST, on free loopback ports: for tests and benches.
 * Images: BERTH_IMAGE (default berth:local) and ETCD_IMAGE (berth/etcd:local).
 */
export class ComposeStack {
  readonly controllerUrls: string[];
  readonly etcdEndpoints: string[];

  private constructor(
    readonly project: string,
    private readonly dir: string,
    readonly file: string,
    readonly ports: ComposePorts,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.controllerUrls = ports.controllers.map((p) => `http://127.0.0.1:${p}`);
    this.etcdEndpoints = ports.etcdClient.map((p) => `http://127.0.0.1:${p}`);
  }

  /** Writes the host-network variant on free ports (nothing started yet: `compose('up', '-d')`); call `destroy` when done. */
  static async create(): Promise<ComposeStack> {
    const free = async (n: number) => {
      const out = new Set<number>();
      while (out.size < n) out.add(await freePort());
      return [...out];
    };
    const all = await free(11);
    const ports: ComposePorts = {
      etcdClient: [all[0]!, all[1]!, all[2]!],
      etcdPeer: [all[3]!, all[4]!, all[5]!],
      controllers: [all[6]!, all[7]!, all[8]!],
      agents: [all[9]!, all[10]!],
    };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-compose-'));
    const file = path.join(dir, 'compose.yml');
    fs.writeFileSync(file, hostNetworkVariant(fs.readFileSync(path.join(repoRoot, 'compose.ha.yml'), 'utf8'), ports));
    const socket = (process.env.DOCKER_HOST ?? '').replace(/^unix:\/\//, '');
    const env = {
      ...process.env,
      BERTH_IMAGE: process.env.BERTH_IMAGE ?? 'berth:local',
      ETCD_IMAGE: process.env.ETCD_IMAGE ?? 'berth/etcd:local',
      DOCKER_SOCKET: socket,
      BERTH_LOG_LEVEL: 'info',
    };
    return new ComposeStack(`berth${path.basename(dir).replace(/[^a-z0-9]/gi, '').toLowerCase().slice(-8)}`, dir, file, ports, env);
  }

  /** Runs docker-compose on this project; resolves with stdout, rejects with stderr. */
  compose(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        'docker-compose',
        ['--no-ansi', '-p', this.project, '-f', this.file, '--project-directory', repoRoot, ...args],
        { env: this.env, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => (err ? reject(new Error(`docker-compose ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout.trim())),
      );
    });
  }

  /**
   * The bootstrap admin token the stack's secrets init made (read through a
   * running controller, once); the stack's own API calls send it.
   */
  async adminToken(): Promise<string> {
    if (this.token !== undefined) return this.token;
    for (const c of ['c1', 'c2', 'c3']) {
      const out = await this.compose('exec', '-T', c, 'cat', '/secrets/admin-token').catch(() => '');
      if (out.startsWith('berth_')) return (this.token = out.trim());
    }
    throw new Error('no running controller could read /secrets/admin-token');
  }

  private token: string | undefined;

  /**
   * `etcdctl` inside etcd1 as etcd's user `controller` (the password read
   * through a running controller): with etcd's auth on, the members' own
   * etcdctl runs as the role-less user health, which may read nothing.
   */
  async etcdctlAsController(...args: string[]): Promise<string> {
    for (const c of ['c1', 'c2', 'c3']) {
      const password = (await this.compose('exec', '-T', c, 'cat', '/secrets/etcd-controller.password').catch(() => '')).trim();
      if (password !== '') return this.compose('exec', '-T', '-e', `ETCDCTL_USER=controller:${password}`, 'etcd1', 'etcdctl', ...args);
    }
    throw new Error('no running controller could read /secrets/etcd-controller.password');
  }

  /** `Authorization` for the stack's API, once the token is known. */
  private authHeaders(): Record<string, string> {
    return this.token === undefined ? {} : { authorization: `Bearer ${this.token}` };
  }

  /** The container id of a service (one replica each). */
  async container(service: string): Promise<string> {
    const id = (await this.compose('ps', '-q', service)).split('\n')[0] ?? '';
    if (id === '') throw new Error(`no container for service ${service}`);
    return id;
  }

  /** Whether a service's container is running, from the engine. */
  async running(service: string): Promise<boolean> {
    return docker('inspect', '--format', '{{.State.Running}}', await this.container(service)) === 'true';
  }

  /** Every service's output, into `file`. */
  async saveLogs(file: string): Promise<void> {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, await this.compose('logs', '--no-color', '--timestamps').catch((err: Error) => err.message));
  }

  /** `down` and the generated file's directory. */
  async destroy(): Promise<void> {
    await this.down();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Stops everything and removes containers, the project's volumes, and pods the agents left behind. */
  async down(): Promise<void> {
    const nodeIds = await this.nodeIdsFromApi();
    await this.compose('down', '-v', '--timeout', '30').catch(() => undefined);
    // Agents remove their pods when they stop; a pod bound while they were stopping may remain.
    for (const nodeId of nodeIds) {
      const ids = docker('ps', '-aq', '--filter', `label=berth.node=${nodeId}`).split('\n').filter(Boolean);
      if (ids.length > 0) docker('rm', '-f', ...ids);
    }
  }

  /** Node ids of this stack's agents (the pods' berth.node label), read from the API while it answers. */
  private async nodeIdsFromApi(): Promise<string[]> {
    for (const url of this.controllerUrls) {
      try {
        const res = await fetch(`${url}/v1/nodes`, { headers: this.authHeaders(), signal: AbortSignal.timeout(3000) });
        if (res.ok) return ((await res.json()) as { items: Array<{ id: string }> }).items.map((n) => n.id);
      } catch {
        /* next replica */
      }
    }
    return [];
  }

  /** Waits until every controller answers and all agree on one leader; returns its id. */
  async agreedLeader(timeoutMs = 60_000): Promise<string> {
    return waitFor(
      async () => {
        await this.adminToken();
        const ids = await Promise.all(
          this.controllerUrls.map(async (u) => ((await (await fetch(`${u}/v1/leader`, { headers: this.authHeaders(), signal: AbortSignal.timeout(2000) })).json()) as { leaderId: string | null }).leaderId),
        );
        return ids.every((id) => id !== null && id === ids[0]) ? ids[0]! : undefined;
      },
      { timeoutMs, intervalMs: 100, what: 'all three controllers to agree on a leader' },
    );
  }
}

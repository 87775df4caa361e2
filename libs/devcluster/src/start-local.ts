#!/usr/bin/env node
/**
 * `npm start`: a local HA cluster in the foreground: its own etcd (data under
 * .berth/, git-ignored), three controller replicas and two node agents. A replica that dies
 * (say, `kill -9` in a failover demo) is restarted and rejoins as a follower.
 * Leader changes are printed as they happen. Ctrl-C stops everything.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { prefixes, type NodeRecord, type ReplicaInfo } from '@berth/core';
import { createEtcdClient, DEFAULT_LEADER_LEASE_TTL_SECONDS, Informer } from '@berth/store';
import { AgentProcess } from './agent.js';
import { ControllerProcess } from './controller.js';
import { EtcdServer } from './etcd.js';
import { enableEtcdAuth, type EtcdAuthSetup } from './etcd-auth.js';
import { freePort } from './ports.js';
import { repoRoot } from './process.js';
import { delay } from './wait.js';

const tty = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const green = (s: string) => (tty ? `\x1b[32m${s}\x1b[0m` : s);
const yellow = (s: string) => (tty ? `\x1b[33m${s}\x1b[0m` : s);
const stamp = () => new Date().toISOString().slice(11, 23);

/** True when DOCKER_HOST names an engine that answers within a second. */
async function dockerAnswers(): Promise<boolean> {
  const host = process.env.DOCKER_HOST;
  if (!host?.startsWith('unix://')) return false;
  return new Promise((resolve) => {
    const sock = net.connect(host.slice('unix://'.length));
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('GET /_ping HTTP/1.0\r\n\r\n'));
    sock.once('data', (d) => done(d.toString().includes('200 OK')));
  });
}

/** `preferred` if nothing listens there, else a free port. */
async function portNear(preferred: number): Promise<number> {
  const free = await new Promise<boolean>((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(preferred, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
  return free ? preferred : freePort();
}

async function main(): Promise<void> {
  const home = path.join(repoRoot, '.berth');
  const logDir = path.join(home, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const leaseTtl = Number(process.env.BERTH_LEASE_TTL ?? DEFAULT_LEADER_LEASE_TTL_SECONDS);

  const etcd = await EtcdServer.start({ dataDir: path.join(home, 'etcd'), logDir, clientPort: await portNear(2379) });
  // etcd auth (`npm start -- --etcd-auth` or BERTH_ETCD_AUTH=1): each component gets its own etcd user. Once on it stays on
  // (the passwords in .berth/etcd-auth/ and the users in .berth/etcd go together).
  const authDir = path.join(home, 'etcd-auth');
  const wantAuth = process.argv.includes('--etcd-auth') || process.env.BERTH_ETCD_AUTH === '1' || fs.existsSync(authDir);
  const auth: EtcdAuthSetup | undefined = wantAuth ? await enableEtcdAuth(etcd.endpoint, authDir) : undefined;
  const ports = [await portNear(8081), await portNear(8082), await portNear(8083)];
  // Auth on, as anywhere else: the replicas share one bootstrap admin token (made on the first start, mode 0600).
  const adminTokenFile = path.join(home, 'admin-token');
  const controllers = await Promise.all(
    ports.map((port, i) => ControllerProcess.start({ id: `c${i + 1}`, etcd: etcd.endpoint, port, logDir, leaseTtl, adminTokenFile, extraArgs: auth?.controllerArgs ?? [] })),
  );
  const contextNote = writeCliContext(controllers[0]!.url, adminTokenFile);

  // Pods' working directories: under the temp dir, since a root agent runs each pod as its own user, who must be able to
  // pass every directory above them (a clone under /root, mode 0700, would not do).
  const podsHome = path.join(os.tmpdir(), `berth-local-${process.getuid?.() ?? 0}`);
  fs.mkdirSync(podsHome, { recursive: true, mode: 0o711 });
  fs.chmodSync(podsHome, 0o711);
  // Pods run as Docker containers when an engine answers (scripts/start.sh starts a private one), else as processes.
  const runtime = (await dockerAnswers()) ? 'docker' : 'process';
  const agents = await Promise.all(
    ['node-1', 'node-2'].map((name) => new AgentProcess({ name, etcd: etcd.endpoint, logDir, dataDir: path.join(podsHome, name), runtime, cpu: 2, memoryMiB: 2048, extraArgs: auth?.agentArgs ?? [] }).start()),
  );

  const client = createEtcdClient(etcd.endpoint, auth ? { credentials: auth.controller } : {});
  const nodes = new Informer<NodeRecord>(client, prefixes.nodes, pino({ level: 'silent' }));

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${stamp()} stopping agents (they deregister), controllers (they resign) and etcd...`);
    // Nodes added with POST /v1/nodes run outside this launcher: remove them through the API so nothing is orphaned.
    const provisioned = nodes.list().filter((n) => n.value.provisioner !== undefined);
    for (const n of provisioned) {
      const live = controllers.find((c) => c.process.running);
      if (live === undefined) break;
      const res = await live.request('DELETE', `/v1/nodes/${n.value.id}`, undefined, 15_000).catch(() => undefined);
      console.log(`${stamp()} removed provisioned node ${n.value.name}${res !== undefined && res.status < 300 ? '' : ' (failed: remove it with DELETE /v1/nodes/' + n.value.id + ')'}`);
    }
    await Promise.all(agents.map((a) => a.process.stop('SIGTERM')));
    await Promise.all(controllers.map((c) => c.process.stop('SIGTERM')));
    await etcd.stop();
    console.log(`${stamp()} stopped. State is kept in ${path.relative(process.cwd(), home) || home}/etcd; delete it for a clean slate.`);
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());

  // Supervise: a replica killed for a demo comes back and rejoins as a follower.
  for (const c of controllers) {
    void (async () => {
      for (;;) {
        await c.process.waitExit();
        if (stopping) return;
        const status = c.process.exitStatus;
        const pid = c.process.pid;
        console.log(yellow(`${stamp()} ${c.id} (pid ${pid}) exited: ${status?.signal ?? `code ${status?.code}`}; restarting in 2 s`));
        await delay(2000);
        if (stopping) return;
        await c.start().catch((err: unknown) => console.log(`${stamp()} ${c.id} failed to restart: ${String(err)}`));
        console.log(`${stamp()} ${c.id} restarted (pid ${c.process.pid})`);
      }
    })();
  }

  const first = controllers[0]!;
  console.log(`
${bold('Berth local HA cluster')}
  etcd        ${etcd.endpoint}   data: ${path.relative(process.cwd(), etcd.dataDir)}
  etcd auth   ${auth ? `on: users root, controller, agent; passwords in ${path.relative(process.cwd(), authDir)}/ (delete it and the etcd data to turn auth off)` : 'off (npm start -- --etcd-auth turns it on)'}
${controllers.map((c) => `  ${c.id}          ${c.url}   pid ${c.process.pid}`).join('\n')}
${agents.map((a) => `  ${a.name}      agent, runtime ${runtime}, pid ${a.process.pid}`).join('\n')}
  runtime     ${runtime === 'docker' ? `docker: pods are containers on ${process.env.DOCKER_HOST} (local images only: berth-test/busybox:local)` : 'process: no Docker engine answers, pods are host processes'}
  dashboard   ${first.url}/   (every replica serves it: ${controllers.map((c) => c.url + '/').join(' ')})
  API docs    ${first.url}/docs
  OpenAPI     ${first.url}/openapi.json
  auth        on: the admin token is in ${path.relative(process.cwd(), adminTokenFile)} (mode 0600); the dashboard asks for it
  CLI         npx berth get nodes   (${contextNote})
  logs        ${path.relative(process.cwd(), logDir)}/

Try (curl needs the token; the CLI finds it by itself):
  export BERTH_TOKEN=$(cat ${path.relative(process.cwd(), adminTokenFile)})
  curl -s --oauth2-bearer $BERTH_TOKEN ${first.url}/v1/leader
  curl -s --oauth2-bearer $BERTH_TOKEN ${first.url}/v1/cluster
  curl -s --oauth2-bearer $BERTH_TOKEN ${first.url}/v1/nodes
  curl -s --oauth2-bearer $BERTH_TOKEN -XPOST ${first.url}/v1/nodes -H 'content-type: application/json' -d '{"cpu": 1, "memoryMiB": 512}'
  curl -s --oauth2-bearer $BERTH_TOKEN -XPOST ${first.url}/v1/pods -H 'content-type: application/json' -d '{"name": "hello",${runtime === 'docker' ? ' "image": "berth-test/busybox:local",' : ''} "command": ["sleep", "3600"], "cpu": 0.5}'
  curl -s --oauth2-bearer $BERTH_TOKEN ${first.url}/v1/pods
  curl -s --oauth2-bearer $BERTH_TOKEN -XPOST ${first.url}/v1/services -H 'content-type: application/json' -d '${serviceExample(runtime)}'
  curl -s --oauth2-bearer $BERTH_TOKEN ${first.url}/v1/services/web/proxy/      # routed to a ready pod of web (x-berth-pod names it)
  curl -s --oauth2-bearer $BERTH_TOKEN -XPOST ${first.url}/v1/jobs -H 'content-type: application/json' -d '{"service": "web", "method": "GET", "path": "/"}'
  curl -s --oauth2-bearer $BERTH_TOKEN '${first.url}/v1/jobs/<id>?wait=10'     # the job's status, attempts and result
  etcdctl --endpoints ${etcd.endpoint}${auth ? ` --user root:$(cat ${path.relative(process.cwd(), auth.passwordFiles.root)})` : ''} get --prefix /berth/election/ --write-out=fields
  kill -9 <leader pid>        # failover demo: another replica takes over within the lease TTL (${leaseTtl} s)
  kill -9 <agent pid>         # node failure: NotReady within the heartbeat TTL, then Dead after the grace

Ctrl-C stops everything.
`);

  // Print leadership as etcd sees it: the oldest election key leads.
  const elections = new Informer<ReplicaInfo>(client, prefixes.election, pino({ level: 'silent' }));
  let shown = '';
  const show = () => {
    const leader = elections.list().sort((a, b) => a.createRevision - b.createRevision)[0];
    const line = leader ? `${leader.value.id} (term ${leader.createRevision}, pid ${leader.value.pid})` : 'none';
    if (line === shown || stopping) return;
    shown = line;
    console.log(`${stamp()} leader: ${leader ? green(line) : yellow('none (election in progress)')}`);
  };
  elections.on('change', show);
  await elections.start();
  show();

  // And node status changes, as the leader writes them.
  nodes.on('change', ({ item, prev }) => {
    if (stopping || item === undefined) return;
    const n = item.value;
    if (prev?.value.status === n.status) return;
    const colour = n.status === 'Ready' ? green : yellow;
    console.log(`${stamp()} node ${n.name}: ${prev ? `${prev.value.status} -> ` : ''}${colour(n.status)} (${n.reason})`);
  });
  await nodes.start();
}

main().catch((err: unknown) => {
  console.error(`npm start failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});

/**
 * Makes the CLI find this cluster with no flags: context `local` (the first
 * replica and the admin token file) becomes the current context, written by
 * the CLI itself (`berth config set-context`), which owns its config file.
 * Answers what it did, for the banner.
 */
function writeCliContext(server: string, tokenFile: string): string {
  const cli = path.join(repoRoot, 'apps/cli/dist/main.js');
  try {
    execFileSync(process.execPath, [cli, 'config', 'set-context', 'local', '--server', server, '--token-file', tokenFile, '--use'], { stdio: 'pipe', encoding: 'utf8' });
    return `context "local" of the CLI's config file (npx berth config view)`;
  } catch (err) {
    const why = ((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
    return `could not set the CLI context (${why}): export BERTH_SERVER=${server} BERTH_TOKEN_FILE=${tokenFile}`;
  }
}

/** A service of 3 web servers that answer their pod's name, for the runtime the agents use. */
export function serviceExample(runtime: 'docker' | 'process'): string {
  const template =
    runtime === 'docker'
      ? { image: 'berth-test/busybox:local', command: ['sh', '-c', 'echo hello from $BERTH_POD_NAME > /www/index.html && exec httpd -f -p $PORT -h /www'] }
      : { command: [process.execPath, '-e', "require('http').createServer((q, s) => s.end('hello from ' + process.env.BERTH_POD_NAME + '\\n')).listen(process.env.PORT)"] };
  return JSON.stringify({ name: 'web', replicas: 3, template: { ...template, cpu: 0.1, ports: [8080], healthCheck: { path: '/', intervalSeconds: 2 } } });
}

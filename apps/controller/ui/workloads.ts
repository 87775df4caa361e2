/**
 * The dashboard's services and recent jobs (browser side): rendered from the
 * `service` and `job` messages of the live stream. A service shows its ready
 * over desired replicas and each endpoint as the serving replica routes to it;
 * a job shows its status and how many attempts it took. Buttons are only
 * those the session's role may use.
 */

import type { JobSummary, ServiceView } from '@berth/core';
import { $, age, h, type Act } from './dom.js';
import { may } from './session.js';

/** Jobs the page keeps: the stream's own bound (WATCH_RECENT_JOBS), so what it shows stays exact. */
export const KEPT_JOBS = 50;
/** Jobs the page shows. */
const SHOWN_JOBS = 20;

const newestFirst = (a: JobSummary, b: JobSummary) => (a.createdAt !== b.createdAt ? (a.createdAt < b.createdAt ? 1 : -1) : a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

/** Drops all but the KEPT_JOBS newest jobs. */
export function trimJobs(jobs: Map<string, JobSummary>): void {
  if (jobs.size <= KEPT_JOBS) return;
  for (const j of [...jobs.values()].sort(newestFirst).slice(KEPT_JOBS)) jobs.delete(j.id);
}

export function renderServices(services: Map<string, ServiceView>, nodeName: (id: string | null) => string, act: Act): void {
  const list = [...services.values()].sort((a, b) => a.name.localeCompare(b.name));
  $('service-count').textContent = `${list.length} (${list.filter((s) => s.replicas > 0 && s.status.readyReplicas >= s.replicas).length} fully ready)`;
  $('services').replaceChildren(
    ...list.map((s) => {
      const ready = s.status.readyReplicas;
      const full = ready >= s.replicas;
      const actions = h('td', { class: 'actions' });
      const button = (label: string, action: string, method: string, body?: unknown, cls?: string) => {
        if (!may(method, '/v1/services/:name')) return;
        const b = h('button', { type: 'button', 'data-action': action, ...(cls ? { class: cls } : {}) }, label) as HTMLButtonElement;
        b.addEventListener('click', () => act(b, method, `/v1/services/${encodeURIComponent(s.name)}`, body));
        actions.append(b, ' ');
      };
      button('−', 'scale-down', 'PATCH', { replicas: Math.max(0, s.replicas - 1) });
      button('+', 'scale-up', 'PATCH', { replicas: s.replicas + 1 });
      button('delete', 'delete', 'DELETE', undefined, 'danger');
      const endpoints = h('td', { class: 'endpoints' });
      for (const e of s.status.endpoints) {
        const ejected = e.ejectedUntil !== undefined && Date.parse(e.ejectedUntil) > Date.now();
        const title = [`${e.address ?? 'no address yet'} on ${nodeName(e.nodeId)}`, `${e.inFlight} in flight`, ejected ? `ejected until ${e.ejectedUntil}` : ''].filter(Boolean).join('\n');
        endpoints.append(
          h('span', { class: `ep ${ejected ? 'ep-ejected' : e.ready ? 'ep-ready' : 'ep-unready'}`, 'data-endpoint': e.podName, 'data-ready': String(e.ready), title }, e.podName),
          ' ',
        );
      }
      if (s.status.endpoints.length === 0) endpoints.append(h('span', { class: 'muted' }, 'no pods'));
      const run = s.template.image ?? (s.template.command ?? []).join(' ');
      return h('tr', { 'data-service': s.name, 'data-ready': String(ready), 'data-desired': String(s.replicas) },
        h('td', { title: `template ${s.templateHash}` }, s.name),
        h('td', {}, h('span', { class: `badge ${full && s.replicas > 0 ? 'p-Running' : 'p-Pending'}`, 'data-testid': 'service-ready' }, `${ready}/${s.replicas}`)),
        h('td', {}, String(s.status.updatedReplicas)),
        h('td', {}, String(s.port ?? s.template.ports?.[0] ?? '—')),
        h('td', { class: 'reason', title: run }, run.length > 40 ? `${run.slice(0, 39)}…` : run),
        endpoints,
        actions);
    }),
  );
}

export function renderJobs(jobs: Map<string, JobSummary>): void {
  const list = [...jobs.values()].sort(newestFirst).slice(0, SHOWN_JOBS);
  $('job-count').textContent = jobs.size > SHOWN_JOBS ? `newest ${SHOWN_JOBS}` : String(list.length);
  $('jobs').replaceChildren(
    ...list.map((j) =>
      h('tr', { 'data-job': j.id, 'data-status': j.status, 'data-attempts': String(j.attempts) },
        h('td', { class: 'mono' }, j.id),
        h('td', {}, j.service),
        h('td', { class: 'mono' }, `${j.method} ${j.path}`),
        h('td', {}, h('span', { class: `badge j-${j.status}` }, j.status)),
        h('td', {}, String(j.attempts)),
        h('td', {}, j.statusCode === undefined ? '—' : String(j.statusCode)),
        h('td', { title: j.createdAt }, age(j.createdAt)),
        h('td', { class: 'reason' }, [j.reason, j.message].filter((x) => x !== '').join(': '))),
    ),
  );
}

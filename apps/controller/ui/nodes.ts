/**
 * The dashboard's nodes and pods (browser side): a row per node with its
 * cpu and memory bars, a row per pod, and each with the buttons the
 * session's role may use.
 */

import type { NodeView, PodView } from '@berth/core';
import { $, age, h, type Act } from './dom.js';
import { may } from './session.js';

const pct = (part: number, whole: number) => (whole > 0 ? Math.min(100, Math.max(0, (part / whole) * 100)) : 0);

function bar(allocated: number, used: number | null, capacity: number, unit: string): HTMLElement {
  // Widths through the CSSOM: the page's CSP refuses inline style attributes.
  const alloc = h('span', { class: 'alloc' });
  alloc.style.width = `${pct(allocated, capacity)}%`;
  const usedBar = h('span', { class: 'used' });
  usedBar.style.width = `${used === null ? 0 : pct(used, capacity)}%`;
  const b = h('span', { class: 'bar', title: `allocated ${allocated}${unit} · used ${used ?? '?'}${unit} · capacity ${capacity}${unit}` }, alloc, usedBar);
  const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));
  return h('span', {}, b, h('span', { class: 'bar-text' }, `${fmt(allocated)} / ${used === null ? '?' : fmt(used)} of ${fmt(capacity)}${unit}`));
}

export function renderNodes(all: Map<string, NodeView>, act: Act): void {
  const nodes = [...all.values()].sort((a, b) => a.name.localeCompare(b.name));
  $('node-count').textContent = `${nodes.length} (${nodes.filter((n) => n.status === 'Ready').length} Ready)`;
  $('nodes').replaceChildren(
    ...nodes.map((n) => {
      const actions = h('td', { class: 'actions' });
      const button = (label: string, action: string, cls?: string) => {
        if (!may('POST', `/v1/nodes/:id/${action}`)) return;
        const b = h('button', { type: 'button', 'data-action': action, ...(cls ? { class: cls } : {}) }, label) as HTMLButtonElement;
        b.addEventListener('click', () => act(b, 'POST', `/v1/nodes/${encodeURIComponent(n.id)}/${action}`));
        actions.append(b, ' ');
      };
      if (n.cordoned || n.draining) button('uncordon', 'uncordon');
      else button('cordon', 'cordon');
      if (!n.draining) button('drain', 'drain', 'danger');
      const status = h('td', {}, h('span', { class: `badge status s-${n.status}`, title: n.reason }, n.status));
      if (n.cordoned) status.append(h('span', { class: 'badge flag' }, 'cordoned'));
      if (n.draining) status.append(h('span', { class: 'badge flag' }, 'draining'));
      const cpuUsed = n.usage === null ? null : Math.round((n.usage.cpuPercent / 100) * n.capacity.cpu * 100) / 100;
      return h('tr', { 'data-node': n.name, 'data-status': n.status },
        h('td', { title: n.id }, n.name),
        status,
        h('td', {}, n.runtime),
        h('td', {}, bar(n.allocated.cpu, cpuUsed, n.capacity.cpu, '')),
        h('td', {}, bar(n.allocated.memoryMiB, n.usage?.memoryMiB ?? null, n.capacity.memoryMiB, 'Mi')),
        h('td', {}, String(n.pods.length)),
        actions);
    }),
  );
}

export function renderPods(all: Map<string, PodView>, nodeName: (id: string | null) => string, act: Act): void {
  const pods = [...all.values()].sort((a, b) => a.name.localeCompare(b.name));
  $('pod-count').textContent = `${pods.length} (${pods.filter((p) => p.status.phase === 'Running').length} Running)`;
  $('pods').replaceChildren(
    ...pods.map((p) => {
      const actions = h('td', { class: 'actions' });
      const button = (label: string, method: string, path: string, cls?: string) => {
        if (!may(method, `/v1/pods/:id${method === 'DELETE' ? '' : `/${label}`}`)) return;
        const b = h('button', { type: 'button', 'data-action': label, ...(cls ? { class: cls } : {}) }, label) as HTMLButtonElement;
        b.addEventListener('click', () => act(b, method, path));
        actions.append(b, ' ');
      };
      const base = `/v1/pods/${encodeURIComponent(p.id)}`;
      if (p.desired === 'stopped') button('start', 'POST', `${base}/start`);
      else button('stop', 'POST', `${base}/stop`);
      if (p.desired === 'paused') button('resume', 'POST', `${base}/resume`);
      else if (p.desired === 'running') button('pause', 'POST', `${base}/pause`);
      button('delete', 'DELETE', base, 'danger');
      const reason = [p.status.reason, p.status.message].filter((s) => s !== '').join(': ');
      return h('tr', { 'data-pod': p.name, 'data-phase': p.status.phase },
        h('td', { title: `${p.id}\n${(p.spec.command ?? []).join(' ') || p.spec.image || ''}` }, p.name),
        h('td', {}, h('span', { class: `badge phase p-${p.status.phase}` }, p.status.phase), p.deletionRequested ? h('span', { class: 'badge flag' }, 'deleting') : p.status.eviction ? h('span', { class: 'badge flag', title: `evicted: ${p.status.eviction.reason}` }, 'evicting') : ''),
        h('td', {}, p.desired),
        h('td', {}, nodeName(p.status.nodeId)),
        h('td', {}, String(p.status.restarts)),
        h('td', { title: p.createdAt }, age(p.createdAt)),
        h('td', { class: 'reason' }, reason),
        actions);
    }),
  );
}

export function renderTotals(nodes: Map<string, NodeView>): void {
  let cpu = 0, alloc = 0;
  for (const n of nodes.values()) {
    if (n.status !== 'Ready') continue;
    cpu += n.capacity.cpu;
    alloc += n.allocated.cpu;
  }
  $('totals').textContent = `Ready capacity: ${cpu} cpu, ${Math.round(alloc * 100) / 100} allocated`;
}

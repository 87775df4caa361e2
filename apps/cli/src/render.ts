import type { BerthEvent, NodeView, PodView } from './client.js';
import { formatAge } from './age.js';
import { formatCpu, formatKeyValues, formatMemory, formatPercent } from './units.js';
import { renderFields, renderTable } from './table.js';

/** Colour functions; identity when colour is off. */
export interface Palette {
  green(s: string): string;
  yellow(s: string): string;
  red(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

export const PLAIN: Palette = { green: (s) => s, yellow: (s) => s, red: (s) => s, dim: (s) => s, bold: (s) => s };

/** `Ready`, `Ready,SchedulingDisabled`, `Ready,Draining` (kubectl's wording for cordoned). */
export function nodeStatus(n: NodeView, c: Palette = PLAIN): string {
  const base = n.status === 'Ready' ? c.green(n.status) : n.status === 'NotReady' ? c.yellow(n.status) : c.red(n.status);
  const flags = [n.draining ? 'Draining' : n.cordoned ? 'SchedulingDisabled' : undefined].filter((x) => x !== undefined);
  return [base, ...flags].join(',');
}

export function podPhase(p: PodView, c: Palette = PLAIN): string {
  // Like kubectl: a pod on its way out shows why rather than its phase.
  const phase = p.deletionRequested ? 'Terminating' : p.status.eviction && p.status.phase !== 'Stopped' ? 'Evicting' : p.status.phase;
  switch (phase) {
    case 'Running':
    case 'Succeeded':
      return c.green(phase);
    case 'Failed':
    case 'Terminating':
      return c.red(phase);
    case 'Pending':
    case 'Stopped':
    case 'Paused':
      return c.yellow(phase);
    default:
      return phase;
  }
}

export const NODE_COLUMNS = ['NAME', 'STATUS', 'CPU(alloc/cap)', 'MEMORY(alloc/cap)', 'PODS', 'AGE'];
export const NODE_WIDE_COLUMNS = [...NODE_COLUMNS, 'RUNTIME', 'ADDRESS', 'CPU%', 'LOAD', 'LABELS', 'ID'];

export function nodeRow(n: NodeView, wide: boolean, now: number, c: Palette = PLAIN): string[] {
  const row = [
    n.name,
    nodeStatus(n, c),
    `${formatCpu(n.allocated.cpu)}/${formatCpu(n.capacity.cpu)}`,
    `${formatMemory(n.allocated.memoryMiB)}/${formatMemory(n.capacity.memoryMiB)}`,
    String(n.pods.length),
    formatAge(n.registeredAt, now),
  ];
  if (!wide) return row;
  return [
    ...row,
    n.runtime,
    n.address || '<none>',
    n.usage ? formatPercent(n.usage.cpuPercent) : '<unknown>',
    n.usage ? n.usage.load1.toFixed(2) : '<unknown>',
    formatKeyValues(n.labels),
    n.id,
  ];
}

export const POD_COLUMNS = ['NAME', 'PHASE', 'NODE', 'RESTARTS', 'AGE'];
export const POD_WIDE_COLUMNS = [...POD_COLUMNS, 'CPU', 'MEMORY', 'HOSTPORT', 'DESIRED', 'REASON', 'ID'];

export function podRow(p: PodView, nodeNames: ReadonlyMap<string, string>, wide: boolean, now: number, c: Palette = PLAIN): string[] {
  const node = p.status.nodeId === null ? '<none>' : (nodeNames.get(p.status.nodeId) ?? p.status.nodeId);
  const row = [p.name, podPhase(p, c), node, String(p.status.restarts), formatAge(p.createdAt, now)];
  if (!wide) return row;
  return [
    ...row,
    formatCpu(p.spec.cpu),
    formatMemory(p.spec.memoryMiB),
    p.status.hostPort === undefined ? '<none>' : String(p.status.hostPort),
    p.desired,
    p.status.reason || '<none>',
    p.id,
  ];
}

/** `berth get events`, as `kubectl get events` shows them. */
export const EVENT_COLUMNS = ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'SOURCE', 'MESSAGE'];
export const EVENT_WIDE_COLUMNS = ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'SOURCE', 'TERM', 'ID', 'MESSAGE'];

export function eventRow(e: BerthEvent, wide: boolean, now: number, c: Palette = PLAIN): string[] {
  const type = e.type === 'Warning' ? c.yellow(e.type) : e.type;
  const object = `${e.involved.kind}/${e.involved.id}`;
  if (!wide) return [formatAge(e.time, now), type, e.reason, object, e.source, e.message];
  return [formatAge(e.time, now), type, e.reason, object, e.source, e.term === undefined ? '<none>' : String(e.term), e.id, e.message];
}

/** `berth top nodes`. */
export const TOP_COLUMNS = ['NAME', 'CPU%', 'MEMORY(used)', 'MEMORY%', 'LOAD1', 'STATUS'];

export function topRow(n: NodeView, c: Palette = PLAIN): string[] {
  if (n.usage === null) return [n.name, '<unknown>', '<unknown>', '<unknown>', '<unknown>', nodeStatus(n, c)];
  const memPct = n.capacity.memoryMiB > 0 ? (n.usage.memoryMiB / n.capacity.memoryMiB) * 100 : NaN;
  return [n.name, formatPercent(n.usage.cpuPercent), formatMemory(n.usage.memoryMiB), formatPercent(memPct), n.usage.load1.toFixed(2), nodeStatus(n, c)];
}

const when = (iso: string | null | undefined, now: number) => (iso ? `${iso} (${formatAge(iso, now)} ago)` : '<none>');

/** `berth describe node`. */
export function describeNode(n: NodeView, pods: readonly PodView[], now: number, c: Palette = PLAIN): string {
  const fields: Array<[string, string]> = [
    ['Name', n.name],
    ['ID', n.id],
    ['Status', `${nodeStatus(n, c)}${n.reason ? ` (${n.reason})` : ''} since ${when(n.statusChangedAt, now)}`],
    ['Cordoned', String(n.cordoned)],
    ['Draining', String(n.draining)],
    ['Runtime', n.runtime],
    ...(n.isolation ? [['Isolation', `pods run as ${n.isolation.user}${n.isolation.uidRange ? ` (uids ${n.isolation.uidRange})` : ''}, limits by ${n.isolation.limits}`] as [string, string]] : []),
    ['Address', n.address || '<none>'],
    ['Labels', formatKeyValues(n.labels, '\n')],
    ['Registered', when(n.registeredAt, now)],
    ...(n.deregisteredAt ? [['Deregistered', when(n.deregisteredAt, now)] as [string, string]] : []),
    ['Last heartbeat', when(n.lastHeartbeat, now)],
    ['Capacity', `cpu ${formatCpu(n.capacity.cpu)}, memory ${formatMemory(n.capacity.memoryMiB)}`],
    [
      'Allocated',
      `cpu ${formatCpu(n.allocated.cpu)} (${formatPercent(n.capacity.cpu > 0 ? (n.allocated.cpu / n.capacity.cpu) * 100 : 0)}), ` +
        `memory ${formatMemory(n.allocated.memoryMiB)} (${formatPercent(n.capacity.memoryMiB > 0 ? (n.allocated.memoryMiB / n.capacity.memoryMiB) * 100 : 0)})`,
    ],
    ['Usage', n.usage ? `cpu ${formatPercent(n.usage.cpuPercent)}, memory ${formatMemory(n.usage.memoryMiB)}, load1 ${n.usage.load1.toFixed(2)}` : '<unknown>'],
    ['Agent', `${n.agent.hostname} pid ${n.agent.pid}, version ${n.agent.version}, started ${when(n.agent.startedAt, now)}`],
  ];
  if (n.provisioner) {
    const p = n.provisioner;
    fields.push(['Provisioner', `${p.kind} by ${p.by} on ${p.host}${p.containerId ? `, container ${p.containerId.slice(0, 12)}` : ''}${p.pid ? `, pid ${p.pid}` : ''}${p.logFile ? `, log ${p.logFile}` : ''}`]);
  }
  const nodeNames = new Map([[n.id, n.name]]);
  const podTable = pods.length === 0 ? '<none>' : renderTable(POD_WIDE_COLUMNS.filter((h) => h !== 'NODE' && h !== 'ID'), pods.map((p) => podRow(p, nodeNames, true, now, c).filter((_, i) => i !== 2 && i !== 10)));
  return `${renderFields(fields)}\nPods (${pods.length}):\n${podTable.split('\n').map((l) => `  ${l}`).join('\n')}`;
}

/** What a pod runs and needs (a pod's spec, or the spec a service's template makes), as describe fields. */
export function specFields(s: PodView['spec']): Array<[string, string]> {
  return [
    ['Image', s.image ?? '<none>'],
    ['Command', s.command ? s.command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ') : '<none>'],
    ['CPU', formatCpu(s.cpu)],
    ['Memory', formatMemory(s.memoryMiB)],
    ['Ports', (s.ports ?? []).length === 0 ? '<none>' : s.ports.join(', ')],
    ['Env', formatKeyValues(s.env, '\n')],
    ['Restart policy', s.restartPolicy],
    ['Priority', String(s.priority)],
    ['Node selector', formatKeyValues(s.nodeSelector)],
    ['Policy', s.policy ?? '<cluster default>'],
    [
      'Health check',
      s.healthCheck
        ? `GET ${s.healthCheck.path} on port ${s.healthCheck.port ?? 'PORT'} every ${s.healthCheck.intervalSeconds}s, timeout ${s.healthCheck.timeoutSeconds}s, ${s.healthCheck.failureThreshold} failures restart`
        : '<none>',
    ],
  ];
}

/** `berth describe pod`: every field, with the scheduler's reason and message for a Pending pod. */
export function describePod(p: PodView, nodeName: string | undefined, now: number, c: Palette = PLAIN): string {
  const s = p.spec;
  const st = p.status;
  const fields: Array<[string, string]> = [
    ['Name', p.name],
    ['ID', p.id],
    ...(p.service ? [['Service', p.service] as [string, string]] : []),
    ['Node', st.nodeId === null ? '<none>' : nodeName && nodeName !== st.nodeId ? `${nodeName} (${st.nodeId})` : st.nodeId],
    ['Created', when(p.createdAt, now)],
    ['Desired', p.desired],
    ['Phase', podPhase(p, c)],
    // Whether discovery routes to it: written by its agent (Running and its health check passes).
    ['Ready', st.ready === true ? 'true' : 'false'],
    ['Reason', st.reason || '<none>'],
    ['Message', st.message || '<none>'],
    ['Restarts', String(st.restarts)],
    ['Started', when(st.startedAt, now)],
    ['Finished', when(st.finishedAt, now)],
    ...(st.exitCode === undefined ? [] : [['Exit code', String(st.exitCode)] as [string, string]]),
    ...(st.hostPort === undefined ? [] : [['Host port', String(st.hostPort)] as [string, string]]),
    ...(p.deletionRequested ? [['Deletion requested', when(p.deletionRequested, now)] as [string, string]] : []),
    ...(st.eviction ? [['Evicting', `${st.eviction.reason}, since ${when(st.eviction.requestedAt, now)}`] as [string, string]] : []),
    ...(p.restartRequestedAt ? [['Restart requested', when(p.restartRequestedAt, now)] as [string, string]] : []),
    ...specFields(s),
  ];
  return renderFields(fields);
}

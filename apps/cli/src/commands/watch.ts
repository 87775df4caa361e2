import YAML from 'yaml';
import type { EtcdStatus, WatchMessage } from '@berth/core';
import type { BerthClient, BerthEvent, NodeView, PodView } from '../client.js';
import { EVENT_COLUMNS, EVENT_WIDE_COLUMNS, NODE_COLUMNS, NODE_WIDE_COLUMNS, POD_COLUMNS, POD_WIDE_COLUMNS, eventRow, nodeRow, podRow } from '../render.js';
import { followEvents } from '../sse.js';
import { columnWidths, formatRow } from '../table.js';
import type { CommandContext } from './context.js';
import { structured, type Output } from './options.js';

/** A streamed object for `-o json|yaml` watches: NDJSON lines or YAML documents. */
function printStreamed(ctx: CommandContext, data: unknown, format: 'json' | 'yaml'): void {
  ctx.out(format === 'json' ? JSON.stringify(data) : `---\n${YAML.stringify(data).trimEnd()}`);
}

/**
 * Follows the API's event stream with its messages parsed and typed. Says on
 * stderr when the server loses etcd (what follows is its last known state) and
 * when it has it back.
 */
function follow(ctx: CommandContext, api: BerthClient, onMessage: (m: WatchMessage) => void): Promise<never> {
  let etcdAway = false;
  const noteEtcd = (status: EtcdStatus | undefined) => {
    if (status === undefined || !status.reachable === etcdAway) return;
    etcdAway = !status.reachable;
    ctx.err(etcdAway ? `warning: the server cannot reach etcd; this is its last known state until it can (${status.message ?? ''})` : 'etcd is reachable again');
  };
  return followEvents(api, {
    onMessage: (raw) => {
      // Messages of kinds this CLI does not know are passed on and ignored by the switches below.
      const m = { event: raw.event, data: JSON.parse(raw.data) as unknown } as WatchMessage;
      noteEtcd(m.event === 'snapshot' ? m.data.etcd : m.event === 'etcd' ? m.data : undefined);
      onMessage(m);
    },
    warn: ctx.err,
  });
}

/**
 * `get nodes|pods -w`: header and every row of the `snapshot`, then a row for
 * each `node`/`pod` message whose row (age aside) changed, and `Deleted` once
 * for one that is gone. A reconnect's fresh snapshot is diffed the same way,
 * so nothing is printed twice.
 */
export function watchObjects<K extends 'nodes' | 'pods'>(
  ctx: CommandContext,
  kind: K,
  format: Output,
  matches: (x: K extends 'nodes' ? NodeView : PodView) => boolean,
): Promise<never> {
  type T = K extends 'nodes' ? NodeView : PodView;
  const { c, out } = ctx;
  const wide = format === 'wide';
  const asData = structured(format);
  const head = kind === 'nodes' ? (wide ? NODE_WIDE_COLUMNS : NODE_COLUMNS) : wide ? POD_WIDE_COLUMNS : POD_COLUMNS;
  const AGE = head.indexOf('AGE');
  const names = new Map<string, string>();
  const seen = new Map<string, { key: string; row: string[]; obj: T }>();
  let widths: number[] | undefined;
  const rowOf = (x: T, now: number) => (kind === 'nodes' ? nodeRow(x as NodeView, wide, now, c) : podRow(x as PodView, names, wide, now, c));
  const show = (id: string, x: T | null, now: number) => {
    const prev = seen.get(id);
    if (x === null || !matches(x)) {
      if (prev === undefined) return;
      seen.delete(id);
      if (asData) return printStreamed(ctx, { type: 'DELETED', object: prev.obj }, asData);
      const gone = [...prev.row];
      gone[1] = c.red('Deleted');
      return out(formatRow(gone, widths ?? []));
    }
    const row = rowOf(x, now);
    const key = asData ? JSON.stringify(x) : row.filter((_, i) => i !== AGE).join('\u0000');
    if (prev?.key === key) return;
    seen.set(id, { key, row, obj: x });
    if (asData) return printStreamed(ctx, { type: prev === undefined ? 'ADDED' : 'MODIFIED', object: x }, asData);
    out(formatRow(row, widths ?? []));
  };
  return follow(ctx, ctx.client(), (m) => {
    const now = Date.now();
    switch (m.event) {
      case 'snapshot': {
        names.clear();
        for (const n of m.data.nodes) names.set(n.id, n.name);
        const items = ((kind === 'nodes' ? m.data.nodes : m.data.pods) as T[]).sort((a, b) => a.name.localeCompare(b.name));
        if (widths === undefined) {
          widths = columnWidths([head, ...items.filter(matches).map((x) => rowOf(x, now))]).map((w, i) => Math.max(w, i === 0 ? 20 : kind === 'pods' && i === 2 ? 12 : 8));
          if (!asData) out(formatRow(head, widths));
        }
        const present = new Set(items.map((x) => x.id));
        for (const x of items) show(x.id, x, now);
        for (const id of [...seen.keys()]) if (!present.has(id)) show(id, null, now);
        return;
      }
      case 'node':
        if (m.data.node !== null) names.set(m.data.id, m.data.node.name);
        if (kind === 'nodes') show(m.data.id, m.data.node as T | null, now);
        return;
      case 'pod':
        if (kind === 'pods') show(m.data.id, m.data.pod as T | null, now);
        return;
    }
  });
}

/** `get events -w`: the snapshot's recent events, then each new one (never one twice, across reconnects too). */
export function watchEvents(ctx: CommandContext, api: BerthClient, format: Output): Promise<never> {
  const { c, out } = ctx;
  const wide = format === 'wide';
  const asData = structured(format);
  const head = wide ? EVENT_WIDE_COLUMNS : EVENT_COLUMNS;
  const seen = new Set<string>();
  let widths: number[] | undefined;
  const show = (e: BerthEvent, now: number) => {
    if (seen.has(e.id)) return;
    seen.add(e.id);
    if (asData) return printStreamed(ctx, e, asData);
    out(formatRow(eventRow(e, wide, now, c), widths ?? []));
  };
  return follow(ctx, api, (m) => {
    const now = Date.now();
    if (m.event === 'snapshot') {
      const events = [...m.data.events].sort((a, b) => a.time.localeCompare(b.time));
      if (widths === undefined) {
        widths = columnWidths([head, ...events.map((e) => eventRow(e, wide, now, c))]).map((w, i) => Math.max(w, [9, 7, 16, 20, 12][i] ?? 0));
        if (!asData) out(formatRow(head, widths));
      }
      for (const e of events) show(e, now);
    } else if (m.event === 'event') {
      show(m.data, now);
    }
  });
}

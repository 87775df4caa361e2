import { Readable } from 'node:stream';
import fs from 'node:fs';
import { Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import pc from 'picocolors';
import ora from 'ora';
import YAML from 'yaml';
import type { CreatePodRequest, ProvisionNodeRequest } from '@berth/core';
import { ApiError, BerthClient, type BerthEvent, type ClusterView, type LeaderView, type NodeView, type PodView } from './client.js';
import { resolveConfig } from './config.js';
import { formatAge } from './age.js';
import { BASH_COMPLETION, ZSH_COMPLETION, complete, extractGlobalFlags, getKindOf, kindOf } from './completion.js';
import { followEvents } from './sse.js';
import { failoverDemo } from './demo.js';
import { parseManifests, normalizedSpec, specDiff } from './manifest.js';
import {
  EVENT_COLUMNS, EVENT_WIDE_COLUMNS, NODE_COLUMNS, NODE_WIDE_COLUMNS, PLAIN, POD_COLUMNS, POD_WIDE_COLUMNS, TOP_COLUMNS,
  describeNode, describePod, eventRow, nodeRow, podRow, topRow, type Palette,
} from './render.js';
import { columnWidths, formatRow, renderFields, renderTable } from './table.js';
import { formatCpu, formatMemory, parseCpu, parseInteger, parseKeyValue, parseKeyValues, parseMemory } from './units.js';

/** Where output goes; tests and main pass the process streams. */
export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

/** Colour only on a TTY and never with NO_COLOR (https://no-color.org). */
export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
}

function palette(enabled: boolean): Palette {
  if (!enabled) return PLAIN;
  const c = pc.createColors(true);
  return { green: c.green, yellow: c.yellow, red: c.red, dim: c.dim, bold: c.bold };
}

/** commander argParsers: turn our parse errors into commander's usage errors (exit 1). */
const arg = <T>(fn: (s: string) => T) => (value: string) => {
  try {
    return fn(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};
const collect = (value: string, previous: string[] = []) => [...previous, value];

type Output = 'wide' | 'json' | 'yaml' | undefined;
const outputOption = () => new Option('-o, --output <format>', 'output format: wide, json or yaml').choices(['wide', 'json', 'yaml'] as const);

function getKindArg(word: string): 'nodes' | 'pods' | 'events' {
  const kind = getKindOf(word);
  if (kind === undefined) throw new InvalidArgumentError(`unknown resource type ${JSON.stringify(word)}: use nodes (node, no), pods (pod, po) or events (event, ev)`);
  return kind;
}

function kindArg(word: string): 'nodes' | 'pods' {
  const kind = kindOf(word);
  if (kind === undefined) throw new InvalidArgumentError(`unknown resource type ${JSON.stringify(word)}: use nodes (node, no) or pods (pod, po)`);
  return kind;
}

/** Builds the `berth` program. */
export function buildProgram(io: Io): Command<[], { server?: string; token?: string }> {
  const c = palette(colorEnabled(io.stdout, io.env));
  const out = (s: string) => void io.stdout.write(`${s}\n`);
  const err = (s: string) => void io.stderr.write(`${s}\n`);

  const program = new Command('berth')
    .description('Operate a Berth cluster through its REST API (any controller replica answers).')
    .version('0.1.0')
    .option('-s, --server <url>', 'API server URL (else $BERTH_SERVER, ~/.config/berth/config.json "server", http://127.0.0.1:8081)')
    .option('--token <token>', 'bearer token sent as Authorization (else $BERTH_TOKEN or config "token")')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 API or usage error (the API's message on stderr), 2 the server could not be reached.
Examples:
  berth get nodes
  berth run web --cpu 500m --memory 256Mi --port 8000 -- sh -c 'exec python3 -m http.server $PORT'
  berth get pods -w
  berth get events -w
  berth describe pod web
  berth apply -f pods.yaml
  source <(berth completion bash)`,
    );

  const client = () => {
    const cfg = resolveConfig(program.opts(), io.env);
    return new BerthClient(cfg.server, cfg.token);
  };
  const nodeNames = async (api: BerthClient) => new Map((await api.nodes()).map((n) => [n.id, n.name]));
  const printData = (data: unknown, format: 'json' | 'yaml') => out(format === 'json' ? JSON.stringify(data, null, 2) : YAML.stringify(data).trimEnd());

  // ---- get ----
  program
    .command('get')
    .summary('List nodes, pods or events, or show one (-o wide|json|yaml, -w to watch)')
    .description(
      'List nodes, pods or recent events (or show one node or pod by name). With -w, the list is followed live over the ' +
        "API's event stream (GET /v1/events?watch=1): a row is printed for every node or pod whose row changed (Deleted when it is gone), " +
        'or for every new event; a dropped stream is reopened by itself.',
    )
    .argument('<kind>', 'nodes (node, no), pods (pod, po) or events (event, ev)', getKindArg)
    .argument('[name]', 'one node or pod, by name or id')
    .addOption(outputOption())
    .option('-w, --watch', 'after the list, stream changes until interrupted (-o json|yaml: one {type, object} per change; events: one event each)')
    .option('--node <node>', 'pods only: on this node')
    .option('--phase <phase>', 'pods only: in this phase (Pending, Running, ...)')
    .option('--limit <n>', 'events only: how many recent events (default 100)', arg((s) => parseInteger(s, '--limit', 1, 1000)))
    .action(async (kind, name, opts) => {
      const api = client();
      const format: Output = opts.output;
      const wide = format === 'wide';
      if (kind === 'events') {
        if (name !== undefined) throw new InvalidArgumentError('events are listed, not fetched by name: berth get events');
        if (opts.watch) return watchEvents(api, format);
        const events = await api.events(opts.limit);
        if (format === 'json' || format === 'yaml') return printData({ items: events }, format);
        if (events.length === 0) return err('No events found.');
        const now = Date.now();
        return out(renderTable(wide ? EVENT_WIDE_COLUMNS : EVENT_COLUMNS, events.map((e) => eventRow(e, wide, now, c))));
      }
      if (kind === 'nodes') {
        if (opts.watch) {
          if (name !== undefined) await api.node(name);
          return watchObjects('nodes', format, (n) => name === undefined || n.name === name || n.id === name);
        }
        const nodes = name === undefined ? await api.nodes() : [await api.node(name)];
        if (format === 'json' || format === 'yaml') return printData(name === undefined ? { items: nodes } : nodes[0], format);
        if (nodes.length === 0) return err('No nodes found.');
        const now = Date.now();
        return out(renderTable(wide ? NODE_WIDE_COLUMNS : NODE_COLUMNS, nodes.sort((a, b) => a.name.localeCompare(b.name)).map((n) => nodeRow(n, wide, now, c))));
      }
      const query = { node: opts.node, phase: opts.phase };
      if (opts.watch) {
        // Checked up front, so a typo fails as the plain list would (the stream itself is not filtered).
        if (opts.phase !== undefined) await api.pods(query);
        const nodeId = opts.node === undefined ? undefined : (await api.node(opts.node)).id;
        if (name !== undefined) await api.pod(name);
        return watchObjects('pods', format, (p) =>
          (name === undefined || p.name === name || p.id === name) && (nodeId === undefined || p.status.nodeId === nodeId) && (opts.phase === undefined || p.status.phase === opts.phase),
        );
      }
      const pods = name === undefined ? await api.pods(query) : [await api.pod(name)];
      if (format === 'json' || format === 'yaml') return printData(name === undefined ? { items: pods } : pods[0], format);
      if (pods.length === 0) return err('No pods found.');
      const names = await nodeNames(api);
      const now = Date.now();
      return out(renderTable(wide ? POD_WIDE_COLUMNS : POD_COLUMNS, pods.sort((a, b) => a.name.localeCompare(b.name)).map((p) => podRow(p, names, wide, now, c))));
    });

  /** A streamed object for `-o json|yaml` watches: NDJSON lines or YAML documents. */
  const printStreamed = (data: unknown, format: 'json' | 'yaml') => out(format === 'json' ? JSON.stringify(data) : `---\n${YAML.stringify(data).trimEnd()}`);
  const follow = (api: BerthClient, onMessage: (event: string, data: unknown) => void) =>
    followEvents(api, {
      onMessage: (m) => {
        const data = JSON.parse(m.data) as unknown;
        noteEtcd(m.event, data);
        onMessage(m.event, data);
      },
      warn: err,
    });

  /** Watches say on stderr when the server loses etcd (what follows is its last known state) and when it is back. */
  let etcdAway = false;
  function noteEtcd(event: string, data: unknown): void {
    const status = event === 'snapshot' ? (data as { etcd?: { reachable: boolean; message: string | null } }).etcd : event === 'etcd' ? (data as { reachable: boolean; message: string | null }) : undefined;
    if (status === undefined || !status.reachable === etcdAway) return;
    etcdAway = !status.reachable;
    err(etcdAway ? `warning: the server cannot reach etcd; this is its last known state until it can (${status.message ?? ''})` : 'etcd is reachable again');
  }

  /**
   * Watch of nodes or pods over the event stream: header and every row of the
   * `snapshot`, then a row for each `node`/`pod` message whose row (age aside)
   * changed, and `Deleted` once for one that is gone. A reconnect's fresh
   * snapshot is diffed the same way, so nothing is printed twice.
   */
  function watchObjects<K extends 'nodes' | 'pods'>(kind: K, format: Output, matches: (x: K extends 'nodes' ? NodeView : PodView) => boolean): Promise<never> {
    type T = K extends 'nodes' ? NodeView : PodView;
    const wide = format === 'wide';
    const structured = format === 'json' || format === 'yaml' ? format : undefined;
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
        if (structured) return printStreamed({ type: 'DELETED', object: prev.obj }, structured);
        const gone = [...prev.row];
        gone[1] = c.red('Deleted');
        return out(formatRow(gone, widths ?? []));
      }
      const row = rowOf(x, now);
      const key = structured ? JSON.stringify(x) : row.filter((_, i) => i !== AGE).join('\u0000');
      if (prev?.key === key) return;
      seen.set(id, { key, row, obj: x });
      if (structured) return printStreamed({ type: prev === undefined ? 'ADDED' : 'MODIFIED', object: x }, structured);
      out(formatRow(row, widths ?? []));
    };
    return follow(client(), (event, data) => {
      const now = Date.now();
      if (event === 'snapshot') {
        const snap = data as { nodes: NodeView[]; pods: PodView[] };
        names.clear();
        for (const n of snap.nodes) names.set(n.id, n.name);
        const items = ((kind === 'nodes' ? snap.nodes : snap.pods) as T[]).sort((a, b) => a.name.localeCompare(b.name));
        if (widths === undefined) {
          widths = columnWidths([head, ...items.filter(matches).map((x) => rowOf(x, now))]).map((w, i) => Math.max(w, i === 0 ? 20 : kind === 'pods' && i === 2 ? 12 : 8));
          if (!structured) out(formatRow(head, widths));
        }
        const present = new Set(items.map((x) => x.id));
        for (const x of items) show(x.id, x, now);
        for (const id of [...seen.keys()]) if (!present.has(id)) show(id, null, now);
      } else if (event === 'node') {
        const m = data as { id: string; node: NodeView | null };
        if (m.node !== null) names.set(m.id, m.node.name);
        if (kind === 'nodes') show(m.id, m.node as T | null, now);
      } else if (event === 'pod' && kind === 'pods') {
        const m = data as { id: string; pod: PodView | null };
        show(m.id, m.pod as T | null, now);
      }
    });
  }

  /** `get events -w`: the snapshot's recent events, then each new one (never one twice, across reconnects too). */
  function watchEvents(api: BerthClient, format: Output): Promise<never> {
    const wide = format === 'wide';
    const structured = format === 'json' || format === 'yaml' ? format : undefined;
    const head = wide ? EVENT_WIDE_COLUMNS : EVENT_COLUMNS;
    const seen = new Set<string>();
    let widths: number[] | undefined;
    const show = (e: BerthEvent, now: number) => {
      if (seen.has(e.id)) return;
      seen.add(e.id);
      if (structured) return printStreamed(e, structured);
      out(formatRow(eventRow(e, wide, now, c), widths ?? []));
    };
    return follow(api, (event, data) => {
      const now = Date.now();
      if (event === 'snapshot') {
        const events = [...(data as { events: BerthEvent[] }).events].sort((a, b) => a.time.localeCompare(b.time));
        if (widths === undefined) {
          widths = columnWidths([head, ...events.map((e) => eventRow(e, wide, now, c))]).map((w, i) => Math.max(w, [9, 7, 16, 20, 12][i] ?? 0));
          if (!structured) out(formatRow(head, widths));
        }
        for (const e of events) show(e, now);
      } else if (event === 'event') {
        show(data as BerthEvent, now);
      }
    });
  }

  // ---- describe ----
  program
    .command('describe')
    .summary('Show every field of a node or pod, with reasons')
    .description('Show every field of a node or pod: status and its reason (the scheduler\'s reason for a Pending pod), spec, usage, pods')
    .argument('<kind>', 'node or pod', kindArg)
    .argument('<name>', 'name or id')
    .action(async (kind, name) => {
      const api = client();
      const now = Date.now();
      if (kind === 'nodes') {
        const node = await api.node(name);
        const pods = await api.pods({ node: node.id });
        return out(describeNode(node, pods.sort((a, b) => a.name.localeCompare(b.name)), now, c));
      }
      const pod = await api.pod(name);
      let nodeName: string | undefined;
      if (pod.status.nodeId !== null) nodeName = await api.node(pod.status.nodeId).then((n) => n.name, () => undefined);
      return out(describePod(pod, nodeName, now, c));
    });

  // ---- top ----
  program
    .command('top')
    .description('Resource usage of nodes as their agents last reported it (cpu %, memory, load)')
    .argument('<kind>', 'nodes', (w) => {
      if (kindOf(w) !== 'nodes') throw new InvalidArgumentError('only "berth top nodes" is available');
      return 'nodes' as const;
    })
    .argument('[name]', 'one node')
    .action(async (_kind, name) => {
      const api = client();
      const nodes = name === undefined ? await api.nodes() : [await api.node(name)];
      if (nodes.length === 0) return err('No nodes found.');
      return out(renderTable(TOP_COLUMNS, nodes.sort((a, b) => a.name.localeCompare(b.name)).map((n) => topRow(n, c))));
    });

  // ---- nodes add ----
  const nodes = program.command('nodes').description('Node provisioning');
  nodes
    .command('add')
    .description('Provision a node (POST /v1/nodes): the controller starts an agent as a container or process and answers once it registered')
    .requiredOption('--cpu <cpu>', 'CPU cores (2, 0.5, 500m)', arg(parseCpu))
    .option('--memory <quantity>', 'memory (8Gi, 512Mi; default 512Mi)', arg(parseMemory))
    .addOption(new Option('--runtime <runtime>', 'how the node runs pods (default process)').choices(['process', 'simulated', 'docker'] as const))
    .option('--name <name>', 'node name (generated when omitted)')
    .option('-l, --label <k=v>', 'label, repeatable (also k=v,k2=v2)', collect)
    .addOption(outputOption())
    .action(async (opts) => {
      const api = client();
      const body: ProvisionNodeRequest = {
        cpu: opts.cpu,
        ...(opts.memory === undefined ? {} : { memoryMiB: opts.memory }),
        ...(opts.runtime === undefined ? {} : { runtime: opts.runtime }),
        ...(opts.name === undefined ? {} : { name: opts.name }),
        ...(opts.label === undefined ? {} : { labels: parseLabels(opts.label) }),
      };
      const spinner = ora({
        text: `provisioning node${opts.name ? ` ${opts.name}` : ''} (${formatCpu(opts.cpu)} cpu, ${formatMemory(opts.memory ?? 512)}); waiting for its agent to register`,
        stream: io.stderr as NodeJS.WriteStream,
        isEnabled: colorEnabled(io.stderr, io.env),
      }).start();
      let node: NodeView;
      try {
        node = await api.request<NodeView>('POST', '/v1/nodes', body, { timeoutMs: null });
      } finally {
        spinner.stop();
      }
      if (opts.output === 'json' || opts.output === 'yaml') return printData(node, opts.output);
      out(`node/${node.name} created (${node.status}, ${formatCpu(node.capacity.cpu)} cpu, ${formatMemory(node.capacity.memoryMiB)}, runtime ${node.runtime})`);
    });

  function parseLabels(values: string[]): Record<string, string> {
    try {
      return parseKeyValues(values, 'label', true);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  }

  // ---- cordon / uncordon / drain ----
  for (const [action, done, what] of [
    ['cordon', 'cordoned', 'Mark a node unschedulable'],
    ['uncordon', 'uncordoned', 'Mark a node schedulable again (ends a drain)'],
    ['drain', 'drained', 'Cordon a node and move its pods elsewhere'],
  ] as const) {
    program
      .command(action)
      .description(what)
      .argument('<node>', 'node name or id')
      .action(async (name) => {
        const node = await client().request<NodeView>('POST', `/v1/nodes/${encodeURIComponent(name)}/${action}`, undefined, { timeoutMs: null });
        out(`node/${node.name} ${done}`);
      });
  }

  // ---- delete ----
  program
    .command('delete')
    .summary('Delete a node or pod')
    .description('Delete a pod (its agent stops it first) or a node (drained first, then removed)')
    .argument('<kind>', 'node or pod', kindArg)
    .argument('<name>', 'name or id')
    .action(async (kind, name) => {
      const api = client();
      const path = `/v1/${kind}/${encodeURIComponent(name)}`;
      const res = await api.request<{ name: string }>('DELETE', path, undefined, { timeoutMs: null });
      out(`${kind === 'nodes' ? 'node' : 'pod'} "${res.name}" deleted`);
    });

  // ---- run ----
  program
    .command('run')
    .summary('Create a pod: berth run NAME [flags] -- CMD ARGS')
    .description('Create a pod. Everything after -- is its command (argv); the process runtime runs it with PORT set to an allocated host port')
    .argument('<name>', 'pod name (DNS label)')
    .argument('[command...]', 'command and arguments, after --')
    .option('--image <image>', 'container image (docker runtime)')
    .option('--cpu <cpu>', 'CPU cores (0.5, 500m)', arg(parseCpu), 0.5)
    .option('--memory <quantity>', 'memory (256Mi, 1Gi; default 128Mi)', arg(parseMemory))
    .option('-p, --port <port>', 'port the pod listens on, repeatable', (v, prev: number[] = []) => [...prev, arg((s) => parseInteger(s, 'port', 1, 65535))(v)])
    .option('-e, --env <K=V>', 'environment variable, repeatable', collect)
    .addOption(new Option('--restart <policy>', 'restart policy (default Always)').choices(['Always', 'OnFailure', 'Never'] as const))
    .option('--priority <n>', 'priority (higher may preempt lower)', arg((s) => parseInteger(s, 'priority', -1_000_000, 1_000_000)))
    .option('--selector <k=v>', 'node selector label, repeatable', collect)
    .addOption(new Option('--policy <policy>', 'scheduling policy for this pod').choices(['first-fit', 'best-fit', 'worst-fit', 'spread', 'binpack'] as const))
    .addOption(outputOption())
    .action(async (name, command, opts) => {
      let env: Record<string, string> | undefined;
      let selector: Record<string, string> | undefined;
      try {
        env = opts.env === undefined ? undefined : parseKeyValues(opts.env, 'env');
        selector = opts.selector === undefined ? undefined : parseKeyValues(opts.selector, 'selector', true);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
      const body: CreatePodRequest = {
        name,
        cpu: opts.cpu,
        ...(opts.image === undefined ? {} : { image: opts.image }),
        ...(command.length === 0 ? {} : { command }),
        ...(env === undefined ? {} : { env }),
        ...(opts.memory === undefined ? {} : { memoryMiB: opts.memory }),
        ...(opts.port === undefined ? {} : { ports: opts.port }),
        ...(opts.restart === undefined ? {} : { restartPolicy: opts.restart }),
        ...(opts.priority === undefined ? {} : { priority: opts.priority }),
        ...(selector === undefined ? {} : { nodeSelector: selector }),
        ...(opts.policy === undefined ? {} : { policy: opts.policy }),
      };
      const pod = await client().request<PodView>('POST', '/v1/pods', body);
      if (opts.output === 'json' || opts.output === 'yaml') return printData(pod, opts.output);
      out(`pod/${pod.name} created`);
    });

  // ---- apply ----
  program
    .command('apply')
    .summary('Create the pods of a YAML manifest (idempotent)')
    .description('Create the pods of a manifest (multi-document YAML, kind: Pod). Pods that exist with the same spec are "unchanged"; a changed spec needs delete + apply')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin')
    .action(async (opts) => {
      const file = opts.filename;
      let text: string;
      try {
        text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
      }
      const manifests = parseManifests(text, file === '-' ? '<stdin>' : file);
      if (manifests.length === 0) throw new UsageError(`no objects passed to apply (${file} has no documents)`);
      const api = client();
      let failed = false;
      for (const { request } of manifests) {
        const existing = await api.pod(request.name).catch((e: unknown) => {
          if (e instanceof ApiError && e.code === 'NOT_FOUND') return undefined;
          throw e;
        });
        if (existing === undefined) {
          await api.request<PodView>('POST', '/v1/pods', request);
          out(`pod/${request.name} created`);
          continue;
        }
        const diff = specDiff(existing.spec, normalizedSpec(request));
        if (diff.length === 0) {
          out(`pod/${request.name} unchanged`);
          continue;
        }
        failed = true;
        err(
          `error: pod/${request.name} already exists with a different spec (${diff.join('; ')}).\n` +
            `  A pod's spec cannot be changed in place: delete it and apply again:  berth delete pod ${request.name} && berth apply -f ${file}`,
        );
      }
      if (failed) process.exitCode = 1;
    });

  // ---- pod lifecycle ----
  for (const [action, done, what] of [
    ['stop', 'stopped', 'Stop a pod (it stays, with its spec, until started again)'],
    ['start', 'started', 'Start a stopped pod'],
    ['pause', 'paused', 'Pause a running pod'],
    ['resume', 'resumed', 'Resume a paused pod'],
    ['restart', 'restarted', 'Restart a pod in place'],
  ] as const) {
    program
      .command(action)
      .description(what)
      .argument('<kind>', 'pod', (w) => {
        if (kindOf(w) !== 'pods') throw new InvalidArgumentError(`only pods can be ${done}: berth ${action} pod NAME`);
        return 'pods' as const;
      })
      .argument('<name>', 'pod name or id')
      .action(async (_kind, name) => {
        const pod = await client().request<PodView>('POST', `/v1/pods/${encodeURIComponent(name)}/${action}`);
        out(`pod/${pod.name} ${done}`);
      });
  }

  // ---- logs ----
  program
    .command('logs')
    .description("Print a pod's output (proxied from its node's agent by whichever replica answers)")
    .argument('<pod>', 'pod name or id')
    .option('-f, --follow', 'stream new output until interrupted')
    .option('--tail <n>', 'only the last N lines', arg((s) => parseInteger(s, '--tail', 0, 100_000)))
    .action(async (name, opts) => {
      const qs = new URLSearchParams();
      if (opts.tail !== undefined) qs.set('tail', String(opts.tail));
      if (opts.follow) qs.set('follow', '1');
      const q = qs.toString();
      const res = await client().raw('GET', `/v1/pods/${encodeURIComponent(name)}/logs${q === '' ? '' : `?${q}`}`, undefined, { timeoutMs: opts.follow ? null : 30_000 });
      if (res.body === null) return;
      await new Promise<void>((resolve, reject) => {
        const stream = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
        stream.on('error', reject);
        stream.on('end', resolve);
        stream.pipe(io.stdout, { end: false });
      });
    });

  // ---- leader / cluster ----
  program
    .command('leader')
    .description('The current leader as recorded in etcd (every replica agrees)')
    .addOption(outputOption())
    .action(async (opts) => {
      const leader = await client().get<LeaderView>('/v1/leader');
      if (opts.output === 'json' || opts.output === 'yaml') return printData(leader, opts.output);
      const now = Date.now();
      out(
        renderFields([
          ['Leader', leader.leaderId === null ? c.red('<none> (an election is in progress)') : c.bold(leader.leaderId)],
          ['Address', leader.address ?? '<none>'],
          ['Term', leader.term === null ? '<none>' : String(leader.term)],
          ['Since', leader.since === null ? '<none>' : `${leader.since} (${formatAge(leader.since, now)} ago)`],
        ]),
      );
    });

  program
    .command('cluster')
    .description('Leader, term, controller replicas with their roles, node and pod counts, capacity and allocation')
    .addOption(outputOption())
    .action(async (opts) => {
      const api = client();
      const [cluster, nodeList, pods] = await Promise.all([api.get<ClusterView>('/v1/cluster'), api.nodes(), api.pods()]);
      const count = <T>(xs: readonly T[], key: (x: T) => string) => {
        const m = new Map<string, number>();
        for (const x of xs) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
        return m;
      };
      const sum = (f: (n: NodeView) => number) => nodeList.filter((n) => n.status !== 'Dead').reduce((s, n) => s + f(n), 0);
      const capacity = { cpu: sum((n) => n.capacity.cpu), memoryMiB: sum((n) => n.capacity.memoryMiB) };
      const allocated = { cpu: sum((n) => n.allocated.cpu), memoryMiB: sum((n) => n.allocated.memoryMiB) };
      const nodeStatus = count(nodeList, (n) => n.status);
      const podPhases = count(pods, (p) => p.status.phase);
      if (opts.output === 'json' || opts.output === 'yaml') {
        return printData(
          { ...cluster, nodes: { total: nodeList.length, ...Object.fromEntries(nodeStatus) }, pods: { total: pods.length, ...Object.fromEntries(podPhases) }, capacity, allocated },
          opts.output,
        );
      }
      const now = Date.now();
      const l = cluster.leader;
      const breakdown = (m: Map<string, number>) => (m.size === 0 ? '' : ` (${[...m].sort().map(([k, v]) => `${v} ${k}`).join(', ')})`);
      out(
        renderFields([
          ['Leader', l.leaderId === null ? c.red('<none> (an election is in progress)') : `${c.bold(l.leaderId)} at ${l.address ?? '?'}`],
          ['Term', l.term === null ? '<none>' : String(l.term)],
          ['Leader since', l.since === null ? '<none>' : `${l.since} (${formatAge(l.since, now)} ago)`],
          ['Answered by', `${cluster.self.id} (${cluster.self.role}, ${cluster.self.ready ? 'ready' : 'not ready'}, cache revision ${cluster.self.cacheRevision})`],
          ['etcd', `${cluster.etcd.endpoints.join(', ')} (${cluster.etcd.reachable ? c.green('reachable') : c.red('unreachable')})`],
          ['Nodes', `${nodeList.length}${breakdown(nodeStatus)}`],
          ['Pods', `${pods.length}${breakdown(podPhases)}`],
          ['Capacity', `cpu ${formatCpu(capacity.cpu)}, memory ${formatMemory(capacity.memoryMiB)} (nodes not Dead)`],
          ['Allocated', `cpu ${formatCpu(allocated.cpu)}, memory ${formatMemory(allocated.memoryMiB)}`],
        ]),
      );
      out(`Replicas (${cluster.replicas.length}):`);
      const rows = [...cluster.replicas]
        .sort((a, b) => a.createRevision - b.createRevision)
        .map((r) => [r.id, r.leader ? c.green('leader') : 'follower', r.address, String(r.pid), formatAge(r.startedAt, now), String(r.createRevision)]);
      out(renderTable(['ID', 'ROLE', 'ADDRESS', 'PID', 'AGE', 'CREATE-REVISION'], rows).split('\n').map((line) => `  ${line}`).join('\n'));
    });

  // ---- demo ----
  const demo = program.command('demo').description('Demonstrations against a running cluster');
  demo
    .command('failover')
    .description(
      "Kill the leader's container and show the cluster carry on: prints the leader, creates pods, runs `docker kill` on the " +
        "leader's container (a cluster from compose.ha.yml: controller containers are labelled berth.role=controller and named " +
        'by their compose service, c1..c3), times the election of the next leader, checks every pod is still Running and bound ' +
        'exactly once, then `docker start`s the killed replica and waits for it to rejoin as a follower. Exits 1 if any claim fails.',
    )
    .option('--servers <urls>', 'every controller replica, comma-separated (else $BERTH_SERVERS)', 'http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083')
    .option('--pods <n>', 'pods to create before the kill', arg((s) => parseInteger(s, '--pods', 1, 50)), 3)
    .option('--image <image>', 'image of the demo pods (they run sleep 3600)', 'busybox:1.36')
    .option('--project <name>', 'compose project of the cluster (needed only when several run)')
    .option('--docker <path>', 'docker CLI to kill and start the container with', 'docker')
    .option('--keep', 'keep the demo pods afterwards')
    .option('--timeout <seconds>', 'how long pods may take to run and the killed replica to rejoin', arg((s) => parseInteger(s, '--timeout', 1, 3600)), 120)
    .action(async (opts, cmd) => {
      const servers = (cmd.getOptionValueSource('servers') === 'default' && io.env.BERTH_SERVERS ? io.env.BERTH_SERVERS : opts.servers)
        .split(',')
        .map((s) => s.trim().replace(/\/+$/, ''))
        .filter((s) => s !== '');
      const cfg = resolveConfig(program.opts(), io.env);
      const ok = await failoverDemo(
        { servers, token: cfg.token, pods: opts.pods, image: opts.image, project: opts.project, docker: opts.docker, keep: opts.keep === true, timeoutMs: opts.timeout * 1000 },
        out,
        c,
      );
      if (!ok) process.exitCode = 1;
    });

  // ---- completion ----
  program
    .command('completion')
    .description('Print a shell completion script: source <(berth completion bash), or zsh')
    .argument('<shell>', 'bash or zsh', (s) => {
      if (s !== 'bash' && s !== 'zsh') throw new InvalidArgumentError('supported shells: bash, zsh');
      return s;
    })
    .action((shell) => void io.stdout.write(shell === 'bash' ? BASH_COMPLETION : ZSH_COMPLETION));

  program
    .command('__complete', { hidden: true })
    .description('completion candidates for the words typed so far (used by the completion scripts)')
    .argument('[words...]')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (words) => runComplete(words, io, program.opts()).catch(() => undefined));

  return program;
}

/** A local usage problem (exit 1, no "from server"). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `berth __complete WORDS...`: prints one candidate per line; never fails loudly. */
export async function runComplete(words: readonly string[], io: Io, globals: { server?: string; token?: string } = {}): Promise<void> {
  const flags = extractGlobalFlags(words);
  const cfg = resolveConfig({ server: flags.server ?? globals.server, token: flags.token ?? globals.token }, io.env);
  const api = new BerthClient(cfg.server, cfg.token, 3000);
  const candidates = await complete(words, async (kind) => (kind === 'nodes' ? await api.nodes() : await api.pods()).map((x) => x.name).sort());
  if (candidates.length > 0) io.stdout.write(`${candidates.join('\n')}\n`);
}

/** Parses `k=v` pairs (re-exported for tests). */
export { parseKeyValue };

import { Option } from '@commander-js/extra-typings';
import { JOB_STATUSES } from '@berth/core';
import { EVENT_COLUMNS, EVENT_WIDE_COLUMNS, NODE_COLUMNS, NODE_WIDE_COLUMNS, POD_COLUMNS, POD_WIDE_COLUMNS, eventRow, nodeRow, podRow } from '../render.js';
import { JOB_COLUMNS, JOB_WIDE_COLUMNS, SERVICE_COLUMNS, SERVICE_WIDE_COLUMNS, jobRow, serviceRow } from '../render-workloads.js';
import { renderTable } from '../table.js';
import { parseInteger } from '../units.js';
import { UsageError, type CommandContext, type Program } from './context.js';
import { arg, getKindArg, outputOption, structured } from './options.js';
import { watchEvents, watchObjects } from './watch.js';
import { getTokens } from './auth.js';

/** `berth get nodes|pods|services|jobs|events [NAME]`: a table, the objects (-o json|yaml), or a live watch (-w, nodes, pods and events). */
export function registerGet(program: Program, ctx: CommandContext): void {
  const { c, out, err } = ctx;
  program
    .command('get')
    .summary('List nodes, pods, services, jobs, events or tokens, or show one (-o wide|json|yaml, -w to watch)')
    .description(
      'List nodes, pods, services, jobs (newest first), recent events or API tokens (admin; never their secrets), or show one by name (a job by id). With -w, a list of nodes, pods or events is followed live over the ' +
        "API's event stream (GET /v1/events?watch=1): a row is printed for every node or pod whose row changed (Deleted when it is gone), " +
        'or for every new event; a dropped stream is reopened by itself.',
    )
    .argument('<kind>', 'nodes (node, no), pods (pod, po), services (service, svc), jobs (job), events (event, ev) or tokens (token)', getKindArg)
    .argument('[name]', 'one node, pod or service by name (or id), one job by id')
    .addOption(outputOption())
    .option('-w, --watch', 'after the list, stream changes until interrupted (-o json|yaml: one {type, object} per change; events: one event each)')
    .option('--node <node>', 'pods only: on this node')
    .option('--phase <phase>', 'pods only: in this phase (Pending, Running, ...)')
    .option('--service <service>', 'pods and jobs: of this service')
    .addOption(new Option('--status <status>', 'jobs only: with this status').choices(JOB_STATUSES))
    .option('--limit <n>', 'events and jobs: how many, the most recent (default 100)', arg((s) => parseInteger(s, '--limit', 1, 10_000)))
    .action(async (kind, name, opts) => {
      const api = ctx.client();
      const format = opts.output;
      const asData = structured(format);
      const wide = format === 'wide';
      if (kind === 'tokens') {
        if (name !== undefined) throw new UsageError('tokens are listed, not fetched by name: berth get tokens');
        if (opts.watch) throw new UsageError('-w follows nodes, pods and events; tokens are listed');
        return getTokens(ctx, format);
      }
      if (kind === 'events') {
        if (name !== undefined) throw new UsageError('events are listed, not fetched by name: berth get events');
        if (opts.watch) return watchEvents(ctx, api, format);
        const events = await api.events(opts.limit);
        if (asData) return ctx.printData({ items: events }, asData);
        if (events.length === 0) return err('No events found.');
        const now = Date.now();
        return out(renderTable(wide ? EVENT_WIDE_COLUMNS : EVENT_COLUMNS, events.map((e) => eventRow(e, wide, now, c))));
      }
      if (kind === 'services' || kind === 'jobs') {
        if (opts.watch) throw new UsageError(`-w follows nodes, pods and events; ${kind} are listed (the dashboard at / shows them live)`);
        if (kind === 'services') {
          const services = name === undefined ? await api.services() : [await api.service(name)];
          if (asData) return ctx.printData(name === undefined ? { items: services } : services[0], asData);
          if (services.length === 0) return err('No services found.');
          const now = Date.now();
          return out(renderTable(wide ? SERVICE_WIDE_COLUMNS : SERVICE_COLUMNS, services.sort((a, b) => a.name.localeCompare(b.name)).map((x) => serviceRow(x, wide, now, c))));
        }
        const jobs = name === undefined ? await api.jobs({ service: opts.service, status: opts.status, limit: opts.limit }) : [await api.job(name)];
        if (asData) return ctx.printData(name === undefined ? { items: jobs } : jobs[0], asData);
        if (jobs.length === 0) return err('No jobs found.');
        const now = Date.now();
        return out(renderTable(wide ? JOB_WIDE_COLUMNS : JOB_COLUMNS, jobs.map((j) => jobRow(j, wide, now, c))));
      }
      if (kind === 'nodes') {
        if (opts.watch) {
          if (name !== undefined) await api.node(name);
          return watchObjects(ctx, 'nodes', format, (n) => name === undefined || n.name === name || n.id === name);
        }
        const nodes = name === undefined ? await api.nodes() : [await api.node(name)];
        if (asData) return ctx.printData(name === undefined ? { items: nodes } : nodes[0], asData);
        if (nodes.length === 0) return err('No nodes found.');
        const now = Date.now();
        return out(renderTable(wide ? NODE_WIDE_COLUMNS : NODE_COLUMNS, nodes.sort((a, b) => a.name.localeCompare(b.name)).map((n) => nodeRow(n, wide, now, c))));
      }
      const query = { node: opts.node, phase: opts.phase, service: opts.service };
      if (opts.watch) {
        // Checked up front, so a typo fails as the plain list would (the stream itself is not filtered).
        if (opts.phase !== undefined) await api.pods(query);
        const nodeId = opts.node === undefined ? undefined : (await api.node(opts.node)).id;
        if (name !== undefined) await api.pod(name);
        return watchObjects(ctx, 'pods', format, (p) =>
          (name === undefined || p.name === name || p.id === name) && (nodeId === undefined || p.status.nodeId === nodeId) && (opts.phase === undefined || p.status.phase === opts.phase) && (opts.service === undefined || p.service === opts.service),
        );
      }
      const pods = name === undefined ? await api.pods(query) : [await api.pod(name)];
      if (asData) return ctx.printData(name === undefined ? { items: pods } : pods[0], asData);
      if (pods.length === 0) return err('No pods found.');
      const names = new Map((await api.nodes()).map((n) => [n.id, n.name]));
      const now = Date.now();
      return out(renderTable(wide ? POD_WIDE_COLUMNS : POD_COLUMNS, pods.sort((a, b) => a.name.localeCompare(b.name)).map((p) => podRow(p, names, wide, now, c))));
    });
}

import { formatAge } from '../age.js';
import type { NodeView } from '../client.js';
import { renderFields, renderTable } from '../table.js';
import { formatCpu, formatMemory } from '../units.js';
import type { CommandContext, Program } from './context.js';
import { outputOption, structured } from './options.js';

/** How many of `xs` fall under each key. */
function count<T>(xs: readonly T[], key: (x: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return m;
}

/** ` (2 Ready, 1 Dead)`, or nothing for no items. */
const breakdown = (m: Map<string, number>) => (m.size === 0 ? '' : ` (${[...m].sort().map(([k, v]) => `${v} ${k}`).join(', ')})`);

/** `berth cluster`: the leader, the replicas, and totals over nodes and pods. */
export function registerCluster(program: Program, ctx: CommandContext): void {
  const { c, out } = ctx;
  program
    .command('cluster')
    .description('Leader, term, controller replicas with their roles, node and pod counts, capacity and allocation')
    .addOption(outputOption())
    .action(async (opts) => {
      const api = ctx.client();
      const [cluster, nodeList, pods] = await Promise.all([api.cluster(), api.nodes(), api.pods()]);
      // Dead nodes can run nothing, so their capacity is not counted.
      const sum = (f: (n: NodeView) => number) => nodeList.filter((n) => n.status !== 'Dead').reduce((s, n) => s + f(n), 0);
      const capacity = { cpu: sum((n) => n.capacity.cpu), memoryMiB: sum((n) => n.capacity.memoryMiB) };
      const allocated = { cpu: sum((n) => n.allocated.cpu), memoryMiB: sum((n) => n.allocated.memoryMiB) };
      const nodeStatus = count(nodeList, (n) => n.status);
      const podPhases = count(pods, (p) => p.status.phase);
      const asData = structured(opts.output);
      if (asData) {
        return ctx.printData(
          { ...cluster, nodes: { total: nodeList.length, ...Object.fromEntries(nodeStatus) }, pods: { total: pods.length, ...Object.fromEntries(podPhases) }, capacity, allocated },
          asData,
        );
      }
      const now = Date.now();
      const l = cluster.leader;
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
}

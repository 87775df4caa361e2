import { describeNode, describePod } from '../render.js';
import { describeJob, describeService } from '../render-workloads.js';
import type { CommandContext, Program } from './context.js';
import { kindArg } from './options.js';

/** `berth describe node|pod|service|job NAME`: every field, with the reason behind the status. */
export function registerDescribe(program: Program, ctx: CommandContext): void {
  program
    .command('describe')
    .summary('Show every field of a node, pod, service or job, with reasons')
    .description(
      "Show every field of a node, pod, service or job: status and its reason (the scheduler's reason for a Pending pod, why a job is still Queued), " +
        "spec, usage, pods; a service's template and endpoints (as the answering replica routes to them); a job's request, attempts and answer",
    )
    .argument('<kind>', 'node, pod, service (svc) or job', kindArg)
    .argument('<name>', 'name or id (a job: its id)')
    .action(async (kind, name) => {
      const api = ctx.client();
      const now = Date.now();
      const nodeNames = async () => new Map((await api.nodes()).map((n) => [n.id, n.name]));
      switch (kind) {
        case 'nodes': {
          const node = await api.node(name);
          const pods = await api.pods({ node: node.id });
          return ctx.out(describeNode(node, pods.sort((a, b) => a.name.localeCompare(b.name)), now, ctx.c));
        }
        case 'services': {
          const service = await api.service(name);
          return ctx.out(describeService(service, await nodeNames(), now, ctx.c));
        }
        case 'jobs': {
          const job = await api.job(name);
          // Attempts name pods by id; pods that have gone since keep their id.
          const pods = await api.pods({ service: job.service });
          return ctx.out(describeJob(job, new Map(pods.map((p) => [p.id, p.name])), await nodeNames(), now, ctx.c));
        }
        case 'pods': {
          const pod = await api.pod(name);
          let nodeName: string | undefined;
          // The pod is shown even when its node is gone: its name is then left out.
          if (pod.status.nodeId !== null) nodeName = await api.node(pod.status.nodeId).then((n) => n.name, () => undefined);
          return ctx.out(describePod(pod, nodeName, now, ctx.c));
        }
      }
    });
}

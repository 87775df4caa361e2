import { describeNode, describePod } from '../render.js';
import type { CommandContext, Program } from './context.js';
import { kindArg } from './options.js';

/** `berth describe node|pod NAME`: every field, with the reason behind the status. */
export function registerDescribe(program: Program, ctx: CommandContext): void {
  program
    .command('describe')
    .summary('Show every field of a node or pod, with reasons')
    .description("Show every field of a node or pod: status and its reason (the scheduler's reason for a Pending pod), spec, usage, pods")
    .argument('<kind>', 'node or pod', kindArg)
    .argument('<name>', 'name or id')
    .action(async (kind, name) => {
      const api = ctx.client();
      const now = Date.now();
      if (kind === 'nodes') {
        const node = await api.node(name);
        const pods = await api.pods({ node: node.id });
        return ctx.out(describeNode(node, pods.sort((a, b) => a.name.localeCompare(b.name)), now, ctx.c));
      }
      const pod = await api.pod(name);
      let nodeName: string | undefined;
      // The pod is shown even when its node is gone: its name is then left out.
      if (pod.status.nodeId !== null) nodeName = await api.node(pod.status.nodeId).then((n) => n.name, () => undefined);
      return ctx.out(describePod(pod, nodeName, now, ctx.c));
    });
}

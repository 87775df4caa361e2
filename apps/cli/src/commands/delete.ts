import type { CommandContext, Program } from './context.js';
import { deleteKindArg } from './options.js';

/** `berth delete node|pod|service|job|token NAME`. */
export function registerDelete(program: Program, ctx: CommandContext): void {
  program
    .command('delete')
    .summary('Delete a node, pod or service, cancel a job, or revoke a token')
    .description(
      'Delete a pod (its agent stops it first), a node (drained first, then removed) or a service (its pods go too); ' +
        'for a job, cancel it (a job that has finished cannot be: it expires by itself); for a token, revoke it (every replica refuses it within moments)',
    )
    .argument('<kind>', 'node, pod, service (svc), job or token', deleteKindArg)
    .argument('<name>', 'name or id (a job: its id)')
    .action(async (kind, name) => {
      const api = ctx.client();
      switch (kind) {
        case 'nodes':
          return ctx.out(`node "${(await api.deleteNode(name)).name}" deleted`);
        case 'pods':
          return ctx.out(`pod "${(await api.deletePod(name)).name}" deleted`);
        case 'services':
          return ctx.out(`service "${(await api.deleteService(name)).name}" deleted`);
        case 'jobs':
          return ctx.out(`job "${(await api.cancelJob(name)).id}" canceled`);
        case 'tokens':
          return ctx.out(`token "${(await api.deleteToken(name)).name}" deleted`);
      }
    });
}

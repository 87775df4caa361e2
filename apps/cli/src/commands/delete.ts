import type { CommandContext, Program } from './context.js';
import { kindArg } from './options.js';

/** `berth delete node|pod NAME`. */
export function registerDelete(program: Program, ctx: CommandContext): void {
  program
    .command('delete')
    .summary('Delete a node or pod')
    .description('Delete a pod (its agent stops it first) or a node (drained first, then removed)')
    .argument('<kind>', 'node or pod', kindArg)
    .argument('<name>', 'name or id')
    .action(async (kind, name) => {
      const api = ctx.client();
      const gone = kind === 'nodes' ? await api.deleteNode(name) : await api.deletePod(name);
      ctx.out(`${kind === 'nodes' ? 'node' : 'pod'} "${gone.name}" deleted`);
    });
}

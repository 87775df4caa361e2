import { InvalidArgumentError } from '@commander-js/extra-typings';
import { kindOf } from '../completion.js';
import { TOP_COLUMNS, topRow } from '../render.js';
import { renderTable } from '../table.js';
import type { CommandContext, Program } from './context.js';

/** `berth top nodes [NAME]`: usage as the agents last reported it. */
export function registerTop(program: Program, ctx: CommandContext): void {
  program
    .command('top')
    .description('Resource usage of nodes as their agents last reported it (cpu %, memory, load)')
    .argument('<kind>', 'nodes', (w) => {
      if (kindOf(w) !== 'nodes') throw new InvalidArgumentError('only "berth top nodes" is available');
      return 'nodes' as const;
    })
    .argument('[name]', 'one node')
    .action(async (_kind, name) => {
      const api = ctx.client();
      const nodes = name === undefined ? await api.nodes() : [await api.node(name)];
      if (nodes.length === 0) return ctx.err('No nodes found.');
      return ctx.out(renderTable(TOP_COLUMNS, nodes.sort((a, b) => a.name.localeCompare(b.name)).map((n) => topRow(n, ctx.c))));
    });
}

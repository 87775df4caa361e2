import { formatAge } from '../age.js';
import { renderFields } from '../table.js';
import type { CommandContext, Program } from './context.js';
import { outputOption, structured } from './options.js';

/** `berth leader`: the leader as recorded in etcd. */
export function registerLeader(program: Program, ctx: CommandContext): void {
  const { c } = ctx;
  program
    .command('leader')
    .description('The current leader as recorded in etcd (every replica agrees)')
    .addOption(outputOption())
    .action(async (opts) => {
      const leader = await ctx.client().leader();
      const asData = structured(opts.output);
      if (asData) return ctx.printData(leader, asData);
      const now = Date.now();
      ctx.out(
        renderFields([
          ['Leader', leader.leaderId === null ? c.red('<none> (an election is in progress)') : c.bold(leader.leaderId)],
          ['Address', leader.address ?? '<none>'],
          ['Term', leader.term === null ? '<none>' : String(leader.term)],
          ['Since', leader.since === null ? '<none>' : `${leader.since} (${formatAge(leader.since, now)} ago)`],
        ]),
      );
    });
}

import { parseInteger } from '../units.js';
import type { CommandContext, Program } from './context.js';
import { arg, onlyKind } from './options.js';

/** `berth scale service NAME N`: the leader then adds or removes pods (removed ones are stopped first). */
export function registerScale(program: Program, ctx: CommandContext): void {
  program
    .command('scale')
    .description('Change how many pods a service keeps (PATCH /v1/services/NAME {replicas})')
    .argument('<kind>', 'service (svc)', onlyKind('services', 'scale'))
    .argument('<name>', 'service name')
    .argument('<replicas>', 'how many pods', arg((s) => parseInteger(s, 'replicas', 0, 1000)))
    .action(async (_kind, name, replicas) => {
      const service = await ctx.client().patchService(name, { replicas });
      ctx.out(`service/${service.name} scaled to ${service.replicas} replica${service.replicas === 1 ? '' : 's'}`);
    });
}

import { NODE_ACTIONS, type NodeAction } from '@berth/core';
import type { CommandContext, Program } from './context.js';

const NODE_ACTION_TEXT: Record<NodeAction, { done: string; what: string }> = {
  cordon: { done: 'cordoned', what: 'Mark a node unschedulable' },
  uncordon: { done: 'uncordoned', what: 'Mark a node schedulable again (ends a drain)' },
  drain: { done: 'drained', what: 'Cordon a node and move its pods elsewhere' },
};

/** `berth cordon|uncordon|drain NODE`. */
export function registerNodeActions(program: Program, ctx: CommandContext): void {
  for (const action of NODE_ACTIONS) {
    const { done, what } = NODE_ACTION_TEXT[action];
    program
      .command(action)
      .description(what)
      .argument('<node>', 'node name or id')
      .action(async (name) => {
        const node = await ctx.client().nodeAction(name, action);
        ctx.out(`node/${node.name} ${done}`);
      });
  }
}

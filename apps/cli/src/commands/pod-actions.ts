import { InvalidArgumentError } from '@commander-js/extra-typings';
import { POD_ACTIONS, type PodAction } from '@berth/core';
import { kindOf } from '../completion.js';
import type { CommandContext, Program } from './context.js';

const POD_ACTION_TEXT: Record<PodAction, { done: string; what: string }> = {
  stop: { done: 'stopped', what: 'Stop a pod (it stays, with its spec, until started again)' },
  start: { done: 'started', what: 'Start a stopped pod' },
  pause: { done: 'paused', what: 'Pause a running pod' },
  resume: { done: 'resumed', what: 'Resume a paused pod' },
  restart: { done: 'restarted', what: 'Restart a pod (in place; a finished one is scheduled again)' },
};

/** `berth stop|start|pause|resume|restart pod NAME`: each sets what the user wants; the pod's agent converges. */
export function registerPodActions(program: Program, ctx: CommandContext): void {
  for (const action of POD_ACTIONS) {
    const { done, what } = POD_ACTION_TEXT[action];
    program
      .command(action)
      .description(what)
      .argument('<kind>', 'pod', (w) => {
        if (kindOf(w) !== 'pods') throw new InvalidArgumentError(`only pods can be ${done}: berth ${action} pod NAME`);
        return 'pods' as const;
      })
      .argument('<name>', 'pod name or id')
      .action(async (_kind, name) => {
        const pod = await ctx.client().podAction(name, action);
        ctx.out(`pod/${pod.name} ${done}`);
      });
  }
}

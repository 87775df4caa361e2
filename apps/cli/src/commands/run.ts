import { Option } from '@commander-js/extra-typings';
import { RESTART_POLICIES, SCHEDULING_POLICIES, type CreatePodRequest } from '@berth/core';
import { parseCpu, parseInteger, parseMemory } from '../units.js';
import type { CommandContext, Program } from './context.js';
import { arg, collect, outputOption, structured } from './options.js';
import { podTemplate } from './pod-template.js';

/** `berth run NAME [flags] -- CMD ARGS`: create one pod. */
export function registerRun(program: Program, ctx: CommandContext): void {
  program
    .command('run')
    .summary('Create a pod: berth run NAME [flags] -- CMD ARGS')
    .description('Create a pod. Everything after -- is its command (argv); the process runtime runs it with PORT set to an allocated host port')
    .argument('<name>', 'pod name (DNS label)')
    .argument('[command...]', 'command and arguments, after --')
    .option('--image <image>', 'container image (docker runtime)')
    .option('--cpu <cpu>', 'CPU cores (0.5, 500m)', arg(parseCpu), 0.5)
    .option('--memory <quantity>', 'memory (256Mi, 1Gi; default 128Mi)', arg(parseMemory))
    .option('-p, --port <port>', 'port the pod listens on, repeatable', (v, prev: number[] = []) => [...prev, arg((s) => parseInteger(s, 'port', 1, 65535))(v)])
    .option('-e, --env <K=V>', 'environment variable, repeatable', collect)
    .addOption(new Option('--restart <policy>', 'restart policy (default Always)').choices(RESTART_POLICIES))
    .option('--priority <n>', 'priority (higher may preempt lower)', arg((s) => parseInteger(s, 'priority', -1_000_000, 1_000_000)))
    .option('--selector <k=v>', 'node selector label, repeatable', collect)
    .addOption(new Option('--policy <policy>', 'scheduling policy for this pod').choices(SCHEDULING_POLICIES))
    .addOption(outputOption())
    .action(async (name, command, opts) => {
      const body: CreatePodRequest = { name, ...podTemplate(opts, command) };
      const pod = await ctx.client().createPod(body);
      const asData = structured(opts.output);
      if (asData) return ctx.printData(pod, asData);
      ctx.out(`pod/${pod.name} created`);
    });
}

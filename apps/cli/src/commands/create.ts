import { Option } from '@commander-js/extra-typings';
import { RESTART_POLICIES, SCHEDULING_POLICIES, type CreateServiceRequest } from '@berth/core';
import { parseCpu, parseInteger, parseMemory } from '../units.js';
import type { CommandContext, Program } from './context.js';
import { arg, collect, outputOption, structured } from './options.js';
import { createToken, roleOption } from './auth.js';
import { podTemplate } from './pod-template.js';

const port = arg((s) => parseInteger(s, 'port', 1, 65535));

function healthPath(s: string): string {
  if (!s.startsWith('/')) throw new Error(`--health-path ${JSON.stringify(s)} must start with /`);
  return s;
}

/**
 * `berth create service NAME [flags] -- CMD ARGS`: a service of `--replicas`
 * pods, its pod flags `berth run`'s; `berth create token NAME --role R`.
 * Subcommands, because the two share no flag.
 */
export function registerCreate(program: Program, ctx: CommandContext): void {
  const create = program
    .command('create')
    .summary('Create a service (berth create service NAME --replicas N --port P [flags] -- CMD ARGS) or an API token (berth create token NAME --role R)')
    .description('Create a service, or an API token (admin)');

  create
    .command('token')
    .alias('tokens')
    .description('Create an API token (admin): its secret is printed once, on stdout alone; the server keeps only its hash')
    .argument('<name>', 'token name (DNS label): who or what holds it')
    .addOption(roleOption())
    .addOption(outputOption())
    .action(async (name, opts) => createToken(ctx, name, opts.role, opts.output));

  create
    .command('service')
    .aliases(['svc', 'services'])
    .summary('Create a service: berth create service NAME --replicas N --port P [flags] -- CMD ARGS')
    .description(
      'Create a service: the leader keeps --replicas pods of this template, named NAME-<suffix>, and every replica routes ' +
        "requests (/v1/services/NAME/proxy/..., jobs) to the ready ones. Pod flags are berth run's; everything after -- is the command " +
        '(the process runtime runs it with PORT set to an allocated host port), or give --image (docker runtime)',
    )
    .argument('<name>', 'service name (DNS label); pods are named <name>-<suffix>')
    .argument('[command...]', 'command and arguments, after --')
    .option('--image <image>', 'container image (docker runtime)')
    .option('--replicas <n>', 'how many pods the service keeps', arg((s) => parseInteger(s, '--replicas', 0, 1000)), 1)
    .requiredOption('-p, --port <port>', 'port the pods listen on, repeatable; requests go to the first (the pod\'s PORT)', (v, prev: number[] = []) => [...prev, port(v)])
    .option('--cpu <cpu>', 'CPU cores per pod (0.5, 500m)', arg(parseCpu), 0.5)
    .option('--memory <quantity>', 'memory per pod (256Mi, 1Gi; default 128Mi)', arg(parseMemory))
    .option('-e, --env <K=V>', 'environment variable, repeatable', collect)
    .option('--health-path <path>', 'HTTP health check path (e.g. /healthz): a pod gets requests once it answers 2xx there; without one, once it runs', arg(healthPath))
    .addOption(new Option('--restart <policy>', 'restart policy (default Always)').choices(RESTART_POLICIES))
    .option('--priority <n>', 'priority (higher may preempt lower)', arg((s) => parseInteger(s, 'priority', -1_000_000, 1_000_000)))
    .option('--selector <k=v>', 'node selector label, repeatable', collect)
    .addOption(new Option('--policy <policy>', 'scheduling policy for its pods').choices(SCHEDULING_POLICIES))
    .addOption(outputOption())
    .action(async (name, command, opts) => {
      const body: CreateServiceRequest = { name, replicas: opts.replicas, template: podTemplate(opts, command) };
      const service = await ctx.client().createService(body);
      const asData = structured(opts.output);
      if (asData) return ctx.printData(service, asData);
      ctx.out(`service/${service.name} created`);
    });
}

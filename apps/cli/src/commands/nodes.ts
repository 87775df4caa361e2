import { Option } from '@commander-js/extra-typings';
import ora from 'ora';
import type { NodeView, ProvisionNodeRequest } from '@berth/core';
import { RUNTIME_CHOICES } from '../completion.js';
import { formatCpu, formatMemory, parseCpu, parseKeyValues, parseMemory } from '../units.js';
import { colorEnabled, type CommandContext, type Program } from './context.js';
import { arg, collect, outputOption, structured, usage } from './options.js';

/** `berth nodes add`: provision a node through the API, with a spinner while its agent starts. */
export function registerNodes(program: Program, ctx: CommandContext): void {
  const nodes = program.command('nodes').description('Node provisioning');
  nodes
    .command('add')
    .description('Provision a node (POST /v1/nodes): the controller starts an agent as a container or process and answers once it registered')
    .requiredOption('--cpu <cpu>', 'CPU cores (2, 0.5, 500m)', arg(parseCpu))
    .option('--memory <quantity>', 'memory (8Gi, 512Mi; default 512Mi)', arg(parseMemory))
    .addOption(new Option('--runtime <runtime>', 'how the node runs pods (default process)').choices(RUNTIME_CHOICES))
    .option('--name <name>', 'node name (generated when omitted)')
    .option('-l, --label <k=v>', 'label, repeatable (also k=v,k2=v2)', collect)
    .addOption(outputOption())
    .action(async (opts) => {
      const api = ctx.client();
      const labels = opts.label;
      const body: ProvisionNodeRequest = {
        cpu: opts.cpu,
        ...(opts.memory === undefined ? {} : { memoryMiB: opts.memory }),
        ...(opts.runtime === undefined ? {} : { runtime: opts.runtime }),
        ...(opts.name === undefined ? {} : { name: opts.name }),
        ...(labels === undefined ? {} : { labels: usage(() => parseKeyValues(labels, 'label', true)) }),
      };
      const spinner = ora({
        text: `provisioning node${opts.name ? ` ${opts.name}` : ''} (${formatCpu(opts.cpu)} cpu, ${formatMemory(opts.memory ?? 512)}); waiting for its agent to register`,
        stream: ctx.io.stderr as NodeJS.WriteStream,
        isEnabled: colorEnabled(ctx.io.stderr, ctx.io.env),
      }).start();
      let node: NodeView;
      try {
        node = await api.provisionNode(body);
      } finally {
        spinner.stop();
      }
      const asData = structured(opts.output);
      if (asData) return ctx.printData(node, asData);
      ctx.out(`node/${node.name} created (${node.status}, ${formatCpu(node.capacity.cpu)} cpu, ${formatMemory(node.capacity.memoryMiB)}, runtime ${node.runtime})`);
    });
}

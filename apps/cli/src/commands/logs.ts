import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { parseInteger } from '../units.js';
import type { CommandContext, Program } from './context.js';
import { arg } from './options.js';

/** `berth logs POD [-f] [--tail N]`: the pod's output, copied to stdout as it comes. */
export function registerLogs(program: Program, ctx: CommandContext): void {
  program
    .command('logs')
    .description("Print a pod's output (proxied from its node's agent by whichever replica answers)")
    .argument('<pod>', 'pod name or id')
    .option('-f, --follow', 'stream new output until interrupted')
    .option('--tail <n>', 'only the last N lines', arg((s) => parseInteger(s, '--tail', 0, 100_000)))
    .action(async (name, opts) => {
      const body = await ctx.client().logs(name, { tail: opts.tail, follow: opts.follow });
      if (body === null) return;
      await new Promise<void>((resolve, reject) => {
        const stream = Readable.fromWeb(body as NodeReadableStream);
        stream.on('error', reject);
        stream.on('end', resolve);
        stream.pipe(ctx.io.stdout, { end: false });
      });
    });
}

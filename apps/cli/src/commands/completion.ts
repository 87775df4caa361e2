import { InvalidArgumentError } from '@commander-js/extra-typings';
import { BerthClient } from '../client.js';
import { BASH_COMPLETION, ZSH_COMPLETION, complete, extractGlobalFlags, type Kind } from '../completion.js';
import { configPath, readConfigFile, resolveConfig } from '../config.js';
import type { CommandContext, GlobalOptions, Io, Program } from './context.js';

/** `berth completion bash|zsh`, and the hidden `berth __complete` its scripts call. */
export function registerCompletion(program: Program, ctx: CommandContext): void {
  program
    .command('completion')
    .description('Print a shell completion script: source <(berth completion bash), or zsh')
    .argument('<shell>', 'bash or zsh', (s) => {
      if (s !== 'bash' && s !== 'zsh') throw new InvalidArgumentError('supported shells: bash, zsh');
      return s;
    })
    .action((shell) => void ctx.io.stdout.write(shell === 'bash' ? BASH_COMPLETION : ZSH_COMPLETION));

  program
    .command('__complete', { hidden: true })
    .description('completion candidates for the words typed so far (used by the completion scripts)')
    .argument('[words...]')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (words) => runComplete(words, ctx.io, program.opts()).catch(() => undefined));
}

/** `berth __complete WORDS...`: prints one candidate per line; never fails loudly (a shell is waiting). */
export async function runComplete(words: readonly string[], io: Io, globals: GlobalOptions = {}): Promise<void> {
  const flags = extractGlobalFlags(words);
  const file = configPath(io.env);
  // A config or token file that cannot be read must not stop offering commands and flags: names just go missing.
  const api = () => {
    const cfg = resolveConfig({ server: flags.server ?? globals.server, token: flags.token ?? globals.token, tokenFile: flags.tokenFile ?? globals.tokenFile, context: flags.context ?? globals.context }, io.env, file);
    return new BerthClient(cfg.server, cfg.token, 3000);
  };
  const contexts = () => {
    try {
      return Object.keys(readConfigFile(file).contexts).sort();
    } catch {
      return [];
    }
  };
  const candidates = await complete(words, async (k) => names(api(), k), contexts);
  if (candidates.length > 0) io.stdout.write(`${candidates.join('\n')}\n`);
}

/** Names of one kind, for completion. */
async function names(api: BerthClient, kind: Kind): Promise<string[]> {
  switch (kind) {
    case 'nodes':
      return (await api.nodes()).map((x) => x.name).sort();
    case 'pods':
      return (await api.pods()).map((x) => x.name).sort();
    case 'services':
      return (await api.services()).map((x) => x.name).sort();
    case 'jobs':
      // Newest first: the job one just submitted comes first.
      return (await api.jobs({ limit: 50 })).map((x) => x.id);
  }
}

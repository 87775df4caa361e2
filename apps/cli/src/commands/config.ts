import os from 'node:os';
import path from 'node:path';
import { Option } from '@commander-js/extra-typings';
import { checkContextName, configPath, maskToken, maskedConfig, normalizeServer, readConfigFile, updateConfigFile, type ContextConfig } from '../config.js';
import { renderTable } from '../table.js';
import { UsageError, type CommandContext, type Program } from './context.js';
import { usage } from './options.js';

const dataOption = () => new Option('-o, --output <format>', 'json or yaml').choices(['json', 'yaml'] as const);

/** How a context authenticates, as a table cell: never the secret itself. */
function authCell(ctx: ContextConfig): string {
  if (ctx.token !== undefined) return `token ${maskToken(ctx.token)}`;
  if (ctx.tokenFile !== undefined) return `token-file ${ctx.tokenFile}`;
  return '<none>';
}

/** `~/x` as the shell would have expanded it, then absolute: the file is read later, from anywhere. */
function absolutePath(file: string): string {
  return path.resolve(file.startsWith('~/') ? path.join(os.homedir(), file.slice(2)) : file);
}

/** `berth config ...`: the contexts of the config file (kubeconfig-like), which the CLI reads for server and token. */
export function registerConfig(program: Program, ctx: CommandContext): void {
  const file = () => configPath(ctx.io.env);
  const config = program
    .command('config')
    .summary('Contexts of the config file: which server, with which token (get-contexts, use-context, set-context, view)')
    .description(
      'The config file ($XDG_CONFIG_HOME/berth/config.json, else ~/.config/berth/config.json) holds contexts, each a server and a token ' +
        '(or a file holding one); berth uses the current one unless --context, $BERTH_CONTEXT or flags and environment variables say otherwise. ' +
        'npm start saves its cluster as context "local". The file is written with mode 0600.',
    );

  config
    .command('get-contexts')
    .description('List the contexts; the current one is marked *')
    .addOption(dataOption())
    .action((opts) => {
      const cfg = readConfigFile(file());
      if (opts.output) return ctx.printData({ currentContext: cfg.currentContext ?? null, contexts: maskedConfig(cfg).contexts }, opts.output);
      const names = Object.keys(cfg.contexts).sort();
      if (names.length === 0) return ctx.err(`No contexts in ${file()}: add one with berth config set-context NAME --server URL --token-file FILE --use`);
      ctx.out(renderTable(['CURRENT', 'NAME', 'SERVER', 'AUTH'], names.map((n) => {
        const c = cfg.contexts[n]!;
        return [n === cfg.currentContext ? '*' : '', n, c.server ?? '<default>', authCell(c)];
      })));
    });

  config
    .command('current-context')
    .description('Print the current context')
    .action(() => {
      const current = readConfigFile(file()).currentContext;
      if (current === undefined) throw new UsageError(`no current context in ${file()}: berth config use-context NAME`);
      ctx.out(current);
    });

  config
    .command('use-context')
    .description('Make a context the current one')
    .argument('<name>', 'a context of berth config get-contexts')
    .action((name) => {
      updateConfigFile(file(), (cfg) => {
        if (cfg.contexts[name] === undefined) {
          const known = Object.keys(cfg.contexts);
          throw new UsageError(`no context "${name}" in ${file()}${known.length === 0 ? '' : ` (it has ${known.sort().join(', ')})`}: add it with berth config set-context ${name} --server URL`);
        }
        cfg.currentContext = name;
      });
      ctx.out(`Switched to context "${name}".`);
    });

  // --server, --token and --token-file are also global flags, which commander parses wherever they stand: read both.
  config
    .command('set-context')
    .description('Create or change a context: its server, and a token or a file holding one (stored as an absolute path)')
    .argument('<name>', 'context name')
    .option('--server <url>', 'API server URL (needed for a new context)')
    .option('--token <token>', 'the token itself, stored in the file (mode 0600)')
    .option('--token-file <file>', 'a file holding the token, read at each command (a token that changes keeps working)')
    .option('--use', 'also make it the current context')
    .action((name, opts) => {
      usage(() => checkContextName(name));
      const g = program.opts();
      const server = opts.server ?? g.server;
      const token = opts.token ?? g.token;
      const tokenFile = opts.tokenFile ?? g.tokenFile;
      if (token !== undefined && tokenFile !== undefined) throw new UsageError('give --token or --token-file, not both');
      let created = false;
      updateConfigFile(file(), (cfg) => {
        const prev = cfg.contexts[name];
        if (prev === undefined && server === undefined) throw new UsageError(`context "${name}" is new: give its --server`);
        created = prev === undefined;
        const next: ContextConfig = { ...prev };
        if (server !== undefined) next.server = normalizeServer(server);
        if (token !== undefined) {
          next.token = token;
          delete next.tokenFile;
        }
        if (tokenFile !== undefined) {
          next.tokenFile = absolutePath(tokenFile);
          delete next.token;
        }
        cfg.contexts[name] = next;
        if (opts.use) cfg.currentContext = name;
      });
      ctx.out(`Context "${name}" ${created ? 'created' : 'modified'}.`);
      if (opts.use) ctx.out(`Switched to context "${name}".`);
    });

  config
    .command('delete-context')
    .description('Remove a context (the current one too: then none is current)')
    .argument('<name>', 'context name')
    .action((name) => {
      updateConfigFile(file(), (cfg) => {
        if (cfg.contexts[name] === undefined) throw new UsageError(`no context "${name}" in ${file()}`);
        delete cfg.contexts[name];
        if (cfg.currentContext === name) delete cfg.currentContext;
      });
      ctx.out(`Deleted context "${name}" from ${file()}.`);
    });

  config
    .command('view')
    .description('Show the config file, tokens masked')
    .addOption(dataOption())
    .action((opts) => {
      const cfg = readConfigFile(file());
      ctx.printData(maskedConfig(cfg), opts.output ?? 'json');
    });
}

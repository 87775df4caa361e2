import { Command } from '@commander-js/extra-typings';
import { registerApply } from './commands/apply.js';
import { registerAuth } from './commands/auth.js';
import { registerCluster } from './commands/cluster.js';
import { registerCompletion } from './commands/completion.js';
import { registerConfig } from './commands/config.js';
import { registerCreate } from './commands/create.js';
import { commandContext, type Io, type Program } from './commands/context.js';
import { registerDelete } from './commands/delete.js';
import { registerDemo } from './commands/demo.js';
import { registerDescribe } from './commands/describe.js';
import { registerGet } from './commands/get.js';
import { registerLeader } from './commands/leader.js';
import { registerLogs } from './commands/logs.js';
import { registerNodeActions } from './commands/node-actions.js';
import { registerNodes } from './commands/nodes.js';
import { registerPodActions } from './commands/pod-actions.js';
import { registerRun } from './commands/run.js';
import { registerScale } from './commands/scale.js';
import { registerSubmit } from './commands/submit.js';
import { registerTop } from './commands/top.js';

export { colorEnabled, type Io } from './commands/context.js';
export { runComplete } from './commands/completion.js';

/**
 * Builds the `berth` program: the global flags, then each command from its
 * own module under `commands/`, in the order `berth --help` lists them.
 */
export function buildProgram(io: Io): Program {
  const program: Program = new Command('berth')
    .description('Operate a Berth cluster through its REST API (any controller replica answers).')
    .version('0.1.0')
    .option('-s, --server <url>', "API server URL (else $BERTH_SERVER, the context's server in ~/.config/berth/config.json, http://127.0.0.1:8081)")
    .option('--token <token>', "bearer token sent as Authorization (else $BERTH_TOKEN, --token-file, $BERTH_TOKEN_FILE, the context's token or tokenFile)")
    .option('--token-file <file>', 'read the token from this file (else $BERTH_TOKEN_FILE), e.g. the admin token file of npm start')
    .option('--context <name>', 'use this context of the config file (else $BERTH_CONTEXT, its currentContext): see berth config get-contexts')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 API or usage error (the API's message on stderr), 2 the server could not be reached.
With auth on (controllers started with --admin-token-file), every request needs a token; npm start saves the
admin token's file in context "local" of the config file, so berth works there with no flag.
Examples:
  berth get nodes
  berth run web --cpu 500m --memory 256Mi --port 8000 -- sh -c 'exec python3 -m http.server $PORT'
  berth get pods -w
  berth get events -w
  berth describe pod web
  berth create service echo --replicas 3 --port 8000 -- sh -c 'exec python3 -m http.server $PORT'
  berth get services
  berth submit echo --method GET --path / --wait
  berth get jobs --service echo
  berth scale service echo 5
  berth apply -f pods.yaml
  berth whoami
  berth config set-context prod --server https://berth.example:8081 --token-file ~/.berth-prod-token --use
  berth create token ci --role operator
  berth get tokens
  berth audit --since 1h --actor ci
  source <(berth completion bash)`,
    );
  const ctx = commandContext(program, io);
  for (const register of [
    registerGet,
    registerDescribe,
    registerTop,
    registerNodes,
    registerNodeActions,
    registerDelete,
    registerRun,
    registerCreate,
    registerScale,
    registerSubmit,
    registerApply,
    registerPodActions,
    registerLogs,
    registerLeader,
    registerCluster,
    registerAuth,
    registerConfig,
    registerDemo,
    registerCompletion,
  ]) {
    register(program, ctx);
  }
  return program;
}

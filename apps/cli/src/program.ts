import { Command } from '@commander-js/extra-typings';
import { registerApply } from './commands/apply.js';
import { registerCluster } from './commands/cluster.js';
import { registerCompletion } from './commands/completion.js';
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
    .option('-s, --server <url>', 'API server URL (else $BERTH_SERVER, ~/.config/berth/config.json "server", http://127.0.0.1:8081)')
    .option('--token <token>', 'bearer token sent as Authorization (else $BERTH_TOKEN or config "token")')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 API or usage error (the API's message on stderr), 2 the server could not be reached.
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
    registerDemo,
    registerCompletion,
  ]) {
    register(program, ctx);
  }
  return program;
}

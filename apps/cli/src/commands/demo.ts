import { failoverDemo } from '../demo.js';
import { parseInteger } from '../units.js';
import type { CommandContext, Program } from './context.js';
import { arg } from './options.js';

/** `berth demo failover`: kill the leader's container and show the cluster carry on. */
export function registerDemo(program: Program, ctx: CommandContext): void {
  const demo = program.command('demo').description('Demonstrations against a running cluster');
  demo
    .command('failover')
    .description(
      "Kill the leader's container and show the cluster carry on: prints the leader, creates pods, runs `docker kill` on the " +
        "leader's container (a cluster from compose.ha.yml: controller containers are labelled berth.role=controller and named " +
        'by their compose service, c1..c3), times the election of the next leader, checks every pod is still Running and bound ' +
        'exactly once, then `docker start`s the killed replica and waits for it to rejoin as a follower. Exits 1 if any claim fails.',
    )
    .option('--servers <urls>', 'every controller replica, comma-separated (else $BERTH_SERVERS)', 'http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083')
    .option('--pods <n>', 'pods to create before the kill', arg((s) => parseInteger(s, '--pods', 1, 50)), 3)
    .option('--image <image>', 'image of the demo pods (they run sleep 3600)', 'busybox:1.36')
    .option('--project <name>', 'compose project of the cluster (needed only when several run)')
    .option('--docker <path>', 'docker CLI to kill and start the container with', 'docker')
    .option('--keep', 'keep the demo pods afterwards')
    .option('--timeout <seconds>', 'how long pods may take to run and the killed replica to rejoin', arg((s) => parseInteger(s, '--timeout', 1, 3600)), 120)
    .action(async (opts, cmd) => {
      // $BERTH_SERVERS applies only when --servers was not given.
      const list = cmd.getOptionValueSource('servers') === 'default' && ctx.io.env.BERTH_SERVERS ? ctx.io.env.BERTH_SERVERS : opts.servers;
      const servers = list
        .split(',')
        .map((s) => s.trim().replace(/\/+$/, ''))
        .filter((s) => s !== '');
      const ok = await failoverDemo(
        { servers, token: ctx.config().token, pods: opts.pods, image: opts.image, project: opts.project, docker: opts.docker, keep: opts.keep === true, timeoutMs: opts.timeout * 1000 },
        ctx.out,
        ctx.c,
      );
      if (!ok) process.exitCode = 1;
    });
}

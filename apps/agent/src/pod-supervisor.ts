import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Socket } from 'node:net';

/**
 * Runs as `/bin/sh -c SUPERVISOR berth-pod <command...>` in the pod's new
 * process group, with fd 3 one end of a socketpair whose other end only this
 * agent process holds (libuv opens it close-on-exec, so no other child
 * inherits it).
 *
 * A watcher subshell blocks reading fd 3. Nothing is ever written to it, so
 * the read returns only at EOF, when the agent's end closes: the agent
 * exited or was killed (SIGKILL included, the kernel closes its descriptors).
 * The watcher then SIGKILLs its own process group, i.e. the whole pod. It
 * ignores every catchable signal that would end or stop it, since the agent's
 * SIGTERM or a pod's own `kill -USR1 0` reach the whole group (a stop whose
 * SIGTERM the pod ignores must not disarm it); the agent continues it after a
 * pause's SIGSTOP.
 *
 * The watcher is started through an intermediate subshell that exits at
 * once, so it is not a child of the pod's command (which might wait for
 * every child it has); that subshell reports the watcher's pid on fd 3.
 * Then the shell closes fd 3 and execs the command: the pod's pid is the
 * shell's, its exit status is the command's, and the command holds no end
 * of the socketpair.
 */
const SUPERVISOR = `( ( trap '' HUP INT QUIT ABRT USR1 USR2 ALRM TERM PIPE TSTP TTIN TTOU VTALRM PROF XCPU XFSZ; read -r _ <&3; kill -s KILL 0 ) & echo $! >&3 ); exec "$@" 3<&-`;

/**
 * Shell code that unexports every variable but `names`. A pod's environment
 * must be exactly the one the agent gives it, but whatever the agent's own
 * Node runtime preloads (an APM agent, a test runner's coverage hooks) may
 * patch child_process to add variables to every child's environment; the
 * supervisor shell takes them out again. Builtins only: the pod's PATH may
 * not lead to any tool.
 */
export function onlyEnv(names: readonly string[]): string {
  const keep = ` ${names.filter((n) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(n)).join(' ')} `;
  return (
    `berth_n=$(export -p | while IFS= read -r l; do case $l in "export "*) l=\${l#export }; echo "\${l%%=*}";; esac; done); ` +
    `for berth_v in $berth_n; do case '${keep}' in *" $berth_v "*) ;; *) unset "$berth_v";; esac; done; unset berth_n berth_v; `
  );
}

/** A pod's main process, tied to this agent through its supervisor. */
export interface TiedProcess {
  /** The pod's main process (the command, once the shell has exec'd it). */
  child: ChildProcess;
  /** This agent's end of the socketpair; closing it ends the pod's whole group. */
  tether: Socket | undefined;
  /** The watcher's pid once it reported it; undefined when the pod ended (or could not start) first. */
  watcher: Promise<number | undefined>;
}

/**
 * Starts `argv` in its own process group that dies with this agent process
 * (see SUPERVISOR). `prelude` runs first in the supervisor shell (joining the
 * pod's cgroup, so the watcher and everything after it run inside it), and
 * `prefix` goes before the command (switching to the pod's user).
 */
export function spawnTied(argv: string[], opts: { output: number; env: NodeJS.ProcessEnv; cwd?: string; prelude?: string; prefix?: string[]; uid?: number; gid?: number }): TiedProcess {
  const script = `${onlyEnv(Object.keys(opts.env))}${opts.prelude ?? ''}${SUPERVISOR}`;
  const child = spawn('/bin/sh', ['-c', script, 'berth-pod', ...(opts.prefix ?? []), ...argv], {
    detached: true, // setsid: the pod's own process group, which the watcher ends
    stdio: ['ignore', opts.output, opts.output, 'pipe'],
    env: opts.env,
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    ...(opts.uid === undefined ? {} : { uid: opts.uid }),
    ...(opts.gid === undefined ? {} : { gid: opts.gid }),
  });
  const tether = (child.stdio[3] ?? undefined) as Socket | undefined;
  // A reset or read error ends in 'close' like EOF does; it must not become an uncaught error.
  tether?.on('error', () => {});
  const watcher = new Promise<number | undefined>((resolve) => {
    if (tether === undefined) return resolve(undefined);
    let line = '';
    tether.on('data', (chunk: Buffer) => {
      line += chunk.toString('latin1');
      const end = line.indexOf('\n');
      if (end < 0) return;
      const pid = Number(line.slice(0, end));
      resolve(Number.isSafeInteger(pid) && pid > 0 ? pid : undefined);
    });
    tether.once('close', () => resolve(undefined));
    child.once('exit', () => resolve(undefined));
    child.once('error', () => resolve(undefined));
  });
  return { child, tether, watcher };
}

export function killGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* the group is gone */
  }
}

export function signalProcess(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `/proc/<pid>/stat` fields after the command name: state is [0], process group [2]. */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // exited while we looked
  }
}

/** True until the process has died (a zombie counts as dead). */
export function processAlive(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/**
 * True while a process of group `pgid` has not died yet. Zombies do not count:
 * they hold no ports or files, and reaping orphans is up to whoever adopted them.
 */
export function groupRunning(pgid: number): boolean {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(entry);
    if (fields !== undefined && Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

/**
 * Resolves once none of the process groups `pgids` has a live member (a
 * zombie does not count), or after `timeoutMs`; true when all are gone. Each
 * look is one signal-0 per group; only a group that still exists costs a
 * scan of /proc (its members may all be zombies).
 */
export async function waitGroupsGone(pgids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let pending = pgids;
  for (;;) {
    pending = pending.filter((g) => groupExists(g) && groupRunning(g));
    if (pending.length === 0) return true;
    if (Date.now() >= deadline) return false;
    await sleep(25, undefined, { ref: false });
  }
}

/**
 * True when process group `pgid` is what pod `id` left behind. If a process
 * with that pid exists it must carry BERTH_POD_ID=<id>. If none does, any
 * group with that id can only be the pod's orphaned members: Linux does not
 * hand out a pid that is still some group's id.
 */
export function leftoverOf(pgid: number, id: string): boolean {
  let environ: string;
  try {
    environ = fs.readFileSync(`/proc/${pgid}/environ`, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' && groupExists(pgid);
  }
  return environ.split('\0').includes(`BERTH_POD_ID=${id}`);
}

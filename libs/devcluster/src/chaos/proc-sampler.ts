import fs from 'node:fs';
import path from 'node:path';

/*
 * What runs on this machine, read from the process table and nothing else:
 * a process-runtime pod is a process group whose processes carry
 * BERTH_POD_ID=<pod id> in their environment (the agent sets it, together
 * with what the pod's spec asks for; the chaos load puts the run's marker,
 * BERTH_CHAOS_RUN, in every spec, so pods of other clusters on the machine
 * are ignored). Sampling must stay cheap on a small machine: the environment
 * of a pid is read once (again only during its first seconds, while a fork
 * may not have exec'd yet), and only pod processes are re-read (their stat,
 * so a zombie does not count as running).
 */

/** The environment variable that marks every process of one chaos run. */
export const RUN_MARKER = 'BERTH_CHAOS_RUN';

/** One pod's process group, as seen in one sample. */
export interface PodGroup {
  podId: string;
  pgid: number;
  pids: number[];
  /** Node the group was first seen to belong to (its parent was that node's agent), or undefined. */
  node: string | undefined;
}

/** One read of the process table. */
export interface ProcSample {
  /** When the table was listed (ms since the epoch). */
  at: number;
  /** Live groups per pod id. */
  groups: Map<string, PodGroup[]>;
}

interface Known {
  /** undefined: not a pod of this run. */
  podId: string | undefined;
  seenAt: number;
  pgid: number;
}

/** How long a pid that is not a pod is re-read (a fork between spawn and exec still has its parent's environment). */
const YOUNG_MS = 2000;

/** Parses /proc/<pid>/stat: state, ppid and pgid (the command may hold spaces and parentheses). */
export function parseStat(text: string): { state: string; ppid: number; pgid: number } | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = text.slice(close + 2).split(' ');
  return f.length < 3 ? undefined : { state: f[0]!, ppid: Number(f[1]), pgid: Number(f[2]) };
}

/** Reads `BERTH_POD_ID` when `RUN_MARKER` is `run`; undefined otherwise. */
export function podIdOf(environ: string, run: string): string | undefined {
  let pod: string | undefined;
  let ours = false;
  for (const kv of environ.split('\0')) {
    if (kv.startsWith('BERTH_POD_ID=')) pod = kv.slice('BERTH_POD_ID='.length);
    else if (kv === `${RUN_MARKER}=${run}`) ours = true;
  }
  return ours && pod !== undefined && pod !== '' ? pod : undefined;
}

/** Samples the process table for the pods of one chaos run. */
export class ProcessSampler {
  private readonly known = new Map<number, Known>();
  /** Process group -> node, once attributed. */
  private readonly groupNode = new Map<number, string>();
  samples = 0;

  /**
   * @param run the run's marker value
   * @param nodeOfPid the node whose agent has this pid (any run of that agent), for attribution
   */
  constructor(
    private readonly run: string,
    private readonly nodeOfPid: (pid: number) => string | undefined,
    private readonly procRoot = '/proc',
  ) {}

  private read(pid: number, file: string): string | undefined {
    try {
      return fs.readFileSync(path.join(this.procRoot, String(pid), file), 'latin1');
    } catch {
      return undefined;
    }
  }

  sample(): ProcSample {
    const at = Date.now();
    const pids = new Set<number>();
    for (const name of fs.readdirSync(this.procRoot)) {
      const pid = Number(name);
      if (Number.isInteger(pid) && pid > 0) pids.add(pid);
    }
    for (const pid of this.known.keys()) if (!pids.has(pid)) this.known.delete(pid);
    const groups = new Map<string, PodGroup[]>();
    for (const pid of pids) {
      let k = this.known.get(pid);
      if (k === undefined || (k.podId === undefined && at - k.seenAt < YOUNG_MS)) {
        const environ = this.read(pid, 'environ');
        if (environ === undefined) continue;
        const podId = podIdOf(environ, this.run);
        k = { podId, seenAt: k?.seenAt ?? at, pgid: 0 };
        this.known.set(pid, k);
      }
      if (k.podId === undefined) continue;
      const stat = parseStat(this.read(pid, 'stat') ?? '');
      // Gone, a zombie or dead: not running.
      if (stat === undefined || stat.state === 'Z' || stat.state === 'X') continue;
      k.pgid = stat.pgid;
      if (!this.groupNode.has(stat.pgid)) {
        const node = this.nodeOfPid(stat.ppid);
        if (node !== undefined) this.groupNode.set(stat.pgid, node);
      }
      const list = groups.get(k.podId) ?? [];
      let g = list.find((x) => x.pgid === stat.pgid);
      if (g === undefined) {
        g = { podId: k.podId, pgid: stat.pgid, pids: [], node: undefined };
        list.push(g);
        groups.set(k.podId, list);
      }
      g.pids.push(pid);
    }
    for (const list of groups.values()) for (const g of list) g.node = this.groupNode.get(g.pgid);
    this.samples += 1;
    return { at, groups };
  }
}

/** SIGKILLs every process carrying `RUN_MARKER` for which `match(value)` holds (not this one); returns how many. */
export function killMarked(match: (run: string) => boolean, procRoot = '/proc'): number {
  let n = 0;
  for (const name of fs.readdirSync(procRoot)) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    let environ: string;
    try {
      environ = fs.readFileSync(path.join(procRoot, name, 'environ'), 'latin1');
    } catch {
      continue;
    }
    const kv = environ.split('\0').find((x) => x.startsWith(`${RUN_MARKER}=`));
    if (kv === undefined || !match(kv.slice(RUN_MARKER.length + 1))) continue;
    try {
      process.kill(pid, 'SIGKILL');
      n += 1;
    } catch {
      /* gone */
    }
  }
  return n;
}

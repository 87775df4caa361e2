import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Who a node's process-runtime pods run as:
 * - `per-pod`: each pod its own uid and gid from a range, so that neither
 *   file modes (its 0700 working directory), signals nor ptrace let one pod
 *   reach another (one shared unprivileged user would separate pods from the
 *   host only);
 * - `shared`: one user every pod runs as (e.g. `nobody`);
 * - `agent`: no switch: the agent's own user (an agent that is not root, or
 *   `--run-as-user root`, the explicit opt-out).
 */
export type RunAs =
  | { kind: 'per-pod'; first: number; last: number }
  | { kind: 'shared'; uid: number; gid: number; label: string }
  | { kind: 'agent'; label: string };

export const DEFAULT_POD_UID_RANGE = '200000-265535';
const MAX_ID = 4294967294; // (uid_t)-1 means "unchanged" to setresuid

/** `first-last`, both inclusive; thrown errors name the flag. */
export function parseUidRange(raw: string): { first: number; last: number } {
  const m = /^(\d+)-(\d+)$/.exec(raw.trim());
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (m === null || first < 1000 || last > MAX_ID || first > last) {
    throw new Error(`--pod-uid-range must be FIRST-LAST with 1000 <= FIRST <= LAST <= ${MAX_ID} (uids of no existing user), got ${JSON.stringify(raw)}`);
  }
  return { first, last };
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

function passwd(): PasswdEntry[] {
  let text = '';
  try {
    text = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!))
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) }));
}

/** The agent's own user, as `name` (or its uid when /etc/passwd does not know it). */
export function agentUser(): string {
  const uid = process.getuid?.() ?? 0;
  return passwd().find((e) => e.uid === uid)?.name ?? String(uid);
}

/**
 * `--run-as-user` resolved: `per-pod` (the default for a root agent), a user
 * name, `uid[:gid]`, or `root`/`0` (pods run as the agent). An agent that is
 * not root cannot switch users: it accepts only its own user (or nothing).
 */
export function resolveRunAs(raw: string | undefined, uidRange: string, isRoot: boolean): RunAs {
  const self = agentUser();
  if (!isRoot) {
    if (raw === undefined || raw === self || raw === String(process.getuid?.())) return { kind: 'agent', label: self };
    throw new Error(`--run-as-user ${JSON.stringify(raw)} needs the agent to run as root (it runs as ${self}); leave it out to run pods as ${self}`);
  }
  if (raw === undefined || raw === 'per-pod') return { kind: 'per-pod', ...parseUidRange(uidRange) };
  const numeric = /^(\d+)(?::(\d+))?$/.exec(raw);
  let uid: number;
  let gid: number;
  if (numeric !== null) {
    uid = Number(numeric[1]);
    gid = numeric[2] !== undefined ? Number(numeric[2]) : (passwd().find((e) => e.uid === uid)?.gid ?? uid);
    if (uid > MAX_ID || gid > MAX_ID) throw new Error(`--run-as-user: ${raw} is out of range`);
  } else {
    const entry = passwd().find((e) => e.name === raw);
    if (entry === undefined) throw new Error(`--run-as-user: no user ${JSON.stringify(raw)} in /etc/passwd (give per-pod, a user name, uid[:gid] or root)`);
    uid = entry.uid;
    gid = entry.gid;
  }
  if (uid === 0) return { kind: 'agent', label: 'root' };
  const name = passwd().find((e) => e.uid === uid)?.name;
  return { kind: 'shared', uid, gid, label: name ?? `${uid}:${gid}` };
}

/**
 * Hands out per-pod uids, one per pod for as long as this agent holds the
 * pod. Several agents may share a host (and a range), so a uid is claimed
 * host-wide by creating a file exclusively in `claimsDir` (the kernel decides
 * who wins). A claim is never taken over while claiming: claims of agent
 * processes that are gone are swept once, when an allocator is made (so a
 * sweep and a claim never race for the same file). The first uid tried is a
 * hash of the pod id. One allocator serves every node of an agent process.
 */
export class PodUidAllocator {
  private readonly byPod = new Map<string, number>();

  constructor(
    readonly range: { first: number; last: number },
    private readonly claimsDir: string,
  ) {
    fs.mkdirSync(claimsDir, { recursive: true, mode: 0o700 });
    this.sweep();
  }

  claim(podId: string): number {
    const held = this.byPod.get(podId);
    if (held !== undefined) return held;
    const size = this.range.last - this.range.first + 1;
    const start = createHash('sha256').update(podId).digest().readUInt32BE(0) % size;
    for (let i = 0; i < size; i++) {
      const uid = this.range.first + ((start + i) % size);
      try {
        fs.writeFileSync(path.join(this.claimsDir, String(uid)), `${process.pid} ${podId}\n`, { flag: 'wx', mode: 0o600 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      this.byPod.set(podId, uid);
      return uid;
    }
    throw new Error(`no free uid left in --pod-uid-range ${this.range.first}-${this.range.last}`);
  }

  release(podId: string): void {
    const uid = this.byPod.get(podId);
    if (uid === undefined) return;
    this.byPod.delete(podId);
    fs.rmSync(path.join(this.claimsDir, String(uid)), { force: true });
  }

  /** Removes the claims of agent processes that are gone (this process holds none yet: a recycled pid's are stale too). */
  private sweep(): void {
    for (const name of fs.readdirSync(this.claimsDir)) {
      const file = path.join(this.claimsDir, name);
      let owner = NaN;
      try {
        owner = Number(fs.readFileSync(file, 'utf8').split(' ')[0]);
      } catch {
        continue;
      }
      if (owner === process.pid || !alive(owner)) fs.rmSync(file, { force: true });
    }
  }
}

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

import { POD_TRANSITIONS, type PodPhase } from '@berth/core';

/**
 * The phases an agent writes to take a pod from `from` to `to` (excluding
 * `from`), shortest first; undefined when unreachable. A phase the table does
 * not allow directly is reached hop by hop (Running -> Stopping -> Stopped),
 * so every write the agent makes is one edge of `POD_TRANSITIONS`. Of equally
 * short paths the first in table order wins. Pending is never a hop:
 * unbinding is the leader's.
 */
export function phasePath(from: PodPhase, to: PodPhase): PodPhase[] | undefined {
  if (from === to) return [to];
  const prev = new Map<PodPhase, PodPhase>([[from, from]]);
  const todo: PodPhase[] = [from];
  while (todo.length > 0) {
    const p = todo.shift()!;
    for (const n of POD_TRANSITIONS[p]) {
      if (n === 'Pending' || prev.has(n)) continue;
      prev.set(n, p);
      if (n === to) {
        const path: PodPhase[] = [to];
        for (let at = p; at !== from; at = prev.get(at)!) path.unshift(at);
        return path;
      }
      todo.push(n);
    }
  }
  return undefined;
}

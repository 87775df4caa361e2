import type { Policy } from './types.js';

/*
 * Data layouts the batch snapshot (snapshot.ts) keeps between pods; the
 * snapshot fills and replays them.
 */

/**
 * A shape is (policy, exact request, selector): pods of one shape rank nodes
 * identically, and a node's keys change only when a binding lands on it. The
 * index keeps each node's ranking keys and a tournament tree over them whose
 * root is the node the policy picks; a binding is replayed into it in
 * O(log n), so a batch of similar pods costs O(log n) each instead of a scan.
 */
export interface ShapeIndex {
  policy: Policy;
  cpu: number;
  mem: number;
  mask: Uint8Array;
  /** Primary key per node, higher wins; -Infinity where the node is infeasible. */
  k1: Float64Array;
  /** Secondary key (best-fit and worst-fit only). */
  k2: Float64Array | undefined;
  /** tree[1] is the winner; leaves are tree[leaves + i] = i, padding -1. */
  tree: Int32Array;
  leaves: number;
  /** Position in the snapshot's change log up to which bindings are applied. */
  logPos: number;
}

/** An index for `size` nodes with nothing computed yet (the snapshot rebuilds it at once). */
export function emptyShapeIndex(policy: Policy, cpu: number, mem: number, mask: Uint8Array, size: number): ShapeIndex {
  let leaves = 1;
  while (leaves < size) leaves *= 2;
  return {
    policy,
    cpu,
    mem,
    mask,
    k1: new Float64Array(size),
    k2: policy === 'best-fit' || policy === 'worst-fit' ? new Float64Array(size) : undefined,
    tree: new Int32Array(2 * leaves).fill(-1),
    leaves,
    logPos: 0,
  };
}

/** Node indexes in first-fit order: by name, then id, then position (so a repeated id still orders stably). */
export function nameOrder(names: readonly string[], ids: readonly string[]): Int32Array {
  const order = Int32Array.from({ length: names.length }, (_, i) => i);
  return order.sort((a, b) => {
    const na = names[a]!;
    const nb = names[b]!;
    if (na !== nb) return na < nb ? -1 : 1;
    const ia = ids[a]!;
    const ib = ids[b]!;
    return ia !== ib ? (ia < ib ? -1 : 1) : a - b;
  });
}

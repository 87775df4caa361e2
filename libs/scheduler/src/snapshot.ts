import { unschedulable } from './explain.js';
import { emptyShapeIndex, nameOrder, type ShapeIndex } from './shape-index.js';
import { FILTERS, filterStages, fits, fitsUnits, type Filter, type FilterStages } from './filters.js';
import { capacityMiB, capacityMillicores, invalidRequest } from './quantity.js';
import { binpackScore, bestFitScore, displayScore, MAX_SCORE, seedState, spreadScore, tieBreak, utilisation, worstFitScore } from './score.js';
import { POLICIES, type Decision, type NodeInfo, type Policy, type PodRequest } from './types.js';

/** Selector masks kept per snapshot before the cache is reset (each is one byte per node). */
const MASK_CACHE_LIMIT = 256;
/** Default memory the shape indexes of one snapshot may hold (up to 32 bytes per node each). */
const INDEX_BUDGET_BYTES = 32 * 2 ** 20;
/** Shapes remembered as seen once, before that memory is reset. */
const SEEN_LIMIT = 65_536;
/** The default filter list, split once. */
const DEFAULT_STAGES = filterStages(FILTERS);
/** What node-stage filters are called with: by contract they do not read the pod. */
const ANY_POD: PodRequest = Object.freeze({ id: '', name: '', cpu: 0, memoryMiB: 0, priority: 0, nodeSelector: Object.freeze({}) });

/** The nodes that pass the node and selector stages for one distinct nodeSelector. */
interface SelectorMask {
  /** 1 where the node passes. */
  mask: Uint8Array;
  /** The selector stage's rejection per node, computed only when a pod of this selector is explained. */
  reasons: (string | undefined)[] | undefined;
}

/** Tuning of a ClusterSnapshot. */
export interface SnapshotOptions {
  /** Memory its shape indexes may hold (default 32 MiB); at least 4 are kept, least recently used go first. */
  indexBudgetBytes?: number;
  /** The filters to run (default FILTERS), in stage order, with one cpu and one memory fit (see filterStages). */
  filters?: readonly Filter[];
}

/**
 * The scheduler's working copy of a cluster snapshot, compiled once into flat
 * typed arrays (integer millicores and MiB): placing a pod is one pass with
 * no sort and no node-sized allocation, or, for a ranked shape seen before, a
 * tree lookup. Each binding grows the copy's allocation, so a batch never
 * overcommits; the NodeInfo objects it was built from are never written.
 *
 * It runs the filter list (FILTERS) by stage: node filters once per node,
 * selector filters once per node and distinct selector (both folded into a
 * cached mask), resource filters as `request <= free` on the typed arrays,
 * which every binding updates.
 *
 * Ranking (first-fit: the first feasible node by name, then id; the others
 * by keys, higher wins, then the seeded tie-break, then id):
 *   best-fit   -(free cpu after placement), then -(free memory after)
 *   worst-fit  +(free cpu after placement), then +(free memory after)
 *   spread     spreadScore(cpu, memory utilisation after placement)
 *   binpack    binpackScore(cpu, memory utilisation after placement)
 */
export class ClusterSnapshot {
  /** Number of nodes. */
  readonly size: number;
  private readonly nodes: readonly NodeInfo[];
  private readonly stages: FilterStages;
  private readonly ids: string[];
  private readonly names: string[];
  /** The node stage's rejection (NotReady, cordoned, ...) per node; it cannot change within a snapshot. */
  private readonly nodeReason: (string | undefined)[];
  private readonly nodeOk: Uint8Array;
  private readonly capCpu: Float64Array;
  private readonly capMem: Float64Array;
  private readonly freeCpu: Float64Array;
  private readonly freeMem: Float64Array;
  private readonly rank: Uint32Array;
  private readonly masks = new Map<string, SelectorMask>();
  /** Node index of every binding so far, in order: what shape indexes replay. */
  private readonly changed: number[] = [];
  private readonly indexes = new Map<string, ShapeIndex>();
  private readonly maxIndexes: number;
  private readonly seen = new Set<string>();
  private firstFitOrder: Int32Array | undefined;
  private byId: Map<string, number> | undefined;

  /** Compiles `nodes` under `seed`, which orders ties (see tieBreak) so a placement can be replayed. */
  constructor(nodes: readonly NodeInfo[], seed: string, opts: SnapshotOptions = {}) {
    const n = nodes.length;
    this.size = n;
    this.nodes = nodes;
    this.stages = opts.filters === undefined ? DEFAULT_STAGES : filterStages(opts.filters);
    this.ids = new Array<string>(n);
    this.names = new Array<string>(n);
    this.nodeReason = new Array<string | undefined>(n).fill(undefined);
    this.nodeOk = new Uint8Array(n);
    this.capCpu = new Float64Array(n);
    this.capMem = new Float64Array(n);
    this.freeCpu = new Float64Array(n);
    this.freeMem = new Float64Array(n);
    this.rank = new Uint32Array(n);
    this.maxIndexes = Math.max(4, Math.floor((opts.indexBudgetBytes ?? INDEX_BUDGET_BYTES) / (32 * Math.max(1, n))));
    const state = seedState(seed);
    const { cpu, memory } = this.stages;
    for (let i = 0; i < n; i++) {
      const node = nodes[i]!;
      this.ids[i] = node.id;
      this.names[i] = node.name;
      const reason = fits(ANY_POD, node, this.stages.node);
      this.nodeReason[i] = reason;
      this.nodeOk[i] = reason === undefined ? 1 : 0;
      this.capCpu[i] = capacityMillicores(node.capacity.cpu);
      this.capMem[i] = capacityMiB(node.capacity.memoryMiB);
      this.freeCpu[i] = cpu.free(node);
      this.freeMem[i] = memory.free(node);
      this.rank[i] = tieBreak(state, node.id);
    }
  }

  /** Free millicores and MiB left on node `id` in this working copy, or undefined for an unknown node. */
  remaining(id: string): { cpuMillicores: number; memoryMiB: number } | undefined {
    if (!this.byId) {
      this.byId = new Map();
      for (let i = 0; i < this.size; i++) if (!this.byId.has(this.ids[i]!)) this.byId.set(this.ids[i]!, i);
    }
    const i = this.byId.get(id);
    return i === undefined ? undefined : { cpuMillicores: this.freeCpu[i]!, memoryMiB: this.freeMem[i]! };
  }

  /**
   * Places one pod under `policy` and, when it is bound, charges its request
   * to the chosen node in this copy. Stages, in order: validate, filter
   * (node and selector stages, cached as a mask; then the resource fits),
   * rank and select in the same pass, explain (only when nothing fits, so the
   * common path never builds reason counts).
   */
  schedule(pod: PodRequest, policy: Policy): Decision {
    const invalid = invalidRequest(pod.cpu, pod.memoryMiB) ?? (POLICIES.includes(policy) ? undefined : `invalid request: unknown policy ${String(policy)}`);
    if (invalid !== undefined) return { kind: 'unschedulable', podId: pod.id, reasons: {}, message: invalid };
    const cpu = this.stages.cpu.request(pod);
    const mem = this.stages.memory.request(pod);
    const [selectorKey, selected] = this.mask(pod);
    const picked = this.select(policy, cpu, mem, selected.mask, selectorKey);
    if (picked < 0) return this.explain(pod, cpu, mem, selected);
    const score = this.scoreOf(policy, picked, cpu, mem);
    this.freeCpu[picked] = this.freeCpu[picked]! - cpu;
    this.freeMem[picked] = this.freeMem[picked]! - mem;
    this.changed.push(picked);
    return { kind: 'bound', podId: pod.id, nodeId: this.ids[picked]!, score: displayScore(score) };
  }

  /** The canonical key of the pod's selector and which nodes pass the node and selector stages for it; most pods share the empty one. */
  private mask(pod: PodRequest): [string, SelectorMask] {
    const selector = pod.nodeSelector ?? {};
    const keys = Object.keys(selector);
    const key = keys.length === 0 ? '' : JSON.stringify(keys.sort().map((k) => [k, selector[k]]));
    let entry = this.masks.get(key);
    if (!entry) {
      if (this.masks.size >= MASK_CACHE_LIMIT) this.masks.clear();
      const filters = this.stages.selector;
      let mask = this.nodeOk;
      if (filters.length > 0) {
        mask = new Uint8Array(this.size);
        for (let i = 0; i < this.size; i++) mask[i] = this.nodeOk[i] === 1 && fits(pod, this.nodes[i]!, filters) === undefined ? 1 : 0;
      }
      entry = { mask, reasons: undefined };
      this.masks.set(key, entry);
    }
    return [key, entry];
  }

  /**
   * Index of the node the policy picks, or -1. first-fit always scans: it
   * stops at the first feasible node, which beats any index in practice.
   * Otherwise a shape's first pod scans (scheduleOne never pays for an
   * index), its second builds the shape index, and later ones replay only
   * the bindings made since.
   */
  private select(policy: Policy, cpu: number, mem: number, mask: Uint8Array, selectorKey: string): number {
    if (policy === 'first-fit') return this.scan(policy, cpu, mem, mask);
    const shape = `${policy}\u0000${cpu}\u0000${mem}\u0000${selectorKey}`;
    const index = this.indexes.get(shape);
    if (index) {
      this.indexes.delete(shape); // least recently used goes first when the budget is reached
      this.indexes.set(shape, index);
      return this.refresh(index);
    }
    if (!this.seen.has(shape)) {
      if (this.seen.size >= SEEN_LIMIT) this.seen.clear();
      this.seen.add(shape);
      return this.scan(policy, cpu, mem, mask);
    }
    if (this.indexes.size >= this.maxIndexes) this.indexes.delete(this.indexes.keys().next().value!);
    const built = this.build(policy, cpu, mem, mask);
    this.indexes.set(shape, built);
    return this.winner(built);
  }

  /** True when node i passes every filter for a (cpu, mem) request in the current working copy. */
  private feasible(mask: Uint8Array, i: number, cpu: number, mem: number): boolean {
    return mask[i] === 1 && cpu <= this.freeCpu[i]! && mem <= this.freeMem[i]!;
  }

  /** Primary ranking key of node i (higher wins) for the ranked policies; see the class comment. */
  private key1(policy: Policy, i: number, cpu: number, mem: number): number {
    switch (policy) {
      case 'best-fit':
        return cpu - this.freeCpu[i]!;
      case 'worst-fit':
        return this.freeCpu[i]! - cpu;
      default:
        return this.scoreOf(policy, i, cpu, mem);
    }
  }

  /** Secondary ranking key of node i: free memory after placement, for the fit policies only. */
  private key2(policy: Policy, i: number, mem: number): number {
    if (policy === 'best-fit') return mem - this.freeMem[i]!;
    if (policy === 'worst-fit') return this.freeMem[i]! - mem;
    return 0;
  }

  /** True when node a (keys a1, a2) ranks before node b (keys b1, b2): keys, then seeded tie-break, then id, then index. */
  private beats(a: number, a1: number, a2: number, b: number, b1: number, b2: number): boolean {
    if (a1 !== b1) return a1 > b1;
    if (a2 !== b2) return a2 > b2;
    const ra = this.rank[a]!;
    const rb = this.rank[b]!;
    if (ra !== rb) return ra < rb;
    const ia = this.ids[a]!;
    const ib = this.ids[b]!;
    return ia !== ib ? ia < ib : a < b;
  }

  /** One pass over every node, no allocation: the reference the shape indexes must agree with. */
  private scan(policy: Policy, cpu: number, mem: number, mask: Uint8Array): number {
    const size = this.size;
    if (policy === 'first-fit') {
      // The first feasible node in the stable order is the pick; stop there.
      const order = this.order();
      for (let k = 0; k < size; k++) {
        const i = order[k]!;
        if (this.feasible(mask, i, cpu, mem)) return i;
      }
      return -1;
    }
    let best = -1;
    let b1 = 0;
    let b2 = 0;
    for (let i = 0; i < size; i++) {
      if (!this.feasible(mask, i, cpu, mem)) continue;
      const k1 = this.key1(policy, i, cpu, mem);
      const k2 = this.key2(policy, i, mem);
      if (best < 0 || this.beats(i, k1, k2, best, b1, b2)) {
        best = i;
        b1 = k1;
        b2 = k2;
      }
    }
    return best;
  }

  /** Builds a shape index from scratch: every node's keys, then the tree bottom-up. */
  private build(policy: Policy, cpu: number, mem: number, mask: Uint8Array): ShapeIndex {
    const index = emptyShapeIndex(policy, cpu, mem, mask, this.size);
    this.rebuild(index);
    return index;
  }

  /** Recomputes every key and every match of the tree, and marks the whole change log applied. */
  private rebuild(index: ShapeIndex): void {
    const { tree, leaves } = index;
    for (let i = 0; i < this.size; i++) {
      this.rekey(index, i);
      tree[leaves + i] = i;
    }
    for (let k = leaves - 1; k >= 1; k--) tree[k] = this.match(index, tree[2 * k]!, tree[2 * k + 1]!);
    index.logPos = this.changed.length;
  }

  /** Recomputes node i's keys in a shape index. */
  private rekey(index: ShapeIndex, i: number): void {
    const { policy, cpu, mem, mask } = index;
    if (!this.feasible(mask, i, cpu, mem)) {
      index.k1[i] = -Infinity;
      return;
    }
    index.k1[i] = this.key1(policy, i, cpu, mem);
    if (index.k2) index.k2[i] = this.key2(policy, i, mem);
  }

  /** The better of two tree entries (-1 is an empty slot). */
  private match(index: ShapeIndex, a: number, b: number): number {
    if (a < 0) return b;
    if (b < 0) return a;
    const { k1, k2 } = index;
    return this.beats(a, k1[a]!, k2 ? k2[a]! : 0, b, k1[b]!, k2 ? k2[b]! : 0) ? a : b;
  }

  /** Replays the bindings made since the index last looked (each O(log n)), or rebuilds when that would be dearer. */
  private refresh(index: ShapeIndex): number {
    const { tree, leaves } = index;
    const end = this.changed.length;
    if ((end - index.logPos) * Math.log2(leaves + 1) > this.size) {
      this.rebuild(index);
      return this.winner(index);
    }
    for (let j = index.logPos; j < end; j++) {
      const i = this.changed[j]!;
      this.rekey(index, i);
      for (let k = (leaves + i) >> 1; k >= 1; k >>= 1) tree[k] = this.match(index, tree[2 * k]!, tree[2 * k + 1]!);
    }
    index.logPos = end;
    return this.winner(index);
  }

  /** The tree's root if it is feasible, else -1. */
  private winner(index: ShapeIndex): number {
    const root = index.tree[1]!;
    return root >= 0 && index.k1[root]! !== -Infinity ? root : -1;
  }

  /** The policy's 0-100 score of placing (cpu, mem) on node i, computed from the allocation after placement. */
  private scoreOf(policy: Policy, i: number, cpu: number, mem: number): number {
    switch (policy) {
      case 'first-fit':
        return MAX_SCORE;
      case 'best-fit':
        return bestFitScore(this.freeCpu[i]! - cpu);
      case 'worst-fit':
        return worstFitScore(this.freeCpu[i]! - cpu);
      default: {
        const capCpu = this.capCpu[i]!;
        const capMem = this.capMem[i]!;
        const uc = utilisation(capCpu - this.freeCpu[i]! + cpu, capCpu);
        const um = utilisation(capMem - this.freeMem[i]! + mem, capMem);
        return policy === 'spread' ? spreadScore(uc, um) : binpackScore(uc, um);
      }
    }
  }

  /** Stable first-fit order (name, then id), sorted once per snapshot, not per pod. */
  private order(): Int32Array {
    if (!this.firstFitOrder) {
      this.firstFitOrder = nameOrder(this.names, this.ids);
    }
    return this.firstFitOrder;
  }

  /** The slow path: count each node under the first filter that rejects it (the stages run in list order). */
  private explain(pod: PodRequest, cpu: number, mem: number, selected: SelectorMask): Decision {
    const selectorReasons = (selected.reasons ??= this.selectorReasons(pod, selected.mask));
    // The two resource fits in list order (filterStages guarantees one cpu and one memory fit).
    const cpuFirst = this.stages.resources[0] === this.stages.cpu;
    const [req1, free1, reason1] = cpuFirst ? [cpu, this.freeCpu, this.stages.cpu.reason] : [mem, this.freeMem, this.stages.memory.reason];
    const [req2, free2, reason2] = cpuFirst ? [mem, this.freeMem, this.stages.memory.reason] : [cpu, this.freeCpu, this.stages.cpu.reason];
    const mask = selected.mask;
    const counts = new Map<string, number>();
    // Most nodes of a full cluster fail a resource fit: count those in plain integers, the rest in the map.
    let short1 = 0;
    let short2 = 0;
    for (let i = 0; i < this.size; i++) {
      const reason = this.nodeReason[i] ?? (mask[i] !== 1 ? selectorReasons[i] : undefined);
      if (reason !== undefined) counts.set(reason, (counts.get(reason) ?? 0) + 1);
      else if (!fitsUnits(req1, free1[i]!)) short1++;
      else if (!fitsUnits(req2, free2[i]!)) short2++;
    }
    if (short1 > 0) counts.set(reason1, (counts.get(reason1) ?? 0) + short1);
    if (short2 > 0) counts.set(reason2, (counts.get(reason2) ?? 0) + short2);
    return unschedulable(pod.id, this.size, counts);
  }

  /** The selector stage's rejection per node, where the node stage passed it but the mask did not. */
  private selectorReasons(pod: PodRequest, mask: Uint8Array): (string | undefined)[] {
    const out = new Array<string | undefined>(this.size).fill(undefined);
    for (let i = 0; i < this.size; i++) {
      if (mask[i] !== 1 && this.nodeOk[i] === 1) out[i] = fits(pod, this.nodes[i]!, this.stages.selector);
    }
    return out;
  }
}

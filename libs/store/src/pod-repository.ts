import type { Etcd3 } from 'etcd3';
import { BerthError, checkPodDelete, checkPodWrite, errors, keyOf, nameKey, prefixes, type PodRecord } from '@berth/core';
import { Repository } from './repository.js';
import { absent, commit, commitCas, commitFenced, modifiedAt, putJson, type Compare, type Fence, type Op, type TxnResult, type Versioned } from './txn.js';

/** Where pod name claims live (`/berth/names/pods/<name>`). */
const POD_NAMES = nameKey('pods', '');

/**
 * The one write path for pod records (`/berth/pods/<id>` and the name claim
 * `/berth/names/pods/<name>`). Every write is a compare-and-swap on the
 * record's mod revision and is checked by `checkPodWrite` /
 * `checkPodDelete` for the writer making it (fields it owns, transition
 * table). Users and agents write one record at a time; the leader writes
 * through `fenced(fence)`, a batch committed only while its term holds,
 * together with the other records its decision touches (reservations).
 */
export class PodRepository {
  private readonly reader: Repository<PodRecord>;

  constructor(private readonly client: Etcd3) {
    this.reader = new Repository<PodRecord>(client, 'pods', 'pod');
  }

  /** Reads one pod straight from etcd (linearizable). */
  get(id: string): Promise<Versioned<PodRecord> | undefined> {
    return this.reader.get(id);
  }

  /**
   * A user creates a pod: it must be Pending and unbound; its name is
   * claimed in the same transaction. CONFLICT (naming `body/name`) if the
   * name is taken. Returns the write's revision.
   */
  async create(pod: PodRecord): Promise<number> {
    const res = await commit(this.client, ...creation(pod));
    if (!res.succeeded) throw errors.conflict(`a pod named ${JSON.stringify(pod.name)} already exists`, { field: 'body/name' });
    return res.revision;
  }

  /**
   * Creates up to `MAX_CREATE_BATCH` pods in one transaction, all or none
   * (bulk loads: a benchmark's 100,000 Pending pods). CONFLICT when any name
   * or id is taken.
   */
  async createMany(pods: PodRecord[]): Promise<number> {
    if (pods.length === 0 || pods.length > MAX_CREATE_BATCH) throw errors.validation(`create 1 to ${MAX_CREATE_BATCH} pods at once, not ${pods.length}`);
    const parts = pods.map(creation);
    const res = await commit(this.client, parts.flatMap(([guards]) => guards), parts.flatMap(([, ops]) => ops));
    if (!res.succeeded) throw errors.conflict(`one of ${pods.length} pod names or ids is taken; nothing was created`);
    return res.revision;
  }

  /**
   * A user or the bound node's agent replaces `cur` with `next`. `node`
   * (agents) is the node the writer runs: the pod must be bound to it. A lost
   * compare-and-swap throws CONFLICT with `details.revision` (the store's
   * revision then) so the caller can wait for its cache and decide again.
   * A `next` equal to `cur` is only compared, not written: the caller learns
   * the record has not moved, and no revision or watch event is spent on it
   * (an agent retrying a launch that keeps failing rewrote the same Starting
   * status each time, and every write came back through its watch as work).
   */
  async update(writer: 'user' | 'agent', cur: Versioned<PodRecord>, next: PodRecord, node?: string): Promise<Versioned<PodRecord>> {
    checkPodWrite(writer, cur.value, next);
    if (writer === 'agent' && cur.value.status.nodeId !== node) {
      throw errors.conflict(`pod ${cur.value.name} is not bound to node ${node ?? '(none)'}`, { revision: cur.modRevision });
    }
    const same = JSON.stringify(next) === JSON.stringify(cur.value);
    const res = await commitCas(this.client, cur.key, cur.modRevision, same ? [] : [putJson(cur.key, next)]);
    if (!res.succeeded) throw lost(cur.value, res.modRevision);
    if (same) return cur;
    return { ...cur, value: next, modRevision: res.revision, version: cur.version + 1 };
  }

  /**
   * Deletes the record and its name claim if it is still at the revision
   * read. A user deletes pods no agent holds (`nodeGone` when its node
   * record is gone); an agent deletes marked pods of its node.
   */
  async delete(writer: 'user' | 'agent', cur: Versioned<PodRecord>, opts: { node?: string; nodeGone?: boolean } = {}): Promise<number> {
    checkPodDelete(writer, cur.value, opts.nodeGone);
    if (writer === 'agent' && cur.value.status.nodeId !== opts.node) {
      throw errors.conflict(`pod ${cur.value.name} is not bound to node ${opts.node ?? '(none)'}`, { revision: cur.modRevision });
    }
    // "Its node is gone" is read from a cache: etcd must agree, or an agent about to run the pod would lose its record.
    const nodeId = cur.value.status.nodeId;
    const nodeAbsent = writer === 'user' && nodeId !== null ? [absent(keyOf('nodes', nodeId))] : [];
    const res = await commitCas(this.client, cur.key, cur.modRevision, deleteOps(cur.value), nodeAbsent);
    if (!res.succeeded && res.modRevision === cur.modRevision) {
      throw errors.conflict(`node ${nodeId} of pod ${cur.value.name} exists: its agent deletes the pod; mark it instead`);
    }
    if (!res.succeeded) throw lost(cur.value, res.modRevision);
    return res.revision;
  }

  /** A batch of leader writes, committed only while `fence` holds. */
  fenced(fence: Fence): FencedPodBatch {
    return new FencedPodBatch(this.client, fence);
  }
}

/**
 * Leader writes of pod records, plus whatever other guards and writes the
 * same decision needs (a node's reservation record), in one fenced
 * transaction. Each pod write is checked for the leader and guarded on the
 * revision it was decided from.
 */
export class FencedPodBatch {
  private readonly guards: Compare[] = [];
  private readonly ops: Op[] = [];
  private pods = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly fence: Fence,
  ) {}

  /** Replaces a pod record (bind, unbind, a Pending pod's reason). */
  put(cur: Versioned<PodRecord>, next: PodRecord): this {
    checkPodWrite('leader', cur.value, next);
    this.guards.push(modifiedAt(cur.key, cur.modRevision));
    this.ops.push(putJson(cur.key, next));
    this.pods += 1;
    return this;
  }

  /** Creates a pod (the service controller's), claiming its name; the batch fails if the name or id is taken. */
  create(pod: PodRecord): this {
    const [guards, ops] = creation(pod);
    this.guards.push(...guards);
    this.ops.push(...ops);
    this.pods += 1;
    return this;
  }

  /** Deletes a marked pod (and its name claim) whose agent is gone, or an unbound pod of a service. */
  delete(cur: Versioned<PodRecord>): this {
    checkPodDelete('leader', cur.value);
    this.guards.push(modifiedAt(cur.key, cur.modRevision));
    this.ops.push(...deleteOps(cur.value));
    this.pods += 1;
    return this;
  }

  /** Another guard of the same decision (e.g. a reservation record as read). */
  guard(...c: Compare[]): this {
    this.guards.push(...c);
    return this;
  }

  /** Another write of the same decision (e.g. the updated reservation record); never a pod's: those go through `put`/`delete`. */
  op(...o: Op[]): this {
    for (const { key } of o) {
      if (key.startsWith(prefixes.pods) || key.startsWith(POD_NAMES)) throw new BerthError('INTERNAL', `a pod record (${key}) may only be written through put or delete, which check the rules`);
    }
    this.ops.push(...o);
    return this;
  }

  /** Pod writes in the batch. */
  get size(): number {
    return this.pods;
  }

  /**
   * Commits through the fence: LEADERSHIP_LOST when the term is over,
   * `succeeded: false` when another guard no longer holds.
   */
  commit(): Promise<TxnResult> {
    return commitFenced(this.client, this.fence, this.guards, this.ops);
  }
}

/** Pods per `createMany`: two puts each, under etcd's default of 128 operations per transaction. */
export const MAX_CREATE_BATCH = 64;

/** The guards and writes that create `pod` with its name claim; a new pod must be Pending and unbound. */
function creation(pod: PodRecord): [Compare[], Op[]] {
  if (pod.status.phase !== 'Pending' || pod.status.nodeId !== null) {
    throw errors.validation(`a new pod starts Pending and unbound, not ${pod.status.phase}`);
  }
  const key = keyOf('pods', pod.id);
  const claim = nameKey('pods', pod.name);
  return [
    [absent(claim), absent(key)],
    [putJson(claim, pod.id), putJson(key, pod)],
  ];
}

function deleteOps(pod: PodRecord): Op[] {
  return [
    { type: 'delete', key: keyOf('pods', pod.id) },
    { type: 'delete', key: nameKey('pods', pod.name) },
  ];
}

/**
 * A lost compare-and-swap: CONFLICT carrying the revision of the write that
 * won (a pods watch cache reaches it), or NOT_FOUND when the pod is gone.
 */
function lost(pod: PodRecord, modRevision: number | undefined) {
  if (modRevision === undefined) return errors.notFound('pod', pod.name);
  return errors.conflict(`pod ${JSON.stringify(pod.name)} was changed concurrently; read it again and retry`, { revision: modRevision });
}

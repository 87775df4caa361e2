import type { Etcd3, IKeyValue } from 'etcd3';
import { Range } from 'etcd3';
import { errors } from '@berth/core';
import { toBerthError } from './client.js';

/** One write inside a transaction. */
export type Op =
  | { type: 'put'; key: string; value: string; lease?: string }
  | { type: 'delete'; key: string };

/** One guard of a transaction: `target(key) cmp value`, e.g. `Mod(/berth/pods/x) == 42`. */
export interface Compare {
  key: string;
  target: 'Mod' | 'Create' | 'Version' | 'Value' | 'Lease';
  cmp: '==' | '!=' | '>' | '<';
  value: number | string;
}

/** The leader's fencing token: its election key and that key's create revision (the term). */
export interface Fence {
  electionKey: string;
  term: number;
}

/** What a committed transaction reports. */
export interface TxnResult {
  succeeded: boolean;
  /** Revision of the store after the transaction (the write's revision when it succeeded). */
  revision: number;
}

/** A guard that always holds (on a key every component's etcd role may read: etcd-roles.ts). */
const always: Compare = { key: '/berth/', target: 'Version', cmp: '>', value: -1 };

/** Guard: the key does not exist. */
export const absent = (key: string): Compare => ({ key, target: 'Create', cmp: '==', value: 0 });
/** Guard: the key was last modified at `rev` (compare-and-swap). */
export const modifiedAt = (key: string, rev: number): Compare => ({ key, target: 'Mod', cmp: '==', value: rev });

/** A put of a JSON value. */
export const putJson = (key: string, value: unknown, lease?: string): Op => ({
  type: 'put',
  key,
  value: JSON.stringify(value),
  ...(lease === undefined ? {} : { lease }),
});

function buildOps(client: Etcd3, ops: Op[]) {
  return ops.map((op) => {
    if (op.type === 'delete') return client.delete().key(op.key);
    const put = client.put(op.key).value(op.value);
    return op.lease === undefined ? put : put.lease(op.lease);
  });
}

/**
 * Commits `ops` if every guard holds. Without guards the ops are applied
 * unconditionally. etcd errors become BerthErrors (503 when unreachable).
 */
export async function commit(client: Etcd3, compares: Compare[], ops: Op[]): Promise<TxnResult> {
  try {
    // etcd3 has no guard-less transaction builder; a version that is always >= 0 stands in.
    const [first, ...rest] = compares.length > 0 ? (compares as [Compare, ...Compare[]]) : [always];
    let builder = client.if(first.key, first.target, first.cmp, first.value);
    for (const c of rest) builder = builder.and(c.key, c.target, c.cmp, c.value);
    const res = await builder.then(...buildOps(client, ops)).commit();
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  } catch (err) {
    throw toBerthError(err);
  }
}

/** What a compare-and-swap on one key reports. */
export type CasResult =
  | { succeeded: true; revision: number }
  /** `modRevision`: the key's own revision now (what won), undefined when the key is gone. */
  | { succeeded: false; modRevision: number | undefined };

/**
 * Commits `ops` if `key` is still at `modRevision` (and the `also` guards
 * hold); when it is not, the same
 * round trip reads the key, so the loser learns the revision of the write
 * that won (a watch cache of that key's prefix reaches it), not the store's
 * revision, which other prefixes may have moved past what that cache will
 * ever see.
 */
export async function commitCas(client: Etcd3, key: string, modRevision: number, ops: Op[], also: Compare[] = []): Promise<CasResult> {
  let res;
  try {
    let builder = client.if(key, 'Mod', '==', modRevision);
    for (const c of also) builder = builder.and(c.key, c.target, c.cmp, c.value);
    res = await builder.then(...buildOps(client, ops)).else(client.get(key)).commit();
  } catch (err) {
    throw toBerthError(err);
  }
  if (res.succeeded) return { succeeded: true, revision: Number(res.header.revision) };
  const kv = res.responses[0]?.response_range?.kvs[0];
  return { succeeded: false, modRevision: kv === undefined ? undefined : Number(kv.mod_revision) };
}

/**
 * Commits `ops` only while `fence` still holds: the election key must exist
 * with the term as its create revision, so a deposed or paused leader can
 * never write. Throws LEADERSHIP_LOST when the fence fails and CONFLICT when
 * the fence held but another guard did not.
 */
export async function commitFenced(client: Etcd3, fence: Fence, compares: Compare[], ops: Op[]): Promise<TxnResult> {
  let builder = client.if(fence.electionKey, 'Create', '==', fence.term);
  for (const c of compares) builder = builder.and(c.key, c.target, c.cmp, c.value);
  let res;
  try {
    res = await builder.then(...buildOps(client, ops)).else(client.get(fence.electionKey)).commit();
  } catch (err) {
    throw toBerthError(err);
  }
  const revision = Number(res.header.revision);
  if (res.succeeded) return { succeeded: true, revision };
  const kv = res.responses[0]?.response_range?.kvs[0];
  if (kv === undefined || Number(kv.create_revision) !== fence.term) {
    throw errors.leadershipLost(
      `fenced write rejected by etcd: election key ${fence.electionKey} of term ${fence.term} is ${kv ? `now of term ${kv.create_revision}` : 'gone'}`,
    );
  }
  return { succeeded: false, revision };
}

/** A key-value as read from etcd, with the value decoded. */
export interface Versioned<T> {
  key: string;
  value: T;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: string;
}

/** Decodes an etcd key-value holding JSON; undefined when the value is not valid JSON. */
export function decodeJson<T>(kv: IKeyValue): Versioned<T> | undefined {
  let value: T;
  try {
    value = JSON.parse(kv.value.toString('utf8')) as T;
  } catch {
    return undefined;
  }
  return {
    key: kv.key.toString('utf8'),
    value,
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
    lease: kv.lease,
  };
}

/** A consistent snapshot of a prefix: every key-value at one revision. */
export interface PrefixSnapshot {
  revision: number;
  kvs: IKeyValue[];
}

/**
 * Reads every key under `prefix` at one revision, in pages, so a list of
 * thousands of entities neither exceeds a gRPC message nor mixes revisions.
 */
export async function listPrefix(client: Etcd3, prefix: string, pageSize = 2000): Promise<PrefixSnapshot> {
  const all = Range.prefix(prefix);
  const kvs: IKeyValue[] = [];
  let start: Buffer = all.start;
  let revision: number | undefined;
  for (;;) {
    let builder = client.getAll().inRange(new Range(start, all.end)).limit(pageSize);
    if (revision !== undefined) builder = builder.revision(revision);
    const res = await builder.exec();
    revision ??= Number(res.header.revision);
    kvs.push(...res.kvs);
    if (!res.more || res.kvs.length === 0) return { revision, kvs };
    start = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

/** What a prefix holds at one revision, in two numbers. */
export interface PrefixProbe {
  /** Keys under the prefix. */
  count: number;
  /** The highest mod revision among them (0 when there are none). */
  newestModRevision: number;
}

/**
 * Reads at `revision` how many keys are under `prefix` and the newest mod
 * revision among them: one small answer however large the prefix (a range's
 * `count` is the whole match even with a limit of one; etcd still reads the
 * prefix through once to sort), so a watch cache can tell whether anything
 * under it changed after a revision it applied.
 */
export async function probePrefix(client: Etcd3, prefix: string, revision: number): Promise<PrefixProbe> {
  const newest = await client.getAll().prefix(prefix).revision(revision).sort('Mod', 'Descend').limit(1).exec();
  const kv = newest.kvs[0];
  return { count: Number(newest.count), newestModRevision: kv === undefined ? 0 : Number(kv.mod_revision) };
}

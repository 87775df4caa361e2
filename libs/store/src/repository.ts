import type { Etcd3 } from 'etcd3';
import { errors, keyOf, prefixes, type Collection } from '@berth/core';
import { toBerthError } from './client.js';
import { absent, commit, commitFenced, decodeJson, listPrefix, modifiedAt, putJson, type Fence, type Versioned } from './txn.js';

/**
 * Typed access to one collection (`/berth/<collection>/<id>`). Every write is
 * a compare-and-swap: creates require the key to be absent, updates and
 * deletes require the `mod_revision` the caller read. The `*Fenced` variants
 * add the leader's fence, for leader-only writes.
 */
export class Repository<T> {
  constructor(
    private readonly client: Etcd3,
    /** Which collection, e.g. `nodes`. */
    readonly collection: Collection,
    /** Human name used in errors, e.g. `node`. */
    readonly kind: string,
  ) {}

  /** The key of an entity. */
  key(id: string): string {
    return keyOf(this.collection, id);
  }

  /** The collection's prefix, for informers. */
  get prefix(): string {
    return prefixes[this.collection];
  }

  /** Reads one entity straight from etcd (linearizable). */
  async get(id: string): Promise<Versioned<T> | undefined> {
    try {
      const kv = (await this.client.get(this.key(id)).exec()).kvs[0];
      return kv === undefined ? undefined : decodeJson<T>(kv);
    } catch (err) {
      throw toBerthError(err);
    }
  }

  /** Reads the whole collection at one revision. */
  async list(): Promise<{ revision: number; items: Versioned<T>[] }> {
    try {
      const snap = await listPrefix(this.client, this.prefix);
      const items = snap.kvs.map((kv) => decodeJson<T>(kv)).filter((v): v is Versioned<T> => v !== undefined);
      return { revision: snap.revision, items };
    } catch (err) {
      throw toBerthError(err);
    }
  }

  /** Creates the entity; CONFLICT if the id exists. Returns the write's revision. */
  async create(id: string, value: T, lease?: string): Promise<number> {
    const key = this.key(id);
    const res = await commit(this.client, [absent(key)], [putJson(key, value, lease)]);
    if (!res.succeeded) throw errors.conflict(`${this.kind} ${JSON.stringify(id)} already exists`);
    return res.revision;
  }

  /** Replaces the entity if it is still at `modRevision`; CONFLICT otherwise. */
  async update(id: string, value: T, modRevision: number): Promise<number> {
    const key = this.key(id);
    const res = await commit(this.client, [modifiedAt(key, modRevision)], [putJson(key, value)]);
    if (!res.succeeded) throw this.staleWrite(id);
    return res.revision;
  }

  /** Deletes the entity if it is still at `modRevision`; CONFLICT otherwise. */
  async delete(id: string, modRevision: number): Promise<number> {
    const key = this.key(id);
    const res = await commit(this.client, [modifiedAt(key, modRevision)], [{ type: 'delete', key }]);
    if (!res.succeeded) throw this.staleWrite(id);
    return res.revision;
  }

  /** Leader-only update: fenced and compare-and-swap. */
  async updateFenced(fence: Fence, id: string, value: T, modRevision: number): Promise<number> {
    const key = this.key(id);
    const res = await commitFenced(this.client, fence, [modifiedAt(key, modRevision)], [putJson(key, value)]);
    if (!res.succeeded) throw this.staleWrite(id);
    return res.revision;
  }

  private staleWrite(id: string) {
    return errors.conflict(`${this.kind} ${JSON.stringify(id)} was changed or deleted concurrently; read it again and retry`);
  }
}

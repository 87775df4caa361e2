/*
 * The informer's secondary indexes: value -> set of keys, filed and unfiled
 * as items change.
 */

/** Maps an item to the values an index files it under (none: `undefined` or `[]`). */
export type IndexFn<T> = (value: T) => string | readonly string[] | undefined | null;

export const EMPTY: ReadonlySet<string> = new Set();

function valuesOf(v: string | readonly string[] | undefined | null): readonly string[] {
  if (v === undefined || v === null) return [];
  return typeof v === 'string' ? [v] : v;
}

export function fileUnder(map: Map<string, Set<string>>, values: string | readonly string[] | undefined | null, key: string): void {
  for (const v of valuesOf(values)) {
    let set = map.get(v);
    if (set === undefined) map.set(v, (set = new Set()));
    set.add(key);
  }
}

export function unfile(map: Map<string, Set<string>>, values: string | readonly string[] | undefined | null, key: string): void {
  for (const v of valuesOf(values)) {
    const set = map.get(v);
    set?.delete(key);
    if (set?.size === 0) map.delete(v);
  }
}

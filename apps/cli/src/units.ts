/**
 * Human units in and out, kubectl style: cpu as cores (`0.5`, `2`) or
 * millicores (`500m`); memory with binary (`256Mi`, `1Gi`) or decimal (`1G`)
 * suffixes. The API speaks cores and integer MiB. Pure functions, no I/O.
 */

const BINARY: Record<string, number> = { Ki: 1 / 1024, Mi: 1, Gi: 1024, Ti: 1024 * 1024 };
const DECIMAL: Record<string, number> = { k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** `0.5`, `2`, `500m` -> cores. Throws a usage message on anything else or on <= 0. */
export function parseCpu(input: string | number): number {
  const s = String(input).trim();
  const m = /^(\d+(?:\.\d+)?|\.\d+)(m?)$/.exec(s);
  if (m === null) throw new Error(`invalid cpu quantity ${JSON.stringify(s)}: use cores (0.5, 2) or millicores (500m)`);
  const cores = m[2] === 'm' ? Number(m[1]) / 1000 : Number(m[1]);
  if (!(cores > 0)) throw new Error(`invalid cpu quantity ${JSON.stringify(s)}: must be more than 0`);
  return Math.round(cores * 1000) / 1000;
}

/**
 * `256Mi`, `1Gi`, `1.5Gi`, `512Ki`, `1G`, `500M` -> MiB (rounded up to a whole MiB).
 * A bare number is MiB, as everywhere else in Berth (`--memory-mib`).
 */
export function parseMemory(input: string | number): number {
  const s = String(input).trim();
  const m = /^(\d+(?:\.\d+)?|\.\d+)([KMGT]i|[kKMGT])?$/.exec(s);
  if (m === null) throw new Error(`invalid memory quantity ${JSON.stringify(s)}: use 256Mi, 1Gi, 1.5Gi, 500M or a number of MiB`);
  const n = Number(m[1]);
  const unit = m[2];
  const mib = unit === undefined ? n : unit in BINARY ? n * BINARY[unit]! : (n * DECIMAL[unit]!) / (1024 * 1024);
  const rounded = Math.ceil(mib - 1e-9);
  if (!(rounded > 0)) throw new Error(`invalid memory quantity ${JSON.stringify(s)}: must be more than 0`);
  return rounded;
}

/** Trims a number to at most `digits` decimals without trailing zeros. */
function trim(n: number, digits: number): string {
  return String(Number(n.toFixed(digits)));
}

/** Cores for people: `2`, `1.5`, `500m`, `0`. */
export function formatCpu(cores: number): string {
  if (!Number.isFinite(cores)) return '-';
  if (cores === 0) return '0';
  if (Math.abs(cores) < 1) return `${Math.round(cores * 1000)}m`;
  return trim(cores, 2);
}

/** MiB for people: `256Mi`, `1Gi`, `1.5Gi`, `2Ti`. */
export function formatMemory(mib: number): string {
  if (!Number.isFinite(mib)) return '-';
  const abs = Math.abs(mib);
  if (abs >= 1024 * 1024) return `${trim(mib / (1024 * 1024), 1)}Ti`;
  if (abs >= 1024) return `${trim(mib / 1024, 1)}Gi`;
  return `${trim(mib, 0)}Mi`;
}

/** A percentage with no decimals under 10 % and none above: `3.5%`, `42%`. */
export function formatPercent(p: number): string {
  if (!Number.isFinite(p)) return '-';
  return p < 10 ? `${trim(p, 1)}%` : `${Math.round(p)}%`;
}

/** `k=v` -> [k, v]; the value may contain `=`, the key may not be empty. */
export function parseKeyValue(input: string, what = 'key=value'): [string, string] {
  const i = input.indexOf('=');
  if (i <= 0) throw new Error(`invalid ${what} ${JSON.stringify(input)}: expected KEY=VALUE`);
  return [input.slice(0, i), input.slice(i + 1)];
}

/** A list of `k=v` (repeated flags, or comma-separated) -> a record. */
export function parseKeyValues(inputs: readonly string[], what = 'key=value', splitCommas = false): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of inputs) {
    for (const part of splitCommas ? raw.split(',') : [raw]) {
      if (part === '') continue;
      const [k, v] = parseKeyValue(part, what);
      out[k] = v;
    }
  }
  return out;
}

/** `{a: '1', b: '2'}` -> `a=1,b=2` (`<none>` when empty). */
export function formatKeyValues(rec: Record<string, string> | undefined, sep = ','): string {
  const entries = Object.entries(rec ?? {});
  return entries.length === 0 ? '<none>' : entries.map(([k, v]) => `${k}=${v}`).join(sep);
}

/** A whole number within bounds, for flags like --tail and --priority. */
export function parseInteger(input: string, what: string, min = -Infinity, max = Infinity): number {
  const s = input.trim();
  if (!/^-?\d+$/.test(s)) throw new Error(`invalid ${what} ${JSON.stringify(input)}: expected a whole number`);
  const n = Number(s);
  if (n < min || n > max) throw new Error(`invalid ${what} ${n}: must be between ${min} and ${max}`);
  return n;
}

/** Options of waitFor. */
export interface WaitOptions {
  /** Give up after this long (ms). */
  timeoutMs?: number;
  /** Re-check every this many ms. */
  intervalMs?: number;
  /** What is awaited, for the timeout message. */
  what?: string;
}

/**
 * Re-checks `check` until it returns a value other than undefined/false, and
 * returns that value; throws with the last error after the timeout. Tests wait
 * on conditions with this, never on fixed sleeps.
 */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, opts: WaitOptions = {}): Promise<T> {
  const { timeoutMs = 15_000, intervalMs = 25, what = 'condition' } = opts;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves after `ms`; only for pacing loops that have a condition of their own. */
export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

import { MILLI } from './quantity.js';

/*
 * Scores are bounded (0-100, higher is better), as in kube-scheduler. The
 * select stage ranks on exact keys (integers for the fit policies, the float
 * score for spread/binpack) and reports the score, rounded, for humans.
 */

/** Upper bound of every score. */
export const MAX_SCORE = 100;

/** Fraction (0-1) of `capacity` used by `used`; a zero-capacity resource counts as full, so it never attracts spread. */
export function utilisation(used: number, capacity: number): number {
  if (capacity <= 0) return 1;
  const u = used / capacity;
  return u < 0 ? 0 : u > 1 ? 1 : u;
}

/**
 * spread (E-PVM-like, Nomad's ScoreFitSpread): with cpu and memory
 * utilisation u_c, u_m in [0,1] after placement,
 *   score = 100 * (20 - (10^u_c + 10^u_m)) / 18
 * 100 on an empty node, 0 on a full one. The exponential cost makes the last
 * free units of a node dearer than the first, as E-PVM's opportunity cost
 * does, so a node loaded in one dimension is avoided even if the other is idle.
 */
export function spreadScore(cpuUtil: number, memUtil: number): number {
  return bounded((MAX_SCORE * (20 - (pow10(cpuUtil) + pow10(memUtil)))) / 18);
}

/**
 * binpack (Nomad's ScoreFitBinPack): the same cost on the free fractions,
 *   score = 100 * (20 - (10^(1-u_c) + 10^(1-u_m))) / 18
 * 100 on a node filled exactly, 0 on an empty one; balanced fills score higher
 * than lopsided ones, which leaves whole nodes free for big pods.
 */
export function binpackScore(cpuUtil: number, memUtil: number): number {
  return bounded((MAX_SCORE * (20 - (pow10(1 - cpuUtil) + pow10(1 - memUtil)))) / 18);
}

/** 10^x as e^(x ln 10): V8's Math.exp is about 4x faster than `**` with a fractional exponent, and this runs once per node per pod. */
function pow10(x: number): number {
  return Math.exp(x * Math.LN10);
}

/** Clamps into 0-100: e^(ln 10) is 10 plus an ulp, which would put a full node a hair below 0. */
function bounded(score: number): number {
  return score < 0 ? 0 : score > MAX_SCORE ? MAX_SCORE : score;
}

/** best-fit's displayed score, 100 * 1000 / (1000 + remaining millicores): 100 for an exact fit, 50 with one core left; monotone in what best-fit ranks on. */
export function bestFitScore(remainingMillicores: number): number {
  return (MAX_SCORE * MILLI) / (MILLI + Math.max(0, remainingMillicores));
}

/** worst-fit's displayed score, 100 * remaining / (1000 + remaining): 0 for an exact fit, 50 with one core left. */
export function worstFitScore(remainingMillicores: number): number {
  const r = Math.max(0, remainingMillicores);
  return (MAX_SCORE * r) / (MILLI + r);
}

/** Scores as reported in a Decision: two decimals, so logs and events stay readable. */
export function displayScore(score: number): number {
  return Math.round(score * 100) / 100;
}

/** FNV-1a state after hashing `seed` and a separator; computed once per call, then extended per node id. */
export function seedState(seed: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193);
  return Math.imul(h ^ 0, 0x01000193) >>> 0;
}

/**
 * Tie-break rank of a node under a seed (uint32, lower wins): FNV-1a of
 * (seed, id) finished with murmur3's fmix32. Seeding it, as Nomad seeds its
 * candidate shuffle from the evaluation id, makes a placement replayable while
 * ties do not always fall on the same node.
 */
export function tieBreak(state: number, id: string): number {
  let h = state;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Tie-break rank of node `id` under `seed`; see {@link tieBreak}. */
export function tieBreakHash(seed: string, id: string): number {
  return tieBreak(seedState(seed), id);
}

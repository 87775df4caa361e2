import { InvalidArgumentError, Option } from '@commander-js/extra-typings';
import { getKindOf, isTokenWord, kindOf, type Kind } from '../completion.js';
import { UsageError } from './context.js';

/** Wraps one of our parsers as a commander argParser: commander prints its error with the usage hint (exit 1). */
export const arg =
  <T>(fn: (s: string) => T) =>
  (value: string): T => {
    try {
      return fn(value);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };

/** argParser of a repeatable option: every value, in order. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `-o`: a wider table, or the API's objects as JSON or YAML. */
export type Output = 'wide' | 'json' | 'yaml' | undefined;
export const outputOption = () => new Option('-o, --output <format>', 'output format: wide, json or yaml').choices(['wide', 'json', 'yaml'] as const);

/** `json` or `yaml` when the objects themselves are printed, else undefined (a table). */
export const structured = (format: Output): 'json' | 'yaml' | undefined => (format === 'json' || format === 'yaml' ? format : undefined);

const KIND_WORDS = 'nodes (node, no), pods (pod, po), services (service, svc), jobs (job)';

/** What `berth get` lists. */
export function getKindArg(word: string): Kind | 'events' | 'tokens' {
  const kind = getKindOf(word);
  if (kind === undefined) throw new InvalidArgumentError(`unknown resource type ${JSON.stringify(word)}: use ${KIND_WORDS}, events (event, ev) or tokens (token)`);
  return kind;
}

/** What `berth delete` removes: a node, pod, service or job, or an API token. */
export function deleteKindArg(word: string): Kind | 'tokens' {
  if (isTokenWord(word)) return 'tokens';
  const kind = kindOf(word);
  if (kind === undefined) throw new InvalidArgumentError(`unknown resource type ${JSON.stringify(word)}: use ${KIND_WORDS} or token`);
  return kind;
}

/** A node, pod, service or job (describe, delete). */
export function kindArg(word: string): Kind {
  const kind = kindOf(word);
  if (kind === undefined) throw new InvalidArgumentError(`unknown resource type ${JSON.stringify(word)}: use ${KIND_WORDS}`);
  return kind;
}

/** The one kind a command acts on (`berth create service`, `berth scale service`). */
export function onlyKind(kind: Kind, command: string) {
  return (word: string): Kind => {
    if (kindOf(word) !== kind) throw new InvalidArgumentError(`${JSON.stringify(word)}: berth ${command} works on ${kind} only`);
    return kind;
  };
}

/**
 * Runs a parser inside an action, where commander no longer prints errors:
 * its error becomes a UsageError, which main prints (exit 1).
 */
export function usage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

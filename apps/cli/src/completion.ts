/**
 * Shell completion the kubectl way: `berth completion bash|zsh` prints a
 * script; the script calls the hidden `berth __complete WORDS... CURRENT`,
 * which prints one candidate per line (names of nodes and pods come from the
 * API). Pure apart from the injected name lookup.
 */

import { JOB_METHODS, JOB_STATUSES, RESTART_POLICIES, ROLES, type RuntimeKind } from '@berth/core';

/** The runtimes `berth nodes add --runtime` offers, its default first. */
export const RUNTIME_CHOICES = ['process', 'simulated', 'docker'] as const satisfies readonly RuntimeKind[];

export const BASH_COMPLETION = `# berth bash completion. Load with:  source <(berth completion bash)
_berth_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local IFS=$'\\n'
  local candidates
  candidates="$(berth __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)"
  COMPREPLY=( $(compgen -W "$candidates" -- "$cur") )
}
complete -o default -F _berth_complete berth
`;

export const ZSH_COMPLETION = `#compdef berth
# berth zsh completion. Load with:  source <(berth completion zsh)   (after compinit)
_berth() {
  local -a candidates
  candidates=("\${(@f)$(berth __complete "\${(@)words[2,$CURRENT]}" 2>/dev/null)}")
  compadd -a candidates
}
if [ "$funcstack[1]" = "_berth" ]; then
  _berth "$@"
else
  compdef _berth berth
fi
`;

/** Top-level commands offered by completion (hidden ones left out). */
export const COMMANDS = [
  'get', 'describe', 'top', 'nodes', 'cordon', 'uncordon', 'drain', 'delete', 'run', 'create', 'scale', 'submit', 'apply',
  'stop', 'start', 'pause', 'resume', 'restart', 'logs', 'leader', 'cluster', 'whoami', 'audit', 'config', 'demo', 'completion', 'help',
];

/** The objects `describe` and `delete` act on, by name (or id). */
export type Kind = 'nodes' | 'pods' | 'services' | 'jobs';

const KINDS = ['nodes', 'pods', 'services', 'jobs', 'events', 'tokens'];
const SINGULAR_KINDS = ['node', 'pod', 'service', 'job'];
const CONFIG_COMMANDS = ['get-contexts', 'current-context', 'use-context', 'set-context', 'delete-context', 'view'];

/** Flags that take a value, per command (global ones too), so completion can skip their values. */
const VALUE_FLAGS = new Set(['--server', '--token', '-o', '--output', '--tail', '--image', '--cpu', '--memory', '--port', '-p', '--env', '-e', '--restart',
  '--priority', '--selector', '--name', '--label', '--runtime', '-f', '--filename', '--node', '--phase', '--policy', '--limit', '--replicas',
  '--health-path', '--service', '--status', '--path', '--method', '-X', '--header', '-H', '--data', '-d', '--timeout', '--attempt-timeout',
  '--max-attempts', '--idempotency-key', '--token-file', '--context', '--role', '--since', '--actor']);

/** Which kind a resource word names, if any. */
export function kindOf(word: string | undefined): Kind | undefined {
  if (word === undefined) return undefined;
  if (['node', 'nodes', 'no'].includes(word)) return 'nodes';
  if (['pod', 'pods', 'po'].includes(word)) return 'pods';
  if (['service', 'services', 'svc'].includes(word)) return 'services';
  if (['job', 'jobs'].includes(word)) return 'jobs';
  return undefined;
}

/** API tokens (`berth get tokens`, `berth delete token NAME`): admin only, so completion never lists their names. */
export function isTokenWord(word: string | undefined): boolean {
  return word === 'token' || word === 'tokens';
}

/** Which kind `berth get` lists: nodes, pods, services, jobs, events (event, ev) or tokens. */
export function getKindOf(word: string | undefined): Kind | 'events' | 'tokens' | undefined {
  if (word !== undefined && ['event', 'events', 'ev'].includes(word)) return 'events';
  if (isTokenWord(word)) return 'tokens';
  return kindOf(word);
}

type GlobalFlags = { server?: string; token?: string; tokenFile?: string; context?: string };
const GLOBAL_FLAG_KEYS: Record<string, keyof GlobalFlags> = { server: 'server', token: 'token', 'token-file': 'tokenFile', context: 'context' };

/** Splits the global connection flags out of the words, so completion can reach the same server with the same token. */
export function extractGlobalFlags(words: readonly string[]): GlobalFlags & { rest: string[] } {
  const rest: string[] = [];
  const out: GlobalFlags = {};
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const m = /^--(server|token|token-file|context)(?:=(.*))?$/.exec(w);
    // The last word is the one being completed: never taken as a flag's value (`--context <TAB>` completes it).
    const last = words.length - 1;
    if (m !== null && i < last && (m[2] !== undefined || i + 1 < last)) {
      out[GLOBAL_FLAG_KEYS[m[1]!]!] = m[2] ?? words[++i]!;
      continue;
    }
    rest.push(w);
  }
  return { ...out, rest };
}

/**
 * Candidates for the last word of `words` (the one being completed, maybe
 * empty). `names(kind)` lists the names of nodes, pods or services, or the
 * ids of recent jobs; errors there give no names.
 */
export async function complete(words: readonly string[], names: (kind: Kind) => Promise<string[]>, contexts: () => string[] = () => []): Promise<string[]> {
  const { rest } = extractGlobalFlags(words);
  const current = rest.length === 0 ? '' : rest[rest.length - 1]!;
  const before = rest.slice(0, -1);
  // Positional words typed so far, flags and their values left out.
  const positional: string[] = [];
  for (let i = 0; i < before.length; i++) {
    const w = before[i]!;
    if (w.startsWith('-')) {
      if (VALUE_FLAGS.has(w) && !w.includes('=')) i++;
      continue;
    }
    positional.push(w);
  }
  const prev = before[before.length - 1];
  const filter = (xs: readonly string[]) => xs.filter((x) => x.startsWith(current));
  const safeNames = async (kind: Kind) => filter(await names(kind).catch(() => []));

  if (prev === '-o' || prev === '--output') return filter(['wide', 'json', 'yaml']);
  if (prev === '--restart') return filter(RESTART_POLICIES);
  if (prev === '--runtime') return filter(RUNTIME_CHOICES);
  if (prev === '--node') return safeNames('nodes');
  if (prev === '--service') return safeNames('services');
  if (prev === '--status') return filter(JOB_STATUSES);
  if (prev === '--role') return filter(ROLES);
  if (prev === '--context') return filter(contexts());
  if (prev === '--method' || prev === '-X') return filter(JOB_METHODS);
  if (prev !== undefined && VALUE_FLAGS.has(prev)) return [];

  const [cmd, ...args] = positional;
  if (cmd === undefined) return filter(COMMANDS);
  switch (cmd) {
    case 'get':
    case 'describe':
    case 'delete': {
      if (args.length === 0) return filter(cmd === 'get' ? KINDS : cmd === 'delete' ? [...SINGULAR_KINDS, 'token'] : SINGULAR_KINDS);
      const kind = kindOf(args[0]);
      return kind !== undefined && args.length === 1 ? safeNames(kind) : [];
    }
    case 'create':
      return args.length === 0 ? filter(['service', 'token']) : [];
    case 'config':
      if (args.length === 0) return filter(CONFIG_COMMANDS);
      return args.length === 1 && ['use-context', 'set-context', 'delete-context'].includes(args[0]!) ? filter(contexts()) : [];
    case 'scale':
      if (args.length === 0) return filter(['service']);
      return args.length === 1 && kindOf(args[0]) === 'services' ? safeNames('services') : [];
    case 'submit':
      return args.length === 0 ? safeNames('services') : [];
    case 'top':
      return args.length === 0 ? filter(['nodes']) : [];
    case 'nodes':
      return args.length === 0 ? filter(['add']) : [];
    case 'cordon':
    case 'uncordon':
    case 'drain':
      return args.length === 0 ? safeNames('nodes') : [];
    case 'stop':
    case 'start':
    case 'pause':
    case 'resume':
    case 'restart':
      if (args.length === 0) return filter(['pod']);
      return args.length === 1 && kindOf(args[0]) === 'pods' ? safeNames('pods') : [];
    case 'logs':
      return args.length === 0 ? safeNames('pods') : [];
    case 'completion':
      return args.length === 0 ? filter(['bash', 'zsh']) : [];
    case 'help':
      return args.length === 0 ? filter(COMMANDS) : [];
    default:
      return [];
  }
}

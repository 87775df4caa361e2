import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where the CLI talks to, and with which token. */
export interface CliConfig {
  server: string;
  token?: string;
  /** Where the server came from, for error messages. */
  source: 'flag' | 'env' | 'config' | 'default';
  /** Where the token came from (`--token`, `$BERTH_TOKEN_FILE /x`, `context "local"`...), so a refused one can be traced. */
  tokenSource?: string;
  /** The config file's context in use, if any. */
  context?: string;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:8081';

/** One named place to talk to, kubeconfig-like: a server and how to authenticate there. */
export interface ContextConfig {
  server?: string;
  token?: string;
  /** A file holding the token (trimmed); relative paths are taken from the config file's directory. */
  tokenFile?: string;
}

/** The config file: contexts, the one in use, and the older top-level `server`/`token` (used when no context is). */
export interface ConfigFile extends ContextConfig {
  currentContext?: string;
  contexts: Record<string, ContextConfig>;
}

/** The global flags that decide where requests go. */
export interface ConnectionFlags {
  server?: string | undefined;
  token?: string | undefined;
  tokenFile?: string | undefined;
  context?: string | undefined;
}

/** `~/.config/berth/config.json`, honouring XDG_CONFIG_HOME. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(base, 'berth', 'config.json');
}

const CONTEXT_FIELDS = ['server', 'token', 'tokenFile'] as const;

function contextFields(o: Record<string, unknown>, where: string): ContextConfig {
  const out: ContextConfig = {};
  for (const k of CONTEXT_FIELDS) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new Error(`${where}${k} must be a string`);
    out[k] = v;
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The file's JSON object as written (unknown keys kept, so a rewrite loses nothing); undefined when absent. */
function readRaw(file: string): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!isObject(parsed)) throw new Error('expected a JSON object');
    return parsed;
  } catch (err) {
    throw new Error(`invalid config file ${file}: ${(err as Error).message}`);
  }
}

function parseConfig(raw: Record<string, unknown>): ConfigFile {
  const contexts: Record<string, ContextConfig> = {};
  if (raw.contexts !== undefined) {
    if (!isObject(raw.contexts)) throw new Error('"contexts" must be an object of name: {server, token | tokenFile}');
    for (const [name, v] of Object.entries(raw.contexts)) {
      if (!isObject(v)) throw new Error(`context "${name}" must be an object`);
      contexts[name] = contextFields(v, `context "${name}": `);
    }
  }
  if (raw.currentContext !== undefined && typeof raw.currentContext !== 'string') throw new Error('"currentContext" must be a string');
  return { ...contextFields(raw, ''), ...(raw.currentContext === undefined ? {} : { currentContext: raw.currentContext }), contexts };
}

/** Reads the config file; absent is fine (no contexts), unreadable JSON or wrong types are an error naming the file. */
export function readConfigFile(file: string): ConfigFile {
  const raw = readRaw(file);
  if (raw === undefined) return { contexts: {} };
  try {
    return parseConfig(raw);
  } catch (err) {
    throw new Error(`invalid config file ${file}: ${(err as Error).message}`);
  }
}

/**
 * Changes the config file: `change` edits the parsed file, and everything is
 * written back, keys this CLI does not know included. The file holds tokens,
 * so it is written 0600 in a 0700 directory, through a temp file and a
 * rename, so a crash never leaves half a file.
 */
export function updateConfigFile(file: string, change: (cfg: ConfigFile) => void): ConfigFile {
  const raw = readRaw(file) ?? {};
  const cfg = readConfigFile(file);
  change(cfg);
  const doc: Record<string, unknown> = { ...raw };
  for (const k of CONTEXT_FIELDS) doc[k] = cfg[k];
  doc.currentContext = cfg.currentContext;
  doc.contexts = cfg.contexts;
  for (const k of Object.keys(doc)) if (doc[k] === undefined) delete doc[k];
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
  return cfg;
}

/** Context names: what a shell and a table show without quoting. */
export function checkContextName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) throw new Error(`invalid context name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' (at most 63)`);
  return name;
}

/** Adds http:// when no scheme is given and strips trailing slashes. */
export function normalizeServer(server: string): string {
  let s = server.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) s = `http://${s}`;
  return s.replace(/\/+$/, '');
}

/** A token kept in a file (the admin token `--admin-token-file` made, say): its trimmed content. */
export function readTokenFile(file: string, from: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot read the token file ${file} (${from}): ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  const token = text.trim();
  if (token === '') throw new Error(`the token file ${file} (${from}) is empty`);
  return token;
}

const given = (s: string | undefined): s is string => s !== undefined && s !== '';

/**
 * Where requests go and with which token. The server: `--server`,
 * `$BERTH_SERVER`, the context's (or the file's top-level) `server`, the
 * default. The token: `--token`, `$BERTH_TOKEN`, `--token-file`,
 * `$BERTH_TOKEN_FILE`, the context's `token` or `tokenFile` (or the file's
 * top-level ones). The context: `--context`, `$BERTH_CONTEXT`, the file's
 * `currentContext`; one named but missing is an error. Files are read only
 * when their turn comes.
 */
export function resolveConfig(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env, file: string = configPath(env)): CliConfig {
  let loaded: { entry: ContextConfig; context?: string } | undefined;
  const fromFile = () => (loaded ??= selectContext(readConfigFile(file), flags.context ?? (given(env.BERTH_CONTEXT) ? env.BERTH_CONTEXT : undefined), file));
  // `--context` always reads the file, so a misspelt name fails even when the flags say everything else.
  if (given(flags.context)) fromFile();

  const token = ((): { token: string; tokenSource: string } | undefined => {
    if (given(flags.token)) return { token: flags.token, tokenSource: '--token' };
    if (given(env.BERTH_TOKEN)) return { token: env.BERTH_TOKEN, tokenSource: '$BERTH_TOKEN' };
    if (given(flags.tokenFile)) return { token: readTokenFile(flags.tokenFile, '--token-file'), tokenSource: `--token-file ${flags.tokenFile}` };
    if (given(env.BERTH_TOKEN_FILE)) return { token: readTokenFile(env.BERTH_TOKEN_FILE, '$BERTH_TOKEN_FILE'), tokenSource: `$BERTH_TOKEN_FILE ${env.BERTH_TOKEN_FILE}` };
    const { entry, context } = fromFile();
    const where = context === undefined ? `config file ${file}` : `context "${context}" of ${file}`;
    if (given(entry.token)) return { token: entry.token, tokenSource: where };
    if (given(entry.tokenFile)) {
      const f = path.resolve(path.dirname(file), entry.tokenFile);
      return { token: readTokenFile(f, `tokenFile of ${where}`), tokenSource: `${where} (token file ${f})` };
    }
    return undefined;
  })();

  const [server, source] = ((): [string, CliConfig['source']] => {
    if (given(flags.server)) return [flags.server, 'flag'];
    if (given(env.BERTH_SERVER)) return [env.BERTH_SERVER, 'env'];
    const { entry } = fromFile();
    if (given(entry.server)) return [entry.server, 'config'];
    return [DEFAULT_SERVER, 'default'];
  })();
  const context = loaded?.context;
  return { server: normalizeServer(server), source, ...(token ?? {}), ...(context === undefined ? {} : { context }) };
}

/** The context `wanted` names (else the current one), or the file's top-level fields when there is none. */
function selectContext(cfg: ConfigFile, wanted: string | undefined, file: string): { entry: ContextConfig; context?: string } {
  const name = wanted ?? cfg.currentContext;
  if (name === undefined || name === '') return { entry: { ...(cfg.server === undefined ? {} : { server: cfg.server }), ...(cfg.token === undefined ? {} : { token: cfg.token }), ...(cfg.tokenFile === undefined ? {} : { tokenFile: cfg.tokenFile }) } };
  const entry = cfg.contexts[name];
  if (entry === undefined) {
    const from = wanted === undefined ? `its currentContext` : `--context or $BERTH_CONTEXT`;
    const known = Object.keys(cfg.contexts);
    throw new Error(`no context "${name}" in ${file} (named by ${from}); ${known.length === 0 ? 'it has none' : `it has ${known.join(', ')}`}: see berth config get-contexts`);
  }
  return { entry, context: name };
}

/** A token as `berth config view` shows it: enough to tell two apart, not enough to use. */
export function maskToken(token: string): string {
  return token.length <= 10 ? '****' : `${token.slice(0, Math.min(10, token.length - 8))}****`;
}

/** The file as `berth config view` shows it: every token masked. */
export function maskedConfig(cfg: ConfigFile): ConfigFile {
  const mask = (c: ContextConfig): ContextConfig => (c.token === undefined ? c : { ...c, token: maskToken(c.token) });
  return { ...mask(cfg), contexts: Object.fromEntries(Object.entries(cfg.contexts).map(([k, v]) => [k, mask(v)])) };
}

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where the CLI talks to, and with which token. */
export interface CliConfig {
  server: string;
  token?: string;
  /** Where the server came from, for error messages. */
  source: 'flag' | 'env' | 'config' | 'default';
}

export const DEFAULT_SERVER = 'http://127.0.0.1:8081';

/** `~/.config/berth/config.json`, honouring XDG_CONFIG_HOME. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(base, 'berth', 'config.json');
}

/** Reads the config file; absent is fine, unreadable JSON is an error naming the file. */
export function readConfigFile(file: string): { server?: string; token?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('expected a JSON object');
    const o = parsed as Record<string, unknown>;
    return {
      ...(typeof o.server === 'string' ? { server: o.server } : {}),
      ...(typeof o.token === 'string' ? { token: o.token } : {}),
    };
  } catch (err) {
    throw new Error(`invalid config file ${file}: ${(err as Error).message}`);
  }
}

/** Adds http:// when no scheme is given and strips trailing slashes. */
export function normalizeServer(server: string): string {
  let s = server.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) s = `http://${s}`;
  return s.replace(/\/+$/, '');
}

/** Precedence: flag, then environment, then the config file, then the default. Pure apart from reading the file. */
export function resolveConfig(
  flags: { server?: string | undefined; token?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
  file: string = configPath(env),
): CliConfig {
  const fromFile = flags.server !== undefined && flags.token !== undefined ? {} : readConfigFile(file);
  const token = flags.token ?? (env.BERTH_TOKEN || undefined) ?? fromFile.token;
  const pick = (): [string, CliConfig['source']] => {
    if (flags.server !== undefined && flags.server !== '') return [flags.server, 'flag'];
    if (env.BERTH_SERVER !== undefined && env.BERTH_SERVER !== '') return [env.BERTH_SERVER, 'env'];
    if (fromFile.server !== undefined) return [fromFile.server, 'config'];
    return [DEFAULT_SERVER, 'default'];
  };
  const [server, source] = pick();
  return { server: normalizeServer(server), source, ...(token === undefined || token === '' ? {} : { token }) };
}

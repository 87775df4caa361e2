import type { Command } from '@commander-js/extra-typings';
import pc from 'picocolors';
import YAML from 'yaml';
import { BerthClient } from '../client.js';
import { resolveConfig, type CliConfig } from '../config.js';
import { PLAIN, type Palette } from '../render.js';

/** Where output goes; tests and main pass the process streams. */
export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

/** The global flags every command can be given. */
export type GlobalOptions = { server?: string; token?: string; tokenFile?: string; context?: string };

/** The `berth` program the commands register on. */
export type Program = Command<[], GlobalOptions>;

/** What every command needs: where to print, with which colours, and a client of the server the global flags name. */
export interface CommandContext {
  io: Io;
  /** Colours, or identity functions when colour is off. */
  c: Palette;
  /** A line on stdout. */
  out(line: string): void;
  /** A line on stderr. */
  err(line: string): void;
  /** The server and token from the flags, the environment or the config file (read when a command runs). */
  config(): CliConfig;
  /** A client of that server. */
  client(): BerthClient;
  /** One object as indented JSON or a YAML document (`-o json|yaml`). */
  printData(data: unknown, format: 'json' | 'yaml'): void;
}

/** Colour only on a TTY and never with NO_COLOR (https://no-color.org). */
export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
}

function palette(enabled: boolean): Palette {
  if (!enabled) return PLAIN;
  const c = pc.createColors(true);
  return { green: c.green, yellow: c.yellow, red: c.red, dim: c.dim, bold: c.bold };
}

/** The context of `program`'s commands; the global flags are read only when a command runs, after parsing. */
export function commandContext(program: Program, io: Io): CommandContext {
  const out = (s: string) => void io.stdout.write(`${s}\n`);
  const config = () => resolveConfig(program.opts(), io.env);
  return {
    io,
    c: palette(colorEnabled(io.stdout, io.env)),
    out,
    err: (s) => void io.stderr.write(`${s}\n`),
    config,
    client: () => {
      const cfg = config();
      return new BerthClient(cfg.server, cfg.token, undefined, cfg.tokenSource);
    },
    printData: (data, format) => out(format === 'json' ? JSON.stringify(data, null, 2) : YAML.stringify(data).trimEnd()),
  };
}

/** A local usage problem (exit 1, no "from server"). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

#!/usr/bin/env node
import { CommanderError } from '@commander-js/extra-typings';
import { ApiError, ConnectionError } from './client.js';
import { explainApiError } from './errors.js';
import { ManifestError } from './manifest.js';
import { buildProgram, colorEnabled, runComplete, type Io } from './program.js';
import pc from 'picocolors';

const io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env };

// `berth get pods | head`: the reader went away, so there is nobody left to print for (as kubectl does).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

/** Prints an error the kubectl way and picks the exit code: 2 unreachable, 1 everything else. */
function fail(err: unknown): number {
  const red = colorEnabled(process.stderr, process.env) ? pc.createColors(true).red : (s: string) => s;
  if (err instanceof ConnectionError) {
    process.stderr.write(`${red('error:')} ${err.message}\n`);
    return 2;
  }
  if (err instanceof ApiError) {
    process.stderr.write(`${red('Error from server')} (${err.code}): ${explainApiError(err)}\n`);
    return 1;
  }
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
  if (err instanceof ManifestError || (err instanceof Error && err.name === 'UsageError')) {
    process.stderr.write(`${red('error:')} ${err.message}\n`);
    return 1;
  }
  process.stderr.write(`${red('error:')} ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
}

async function main(argv: string[]): Promise<number> {
  // Completion words may hold anything (flags, --server, -h): keep commander's parser away from them.
  if (argv[0] === '__complete') {
    await runComplete(argv.slice(1), io).catch(() => undefined);
    return 0;
  }
  const program = buildProgram(io);
  program.exitOverride();
  for (const cmd of program.commands) {
    cmd.exitOverride();
    for (const sub of cmd.commands) sub.exitOverride();
  }
  await program.parseAsync(argv, { from: 'user' });
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = fail(err);
  },
);

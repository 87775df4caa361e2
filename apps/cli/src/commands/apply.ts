import fs from 'node:fs';
import { ApiError } from '../client.js';
import { normalizedSpec, parseManifests, specDiff } from '../manifest.js';
import { UsageError, type CommandContext, type Program } from './context.js';

/**
 * `berth apply -f FILE`: creates the manifest's pods that do not exist; one
 * that exists with the same spec is "unchanged", one with another spec is an
 * error (a spec cannot change in place), and the exit code is then 1.
 */
export function registerApply(program: Program, ctx: CommandContext): void {
  program
    .command('apply')
    .summary('Create the pods of a YAML manifest (idempotent)')
    .description('Create the pods of a manifest (multi-document YAML, kind: Pod). Pods that exist with the same spec are "unchanged"; a changed spec needs delete + apply')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin')
    .action(async (opts) => {
      const file = opts.filename;
      let text: string;
      try {
        text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
      }
      const manifests = parseManifests(text, file === '-' ? '<stdin>' : file);
      if (manifests.length === 0) throw new UsageError(`no objects passed to apply (${file} has no documents)`);
      const api = ctx.client();
      let failed = false;
      for (const { request } of manifests) {
        const existing = await api.pod(request.name).catch((e: unknown) => {
          if (e instanceof ApiError && e.code === 'NOT_FOUND') return undefined;
          throw e;
        });
        if (existing === undefined) {
          await api.createPod(request);
          ctx.out(`pod/${request.name} created`);
          continue;
        }
        const diff = specDiff(existing.spec, normalizedSpec(request));
        if (diff.length === 0) {
          ctx.out(`pod/${request.name} unchanged`);
          continue;
        }
        failed = true;
        ctx.err(
          `error: pod/${request.name} already exists with a different spec (${diff.join('; ')}).\n` +
            `  A pod's spec cannot be changed in place: delete it and apply again:  berth delete pod ${request.name} && berth apply -f ${file}`,
        );
      }
      if (failed) process.exitCode = 1;
    });
}

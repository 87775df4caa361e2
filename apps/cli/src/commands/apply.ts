import fs from 'node:fs';
import { ApiError, type BerthClient } from '../client.js';
import { normalizedSpec, parseManifests, serviceChanges, specDiff, type PodManifest, type ServiceManifest } from '../manifest.js';
import { UsageError, type CommandContext, type Program } from './context.js';

/** Undefined when the API says NOT_FOUND; any other error is thrown. */
const orMissing = <T>(p: Promise<T>): Promise<T | undefined> =>
  p.catch((e: unknown) => {
    if (e instanceof ApiError && e.code === 'NOT_FOUND') return undefined;
    throw e;
  });

/**
 * `berth apply -f FILE`: creates the manifest's pods and services that do not
 * exist. An existing pod with the same spec is "unchanged", one with another
 * spec is an error (a spec cannot change in place), and the exit code is then
 * 1. An existing service is patched to the manifest ("configured": replicas,
 * port, or a template change, which replaces its pods one at a time), or
 * "unchanged" when it already matches.
 */
export function registerApply(program: Program, ctx: CommandContext): void {
  program
    .command('apply')
    .summary('Create or update the pods and services of a YAML manifest (idempotent)')
    .description(
      'Create the pods and services of a manifest (multi-document YAML, kind: Pod or kind: Service). Objects that already match are "unchanged"; ' +
        'a service that differs is patched ("configured"); a pod whose spec differs needs delete + apply',
    )
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
      for (const manifest of manifests) {
        if (manifest.kind === 'Service') await applyService(ctx, api, manifest);
        else if (!(await applyPod(ctx, api, manifest, file))) failed = true;
      }
      if (failed) process.exitCode = 1;
    });
}

/** False when the pod exists with another spec (reported on stderr). */
async function applyPod(ctx: CommandContext, api: BerthClient, { request }: PodManifest, file: string): Promise<boolean> {
  const existing = await orMissing(api.pod(request.name));
  if (existing === undefined) {
    await api.createPod(request);
    ctx.out(`pod/${request.name} created`);
    return true;
  }
  const diff = specDiff(existing.spec, normalizedSpec(request));
  if (diff.length === 0) {
    ctx.out(`pod/${request.name} unchanged`);
    return true;
  }
  ctx.err(
    `error: pod/${request.name} already exists with a different spec (${diff.join('; ')}).\n` +
      `  A pod's spec cannot be changed in place: delete it and apply again:  berth delete pod ${request.name} && berth apply -f ${file}`,
  );
  return false;
}

async function applyService(ctx: CommandContext, api: BerthClient, { request }: ServiceManifest): Promise<void> {
  const existing = await orMissing(api.service(request.name));
  if (existing === undefined) {
    await api.createService(request);
    return ctx.out(`service/${request.name} created`);
  }
  const { patch, changes } = serviceChanges(existing, request);
  if (patch === undefined) return ctx.out(`service/${request.name} unchanged`);
  await api.patchService(request.name, patch);
  ctx.out(`service/${request.name} configured (${changes.join('; ')})`);
}

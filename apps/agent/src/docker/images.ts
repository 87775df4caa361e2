import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { PodCreateError, RuntimeUnavailableError } from '../runtime.js';
import { callEngine, engineMessage, statusOf } from './engine-errors.js';

/** How hard to try before a pod fails for its image. */
export interface PullPolicy {
  /** Pull attempts before a pod fails. */
  attempts: number;
  /** First delay between attempts, doubling. */
  backoffMs: number;
  log?: Logger;
}

/**
 * Pulls `image` unless the engine has it; retries with back-off, then throws
 * PodCreateError carrying the engine's message (the pod fails CreateFailed
 * with it). An absent engine throws RuntimeUnavailableError at once: that is
 * the node's problem, not the image's.
 */
export async function ensureImage(docker: Docker, image: string, policy: PullPolicy): Promise<void> {
  try {
    await callEngine('inspect image', () => docker.getImage(image).inspect());
    return;
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
  let last = '';
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    try {
      await pull(docker, image);
      return;
    } catch (err) {
      if (err instanceof RuntimeUnavailableError) throw err;
      last = engineMessage(err);
      policy.log?.warn({ err, image, attempt }, 'image pull failed');
      if (attempt < policy.attempts) await sleep(policy.backoffMs * 2 ** (attempt - 1));
    }
  }
  throw new PodCreateError(`cannot pull image ${JSON.stringify(image)} (${policy.attempts} attempts): ${last}`);
}

/**
 * One pull, to its end. dockerode's `pull` resolves when the progress stream
 * starts, and a failed pull can still end the stream cleanly with
 * `{error, errorDetail}` entries in it: both are checked.
 */
async function pull(docker: Docker, image: string): Promise<void> {
  const stream = (await callEngine('pull', () => docker.pull(image))) as Readable;
  await new Promise<void>((resolve, reject) => {
    let failed: string | undefined;
    docker.modem.followProgress(
      stream,
      (err: Error | null) => {
        if (err) reject(err);
        else if (failed !== undefined) reject(new Error(failed));
        else resolve();
      },
      (event: { error?: string; errorDetail?: { message?: string } }) => {
        if (event.error !== undefined || event.errorDetail !== undefined) failed ??= event.errorDetail?.message ?? event.error;
      },
    );
  });
}

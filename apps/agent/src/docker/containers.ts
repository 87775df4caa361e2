import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import type { PodSpecForRuntime, RuntimePodState } from '../runtime.js';

/** The pod a container runs: how the runtime finds its containers, after an agent restart too. */
export const LABEL_POD = 'berth.pod';
/** The node that owns a container: agents sharing an engine leave each other's alone. */
export const LABEL_NODE = 'berth.node';
/** A hash of what the container was created from (see specHash). */
export const LABEL_SPEC = 'berth.spec';

/**
 * What makes a container stale: a stopped container whose spec hash differs
 * (a new PORT after the agent restarted, say) is replaced on create.
 */
export function specHash(spec: PodSpecForRuntime): string {
  const env = Object.entries(spec.env ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  const parts: unknown[] = [spec.image, spec.command ?? null, env, spec.cpu, spec.memoryMiB];
  // Only when set, so containers of pods without them keep their hash.
  if (spec.capabilities !== undefined || spec.readOnlyRootFilesystem !== undefined) parts.push(spec.capabilities ?? [], spec.readOnlyRootFilesystem ?? false);
  return createHash('sha256')
    .update(JSON.stringify(parts))
    .digest('hex')
    .slice(0, 16);
}

/** Most processes a container may have, unless the agent is told otherwise (`--pids-limit`). */
export const DEFAULT_PIDS_LIMIT = 1024;

/**
 * The container of a pod: named `berth-pod-<name>-<id>`, labelled with pod
 * and node, on the host's network (the agent picked `PORT`), limited to the
 * pod's CPU and memory, with `Init` so SIGTERM reaches the pod's process
 * (a shell as PID 1 would ignore it). Hardened: no_new_privs (setuid
 * binaries cannot raise privileges), every capability dropped but those the
 * spec asks for, at most `pidsLimit` processes (a fork bomb stays in its
 * container), and the root file system read-only when the spec says so.
 */
export function containerOptions(spec: PodSpecForRuntime, nodeId: string, pidsLimit = DEFAULT_PIDS_LIMIT): Docker.ContainerCreateOptions {
  const env = Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`);
  env.push(`BERTH_POD_ID=${spec.id}`, `BERTH_POD_NAME=${spec.name}`);
  return {
    name: `berth-pod-${spec.name}-${spec.id}`.replace(/[^a-zA-Z0-9_.-]/g, '-'),
    Image: spec.image,
    ...(spec.command === undefined || spec.command.length === 0 ? {} : { Cmd: spec.command }),
    Env: env,
    Labels: { [LABEL_POD]: spec.id, [LABEL_NODE]: nodeId, [LABEL_SPEC]: specHash(spec), 'berth.pod-name': spec.name },
    HostConfig: {
      NetworkMode: 'host',
      Init: true,
      NanoCpus: Math.round(spec.cpu * 1e9),
      Memory: Math.round(spec.memoryMiB * 1024 * 1024),
      SecurityOpt: ['no-new-privileges'],
      CapDrop: ['ALL'],
      ...(spec.capabilities === undefined || spec.capabilities.length === 0 ? {} : { CapAdd: spec.capabilities }),
      PidsLimit: pidsLimit,
      ...(spec.readOnlyRootFilesystem === true ? { ReadonlyRootfs: true } : {}),
    },
  };
}

/** The runtime's state for an engine state (`docker ps`'s State column or inspect's State.Status). */
export function stateOf(status: string): RuntimePodState['state'] {
  switch (status) {
    case 'created':
      return 'created';
    case 'running':
    case 'restarting':
      return 'running';
    case 'paused':
      return 'paused';
    default:
      return 'exited'; // exited, dead, removing
  }
}

import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import pino from 'pino';
import { createEtcdClient } from '@berth/store';
import { EtcdServer, LocalCluster, docker, killChildrenOnSignals, runDir, type LocalClusterOptions } from '@berth/devcluster';

killChildrenOnSignals();

/** A temp dir removed when the test ends (kept when it fails, for the logs). */
export function tempDir(t: Test, prefix = 'berth-test-'): string {
  // Passable (not listable) by other users: pods run as their own users, and reach scripts and agent data dirs in here.
  const dir = runDir(prefix);
  t.teardown(() => {
    if (t.passing()) fs.rmSync(dir, { recursive: true, force: true });
    else t.comment(`logs kept in ${dir}`);
  });
  return dir;
}

/** A real etcd for this test, destroyed at teardown. */
export async function etcdFor(t: Test): Promise<EtcdServer> {
  const dir = tempDir(t, 'berth-etcd-');
  const etcd = await EtcdServer.start({ dataDir: path.join(dir, 'data'), logDir: dir });
  t.teardown(() => etcd.destroy());
  return etcd;
}

/** An etcd3 client for the test process, closed at teardown. */
export function clientFor(t: Test, endpoint: string) {
  const client = createEtcdClient(endpoint);
  t.teardown(() => client.close());
  return client;
}

/** A silent logger for in-process store objects (warnings only when BERTH_TEST_LOG is set). */
export const testLog = pino({ level: process.env.BERTH_TEST_LOG ?? 'silent' });

/** etcd + 3 controller processes, stopped at teardown; logs in a temp dir kept on failure. */
export async function clusterFor(t: Test, opts: LocalClusterOptions = {}): Promise<LocalCluster> {
  const dir = tempDir(t, 'berth-cluster-');
  const cluster = await LocalCluster.start({ dir, ...opts });
  t.teardown(async () => {
    if (!t.passing()) {
      for (const c of cluster.controllers) t.comment(`--- ${c.id} ---\n${c.process.recentOutput(30)}`);
    }
    await cluster.stop(true);
  });
  return cluster;
}

/** The docker CLI against the engine `npm test` started (DOCKER_HOST). */
export { docker };

/** Why a Docker test cannot run here (no engine, or `image` missing, built by `builtBy`), or undefined. */
export function dockerProblem(image: string, builtBy: string): string | undefined {
  if (!process.env.DOCKER_HOST) return 'DOCKER_HOST is not set: run the suite with `npm test`, which starts a private dockerd';
  try {
    docker('version', '--format', '{{.Server.Version}}');
  } catch (err) {
    return `the Docker engine at ${process.env.DOCKER_HOST} does not answer: ${(err as Error).message}`;
  }
  try {
    docker('image', 'inspect', image, '--format', '{{.Id}}');
  } catch {
    return `image ${image} is missing: ${builtBy} builds it`;
  }
  return undefined;
}

/** Reads a streamed response (e.g. followed logs) as text, as far as a condition on everything read so far. */
export class TextStream {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  /** Everything read so far. */
  text = '';

  constructor(res: Response) {
    if (res.body === null) throw new Error('the response has no body');
    this.reader = res.body.getReader();
  }

  /** Reads until `done(text)` holds (true) or the stream ends first (false). */
  async until(done: (text: string) => boolean): Promise<boolean> {
    while (!done(this.text)) {
      const { value, done: ended } = await this.reader.read();
      if (ended) return false;
      this.text += this.decoder.decode(value, { stream: true });
    }
    return true;
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }
}

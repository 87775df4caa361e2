import os from 'node:os';
import { execFileSync } from 'node:child_process';

/** One line describing the machine a benchmark or chaos run ran on, for the docs. */
export function machineSummary(): string {
  const cpus = os.cpus();
  let etcd = 'etcd ?';
  try {
    etcd = execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? etcd;
  } catch {
    /* reported as unknown */
  }
  return `${cpus.length} x ${cpus[0]?.model.trim() ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, Node ${process.version}, ${etcd}`;
}

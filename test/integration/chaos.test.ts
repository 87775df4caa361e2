import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { delay, repoRoot, type ChaosReport } from '@berth/devcluster';
import { tempDir } from '../helpers/fixtures.js';

/*
 * The short chaos run (`npm run chaos -- --short`, about two minutes of
 * faults: one of each kind) as a child process, as a user runs it: it must
 * inject every fault, write its Markdown and JSON report, find 0 violations
 * and exit 0, and leave no namespace or process of its own behind.
 */

t.setTimeout(9 * 60_000);

t.test('a short chaos run: every fault injected, a report written, 0 violations', async (t) => {
  const dir = tempDir(t, 'berth-chaos-');
  const netns = process.getuid?.() === 0;
  const child = spawn(process.execPath, [path.join(repoRoot, 'bench/dist/chaos.js'), '--short', '--out', dir, ...(netns ? [] : ['--no-netns'])], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  // SIGINT makes the run remove its namespaces and processes before it exits.
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGINT');
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Its own cleanup first; a run that does not end in 30 s is killed (its leftovers are removed by the next run).
    if ((await Promise.race([exited.then(() => true), delay(30_000).then(() => false)])) === false) child.kill('SIGKILL');
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  const jsonFile = path.join(dir, 'chaos-report.json');
  t.ok(fs.existsSync(path.join(dir, 'chaos-report.md')), 'the Markdown report was written');
  t.ok(fs.existsSync(jsonFile), 'the JSON report was written');
  if (!fs.existsSync(jsonFile)) {
    t.comment(output.slice(-3000));
    return;
  }
  const report = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as ChaosReport;
  t.same(report.harnessErrors, [], 'every fault was injected and measured');
  t.equal(report.faultLog.length, netns ? 8 : 6, `faults: ${report.faultLog.map((f) => f.kind).join(', ')}`);
  t.ok(report.checker.etcdSnapshots > 50 && report.checker.processSamples > 300, 'the checker sampled throughout');
  t.ok(report.load.create.ok > 20, `the load ran (${report.load.create.ok} creates acknowledged)`);
  const broken = Object.entries(report.invariants)
    .filter(([, v]) => v.episodes > 0)
    .map(([k, v]) => `${k}: ${v.episodes} (${v.examples[0]?.detail.split('\n')[0]})`);
  t.equal(report.violations, 0, `0 violations; found:\n${broken.join('\n')}`);
  t.equal(code, report.violations === 0 ? 0 : 1, 'the exit code says whether anything was violated');

  // Nothing of the run is left: its namespaces carry its pid, its processes its marker.
  if (netns) t.notMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), `berthchaos-${child.pid}-`, 'no namespace left');
  const left = fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/environ`, 'latin1').includes(`BERTH_CHAOS_RUN=${child.pid}-`);
      } catch {
        return false;
      }
    });
  t.same(left, [], 'no process of the run left');
});

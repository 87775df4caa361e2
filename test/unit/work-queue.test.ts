import t from 'tap';
import { WorkQueue } from '@berth/store';

/** Resolves on the next macrotask, after every ready microtask ran. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A promise and its resolver, to hold a handler run open until the test lets it end. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

t.test('a key added many times while waiting is handled once', async (t) => {
  const seen: string[] = [];
  const q = new WorkQueue<string>({ handler: async (k) => void seen.push(k) });
  q.pause();
  for (let i = 0; i < 5; i++) q.add('a');
  q.add('b');
  q.resume();
  await tick();
  await q.idle();
  t.same(seen, ['a', 'b']);
});

t.test('a key is never handled by two workers at once; one added while processing runs once more, after', async (t) => {
  const running = new Set<string>();
  let overlaps = 0;
  const gates: Array<ReturnType<typeof gate>> = [];
  const q = new WorkQueue<string>({
    concurrency: 4,
    handler: async (k) => {
      if (running.has(k)) overlaps += 1;
      running.add(k);
      const g = gate();
      gates.push(g);
      await g.promise;
      running.delete(k);
    },
  });
  // 1. first run of "a" starts and blocks
  q.add('a');
  await tick();
  t.equal(gates.length, 1);
  // 2. added three more times while processing: marked dirty, not handed to another worker
  q.add('a');
  q.add('a');
  q.add('a');
  await tick();
  t.equal(gates.length, 1, 'no second worker for the same key');
  t.ok(q.isProcessing('a'));
  // 3. the first run ends: exactly one more run follows
  gates[0]!.open();
  await tick();
  t.equal(gates.length, 2, 're-queued once after the first run');
  gates[1]!.open();
  await tick();
  await q.idle();
  t.equal(gates.length, 2);
  t.equal(overlaps, 0);
  t.equal(q.runs, 2);
});

t.test('concurrency bounds the workers across keys', async (t) => {
  let active = 0;
  let peak = 0;
  let started = 0;
  const gates: Array<ReturnType<typeof gate>> = [];
  const q = new WorkQueue<number>({
    concurrency: 3,
    handler: async () => {
      active += 1;
      started += 1;
      peak = Math.max(peak, active);
      const g = gate();
      gates.push(g);
      await g.promise;
      active -= 1;
    },
  });
  for (let i = 0; i < 10; i++) q.add(i);
  await tick();
  t.equal(active, 3);
  while (started < 10 || active > 0) {
    for (const g of gates.splice(0)) g.open();
    await tick();
  }
  t.equal(peak, 3);
});

t.test('failures retry with per-key exponential backoff, reset on success', async (t) => {
  const delays: number[] = [];
  let fails = 3;
  let succeeded!: () => void;
  const done = new Promise<void>((resolve) => (succeeded = resolve));
  const q = new WorkQueue<string>({
    baseDelayMs: 10,
    maxDelayMs: 25,
    handler: async () => {
      if (fails-- > 0) throw new Error('not yet');
      succeeded();
    },
    onError: (_k, _err, n) => {
      delays.push(q.backoff(n));
      return undefined;
    },
  });
  q.add('k');
  // 1. The fourth run succeeds (after three backoffs of 10-25 ms); a regression fails here instead of hanging.
  //    (The queue's delay timers do not keep the process alive; this deadline does, meanwhile.)
  let deadline: NodeJS.Timeout | undefined;
  await Promise.race([done, new Promise((_, reject) => (deadline = setTimeout(() => reject(new Error('no successful run within 5 s')), 5000)))]);
  clearTimeout(deadline);
  // 2. The queue settles once that run has returned.
  await q.idle();
  t.equal(q.runs, 4);
  t.same(delays, [10, 20, 25], 'doubles, capped');
  t.equal(q.failuresOf('k'), 0, 'success forgets the failures');
});

t.test('onError decides: 0 retries at once, false gives up', async (t) => {
  let runs = 0;
  const q = new WorkQueue<string>({
    handler: async () => {
      runs += 1;
      throw new Error('always');
    },
    onError: (_k, _e, n) => (n < 3 ? 0 : false),
  });
  q.add('x');
  for (let i = 0; i < 20 && q.length > 0; i++) await tick();
  await q.idle();
  t.equal(runs, 3);
  t.equal(q.failuresOf('x'), 0, 'forgotten');
});

t.test('addAfter keeps the earliest delay; add overrides it; forget cancels it', async (t) => {
  const seen: string[] = [];
  const q = new WorkQueue<string>({ handler: async (k) => void seen.push(k) });
  q.addAfter('late', 60_000);
  q.addAfter('late', 120_000); // later than the pending one: ignored
  q.addAfter('soon', 1);
  q.addAfter('gone', 1);
  q.forget('gone');
  await new Promise((r) => setTimeout(r, 20));
  t.same(seen, ['soon']);
  q.add('late');
  await tick();
  t.same(seen, ['soon', 'late']);
  q.shutdown();
  q.add('after-shutdown');
  await tick();
  t.same(seen, ['soon', 'late'], 'nothing runs after shutdown');
});

t.test('resetFailures starts a key\'s back-off over (its runtime came back)', async (t) => {
  const failures: number[] = [];
  const q = new WorkQueue<string>({
    handler: async () => {
      throw new Error('down');
    },
    onError: (_k, _e, n) => {
      failures.push(n);
      return 60_000; // retried only when added again
    },
  });
  for (let i = 0; i < 3; i++) {
    q.add('k');
    await q.idle();
  }
  t.equal(q.failuresOf('k'), 3);
  q.resetFailures('k');
  t.equal(q.failuresOf('k'), 0);
  q.add('k');
  await q.idle();
  t.same(failures, [1, 2, 3, 1], 'the next failure counts as the first');
  q.shutdown();
});

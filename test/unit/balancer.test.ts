import t from 'tap';
import { Balancer, type ServiceEndpoint } from '@berth/controller';

const ep = (id: string): ServiceEndpoint => ({ podId: id, podName: `web-${id}`, nodeId: 'n', address: `127.0.0.1:${1000 + id.length}`, ready: true, current: true });

/** A seeded generator, so the runs are repeatable. */
function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

t.test('says why nothing can be picked', async (t) => {
  const b = new Balancer();
  t.match(b.pick('web', [], []), { reason: 'no pods' });
  t.match(b.pick('web', [ep('a')], []), { reason: 'no ready pods', detail: /1 pod\(s\), none ready/ });
  t.match(b.pick('web', [ep('a')], [ep('a')], new Set(['a'])), { reason: 'all tried' });
  const until = b.failed('a', 1000);
  t.match(b.pick('web', [ep('a')], [ep('a')], undefined, 1500), { reason: 'all ejected', retryAt: until });
  t.match(b.pick('web', [ep('a')], [ep('a')], undefined, until), { endpoint: { podId: 'a' } }, 'back once its ejection ended');
});

t.test('ejection doubles with each failure in a row, up to 30 s, and a success forgets it', async (t) => {
  const b = new Balancer();
  const lengths = [0, 1, 2, 3, 4, 5, 6].map(() => b.failed('a', 0));
  t.same(lengths, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  b.succeeded('a');
  t.equal(b.failed('a', 0), 1000, 'a success resets the count');
});

t.test('power of two choices: the less loaded of two random pods wins, so load stays even', async (t) => {
  const b = new Balancer(lcg(7));
  const pods = ['a', 'b', 'c', 'd'].map(ep);
  const open: Array<() => void> = [];
  const picks = new Map<string, number>();
  // 400 requests that each stay outstanding: least-request keeps the counts within one of each other.
  for (let i = 0; i < 400; i++) {
    const pick = b.pick('web', pods, pods);
    if (!('endpoint' in pick)) throw new Error('no pick');
    picks.set(pick.endpoint.podId, (picks.get(pick.endpoint.podId) ?? 0) + 1);
    open.push(b.begin(pick.endpoint.podId));
  }
  const loads = pods.map((p) => b.inFlight(p.podId));
  t.ok(Math.max(...loads) - Math.min(...loads) <= 3, `outstanding per pod stays even: ${loads.join('/')}`);
  for (const done of open) done();
  t.same(pods.map((p) => b.inFlight(p.podId)), [0, 0, 0, 0], 'finished requests are no longer counted');
  // A pod with many requests outstanding is avoided.
  const hog = b.begin('a');
  for (let i = 0; i < 50; i++) b.begin('a');
  let toA = 0;
  for (let i = 0; i < 300; i++) {
    const pick = b.pick('web', pods, pods);
    if ('endpoint' in pick && pick.endpoint.podId === 'a') toA += 1;
  }
  t.equal(toA, 0, 'the busy pod gets none while the others are idle');
  hog();
});

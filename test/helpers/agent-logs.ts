import type { Test } from 'tap';
import { waitFor } from '@berth/devcluster';
import type { AgentCall } from './agent-api.js';
import { TextStream } from './fixtures.js';

/**
 * Checks an agent's logs API on a pod that prints `tick N` lines: `tail`
 * limits the lines, `follow` delivers output written after it opened, and the
 * agent is fine after the follower goes away. Same contract for every runtime.
 */
export async function checkTickLogs(t: Test, agent: AgentCall, podId: string): Promise<void> {
  const logs = (q = '') => agent(`/v1/pods/${podId}/logs${q}`);
  await waitFor(async () => (await (await logs()).text()).includes('tick 3'), { what: 'some ticks' });
  const res = await logs('?tail=2');
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain/);
  const lines = (await res.text()).split('\n');
  t.equal(lines.length, 3, 'two lines and the final newline');
  t.match(lines[1], /^tick \d+$/);

  const ac = new AbortController();
  const follow = await agent(`/v1/pods/${podId}/logs?tail=1&follow=1`, { signal: ac.signal });
  t.equal(follow.status, 200);
  // The first tick seen, then three more written after the stream opened.
  const stream = new TextStream(follow);
  const followed = await stream.until((text) => {
    const first = Number(/tick (\d+)/.exec(text)?.[1] ?? NaN);
    return !Number.isNaN(first) && text.includes(`tick ${first + 3}\n`);
  });
  t.ok(followed, 'new output arrives while following');
  ac.abort();
  await stream.close();
  t.equal((await agent('/healthz')).status, 200, 'the agent is fine after the follower went away');
}

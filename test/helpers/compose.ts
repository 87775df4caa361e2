import path from 'node:path';
import type { Test } from 'tap';
import { ComposeStack, repoRoot } from '@berth/devcluster';

/** compose.ha.yml on the host network for this test: `down -v` at teardown, logs kept in test-artifacts/ on failure. */
export async function composeFor(t: Test): Promise<ComposeStack> {
  const stack = await ComposeStack.create();
  t.teardown(async () => {
    if (!t.passing()) await stack.saveLogs(path.join(repoRoot, 'test-artifacts', `compose-${stack.project}.log`));
    await stack.destroy();
  });
  return stack;
}

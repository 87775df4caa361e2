// The agent's pure pieces, for tests and tools; the agent itself runs from main.ts.

export { CRASH_RESET_MS, decidePod, restartPending, runningPatch, type DecideLimits, type PhaseWrite, type PodAction, type PodEvent, type PodMemory } from './decide-pod.js';
export { phasePath } from './phase-path.js';

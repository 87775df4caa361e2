// The agent's pure pieces, for tests and tools; the agent itself runs from main.ts.

export { decidePod, nextStatus, type DecideLimits, type PodAction, type PodMemory } from './decide-pod.js';
export { phasePath } from './phase-path.js';
export { Fencer, type FenceSubject, type FenceTarget } from './fence.js';
export { SimulatedRuntime } from './runtime.js';
export { containerOptions } from './docker/containers.js';
export { onlyEnv } from './pod-supervisor.js';
export { parseUidRange, resolveRunAs } from './isolation/users.js';

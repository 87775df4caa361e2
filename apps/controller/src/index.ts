export { Controller } from './controller.js';
export { parseConfig, type ControllerConfig } from './config.js';
export { decideNodeStatus, NodeLifecycle, nodeDeadAt, type NodeTransition } from './nodes/lifecycle.js';
// The API's parts, so it can be built over a real etcd without a controller process (tests).
export { buildServer, type ServerDeps } from './server.js';
export { ClusterState, type NodeView } from './cluster-state.js';
export { LeadershipView, type LeaderRole } from './leadership.js';
export { EtcdHealth } from './etcd-health.js';
export { Metrics } from './metrics.js';
export { LiveFeed } from './dashboard/feed.js';
export { PodService, type PodAction } from './pods/service.js';
export { NodeService } from './nodes/service.js';
export { NodeProvisioner } from './nodes/provisioner.js';
export { boundPodAction, evictedRecord, overcommitVictims, unboundRecord, type BoundPodAction } from './pods/placement.js';
export { PodBinder, RaceLost } from './pods/binder.js';
// The leader's parts and start sequence, so a leader can run in a test process over a real etcd.
export { LeaderLoops, type LeaderLoop, type LeaderPhase } from './leader-loops.js';
export { PodScheduler } from './pods/scheduler.js';
// Services, routing and jobs.
export { planService, ServiceController, type ServicePlan } from './services/controller.js';
export { Discovery, endpointAddress, podReady, type ServiceEndpoint } from './services/discovery.js';
export { ServiceCatalog } from './services/catalog.js';
export { Balancer } from './routing/balancer.js';
export { Router } from './routing/router.js';
export { JobDispatcher } from './jobs/dispatcher.js';
export { JobService } from './jobs/service.js';
export { createAuth, loadAdminToken } from './auth/bootstrap.js';
export { requiredAccess, isMutation, type Access } from './auth/access.js';
export { SESSION_COOKIE, type AuthSettings } from './auth/plugin.js';
export { loopbackOnly, type AuthConfig } from './config.js';
export { installSecurityHeaders, replicaOrigins, dashboardHelmet } from './plugins/security-headers.js';

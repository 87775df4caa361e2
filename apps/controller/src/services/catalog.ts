import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import {
  errors,
  isBerthError,
  templateHash,
  TERMINAL_PHASES,
  type CreateServiceRequest,
  type PatchServiceRequest,
  type PodTemplate,
  type ServiceRecord,
  type ServiceView,
} from '@berth/core';
import { Repository, type EventRecorder } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';
import type { Router } from '../routing/router.js';
import type { Discovery } from './discovery.js';

/** How often a write is decided again after losing a compare-and-swap. */
const MAX_ATTEMPTS = 10;

/**
 * User writes of services (`/berth/services/<name>`), from any replica, by
 * compare-and-swap; and the API's view of a service, with its endpoints as
 * this replica routes to them. The pods are the leader's service
 * controller's business: a write here only changes what it converges to.
 */
export class ServiceCatalog {
  private readonly repo: Repository<ServiceRecord>;

  constructor(
    client: Etcd3,
    private readonly state: ClusterState,
    private readonly discovery: Discovery,
    private readonly router: Router,
    private readonly events: EventRecorder,
    private readonly log: Logger,
  ) {
    this.repo = new Repository<ServiceRecord>(client, 'services', 'service');
  }

  async create(req: CreateServiceRequest): Promise<ServiceView> {
    checkTemplate(req.template, req.port, 'body');
    const now = new Date().toISOString();
    const record: ServiceRecord = {
      name: req.name,
      replicas: req.replicas,
      template: req.template,
      ...(req.port === undefined ? {} : { port: req.port }),
      templateHash: templateHash(req.template),
      createdAt: now,
      updatedAt: now,
    };
    let revision: number;
    try {
      revision = await this.repo.create(req.name, record);
    } catch (err) {
      if (isBerthError(err, 'CONFLICT')) throw errors.conflict(`a service named ${JSON.stringify(req.name)} already exists`, { field: 'body/name' });
      throw err;
    }
    this.audit(req.name, 'ServiceCreated', `service ${req.name} created with ${req.replicas} replica(s)`);
    await this.state.services.waitForRevision(revision);
    return this.view(record);
  }

  /** Changes the replica count, the template (a rollout, one pod at a time) or the port. */
  async patch(name: string, req: PatchServiceRequest): Promise<ServiceView> {
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      const cur = this.state.service(name);
      const template = req.template ?? cur.value.template;
      const port = req.port ?? cur.value.port;
      checkTemplate(template, port, 'body');
      const next: ServiceRecord = {
        ...cur.value,
        replicas: req.replicas ?? cur.value.replicas,
        template,
        ...(port === undefined ? {} : { port }),
        templateHash: templateHash(template),
        updatedAt: new Date().toISOString(),
      };
      try {
        const revision = await this.repo.update(name, next, cur.modRevision);
        const what = [req.replicas !== undefined && `replicas ${cur.value.replicas} -> ${next.replicas}`, next.templateHash !== cur.value.templateHash && 'new template (rolling)', req.port !== undefined && `port ${port}`].filter(Boolean).join(', ');
        this.audit(name, 'ServiceUpdated', `service ${name}: ${what || 'no change'}`);
        await this.state.services.waitForRevision(revision);
        return this.view(next);
      } catch (err) {
        if (!(await this.caughtUp(name, err))) throw err;
      }
    }
    throw errors.conflict(`service ${name} is changing too fast; try again`);
  }

  /** Deletes the service; the leader's service controller then removes its pods. */
  async remove(name: string): Promise<ServiceView> {
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      const cur = this.state.service(name);
      try {
        const view = this.view(cur.value);
        const revision = await this.repo.delete(name, cur.modRevision);
        this.audit(name, 'ServiceDeleted', `service ${name} deleted; its ${view.status.currentReplicas} pod(s) are being removed`);
        await this.state.services.waitForRevision(revision);
        return view;
      } catch (err) {
        if (!(await this.caughtUp(name, err))) throw err;
      }
    }
    throw errors.conflict(`service ${name} is changing too fast; try again`);
  }

  list(): ServiceView[] {
    return this.state.services.list().map((s) => this.view(s.value));
  }

  get(name: string): ServiceView {
    return this.view(this.state.service(name).value);
  }

  /** A service with what this replica sees of its pods. */
  view(service: ServiceRecord): ServiceView {
    const { all } = this.discovery.of(service.name);
    const live = this.state.podsOf(service.name).filter((p) => p.value.deletionRequested === undefined && !TERMINAL_PHASES.has(p.value.status.phase));
    const now = Date.now();
    return {
      ...service,
      status: {
        currentReplicas: live.length,
        readyReplicas: all.filter((e) => e.ready).length,
        updatedReplicas: live.filter((p) => p.value.templateHash === service.templateHash).length,
        endpoints: all.map((e) => {
          const ejected = this.router.balancer.ejectedUntil(e.podId, now);
          return {
            podId: e.podId,
            podName: e.podName,
            nodeId: e.nodeId,
            address: e.address,
            ready: e.ready,
            inFlight: this.router.balancer.inFlight(e.podId),
            ...(ejected === undefined ? {} : { ejectedUntil: new Date(ejected).toISOString() }),
          };
        }),
      },
    };
  }

  /** After a lost compare-and-swap, waits for the cache to hold what won; false when `err` is something else. */
  private async caughtUp(name: string, err: unknown): Promise<boolean> {
    if (!isBerthError(err, 'CONFLICT')) return false;
    const fresh = await this.repo.get(name);
    if (fresh === undefined) throw errors.notFound('service', name);
    return this.state.services.waitForRevision(fresh.modRevision);
  }

  private audit(name: string, reason: string, message: string): void {
    void this.events.record({ type: 'Normal', reason, message, involved: { kind: 'service', id: name } }).catch((err: unknown) => this.log.warn({ err, service: name }, 'could not record event'));
  }
}

/** A template must say what to run and give the port requests go to. */
function checkTemplate(template: PodTemplate, port: number | undefined, at: string): void {
  if (template.image === undefined && template.command === undefined) {
    throw errors.validation(`${at}/template/command: give a command (process runtime) or an image (docker runtime)`, { field: `${at}/template/command` });
  }
  const ports = template.ports ?? [];
  if (ports.length === 0) throw errors.validation(`${at}/template/ports: a service routes requests to a port; give at least one`, { field: `${at}/template/ports` });
  if (port !== undefined && !ports.includes(port)) {
    throw errors.validation(`${at}/port: ${port} is not one of the template's ports (${ports.join(', ')})`, { field: `${at}/port` });
  }
}


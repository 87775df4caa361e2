import { timingSafeEqual } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { errors, isBerthError, newTokenSecret, tokenHash, type CreatedToken, type CreateTokenRequest, type Role, type TokenRecord, type TokenView } from '@berth/core';
import { Repository, type EventRecorder } from '@berth/store';
import type { ClusterState } from '../cluster-state.js';

/** Who a request is: a token's name and role (and the hash a session cookie names it by). */
export interface Principal {
  name: string;
  role: Role;
  hash: string;
}

/** The bootstrap admin token's name: reserved, so no stored token can pose as it. */
export const BOOTSTRAP_TOKEN_NAME = 'admin';

/** Longer presented secrets are refused without hashing them. */
const MAX_SECRET_LENGTH = 200;

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * API tokens: the bootstrap admin token (from a file, held in memory by
 * every replica) and the tokens in etcd (`/berth/tokens/<name>`, read
 * from the watch cache, so a revocation reaches every replica with its
 * watch event). A presented secret is hashed and looked up by hash; the
 * final comparison is constant-time.
 */
export class TokenService {
  private readonly repo: Repository<TokenRecord>;

  constructor(
    client: Etcd3,
    private readonly state: ClusterState,
    private readonly events: EventRecorder,
    /** sha-256 of the bootstrap admin secret; undefined when auth is off. */
    private readonly bootstrapHash: string | undefined,
    private readonly log: Logger,
  ) {
    this.repo = new Repository<TokenRecord>(client, 'tokens', 'token');
  }

  /** The principal a bearer secret stands for, or undefined. */
  resolve(secret: string): Principal | undefined {
    if (secret.length === 0 || secret.length > MAX_SECRET_LENGTH) return undefined;
    return this.resolveHash(tokenHash(secret));
  }

  /** The principal whose secret hashes to `hash` (what a session cookie holds), or undefined once revoked. */
  resolveHash(hash: string): Principal | undefined {
    if (this.bootstrapHash !== undefined && sameHash(hash, this.bootstrapHash)) return { name: BOOTSTRAP_TOKEN_NAME, role: 'admin', hash };
    const record = this.state.tokenByHash(hash);
    if (record === undefined || !sameHash(record.hash, hash)) return undefined;
    return { name: record.name, role: record.role, hash };
  }

  list(): TokenView[] {
    const items = this.state.tokens.list().map((t) => view(t.value));
    if (this.bootstrapHash !== undefined) items.unshift({ name: BOOTSTRAP_TOKEN_NAME, role: 'admin', createdAt: new Date(0).toISOString(), createdBy: '--admin-token-file' });
    return items.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Creates a token and answers its secret, once; etcd keeps only the hash. */
  async create(req: CreateTokenRequest, by: string): Promise<CreatedToken> {
    if (req.name === BOOTSTRAP_TOKEN_NAME) throw errors.conflict(`the token name ${JSON.stringify(BOOTSTRAP_TOKEN_NAME)} is reserved for the bootstrap admin token`, { field: 'body/name' });
    const secret = newTokenSecret();
    const record: TokenRecord = { name: req.name, role: req.role, hash: tokenHash(secret), createdAt: new Date().toISOString(), createdBy: by };
    let revision: number;
    try {
      revision = await this.repo.create(req.name, record);
    } catch (err) {
      if (isBerthError(err, 'CONFLICT')) throw errors.conflict(`a token named ${JSON.stringify(req.name)} already exists`, { field: 'body/name' });
      throw err;
    }
    this.event(req.name, 'TokenCreated', `token ${req.name} (${req.role}) created by ${by}`);
    // Read-your-writes: the caller may use the token on this replica at once.
    await this.state.tokens.waitForRevision(revision);
    return { ...view(record), token: secret };
  }

  /** Revokes a token: every replica refuses it once its watch cache sees the delete. */
  async remove(name: string, by: string): Promise<TokenView> {
    if (name === BOOTSTRAP_TOKEN_NAME && this.bootstrapHash !== undefined) {
      throw errors.conflict('the bootstrap admin token lives in --admin-token-file: replace the file (and restart the replicas) to change it');
    }
    const cur = this.state.tokens.get(this.repo.key(name));
    if (cur === undefined) throw errors.notFound('token', name);
    const revision = await this.repo.delete(name, cur.modRevision);
    this.event(name, 'TokenRevoked', `token ${name} revoked by ${by}`);
    await this.state.tokens.waitForRevision(revision);
    return view(cur.value);
  }

  private event(name: string, reason: string, message: string): void {
    void this.events.record({ type: 'Normal', reason, message, involved: { kind: 'token', id: name } }).catch((err: unknown) => this.log.warn({ err, token: name }, 'could not record event'));
  }
}

function view(t: TokenRecord): TokenView {
  return { name: t.name, role: t.role, createdAt: t.createdAt, createdBy: t.createdBy };
}

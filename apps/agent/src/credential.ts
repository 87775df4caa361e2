import crypto from 'node:crypto';

/**
 * The node credential: a random secret this agent process makes at start,
 * writes where only controllers can read it (`/berth/nodecreds/<nodeId>`),
 * and requires as `Authorization: Bearer <secret>` on its API. A restart makes
 * a new one, so a secret leaked from an old process is worthless.
 */
export class NodeCredential {
  /** 256 random bits, URL-safe. */
  readonly secret = crypto.randomBytes(32).toString('base64url');
  private readonly digest = sha256(this.secret);

  /** True when the header carries this secret; compared in constant time (digests have equal length whatever was sent). */
  accepts(authorization: string | undefined): boolean {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (m === null) return false;
    return crypto.timingSafeEqual(sha256(m[1]!), this.digest);
  }
}

function sha256(s: string): Buffer {
  return crypto.createHash('sha256').update(s).digest();
}

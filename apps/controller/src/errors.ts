import type { FastifyInstance } from 'fastify';
import { installErrorHandling as installShared } from '@berth/http';
import { toBerthError } from '@berth/store';

/**
 * The shared error handler of `@berth/http`, told what only the controller
 * knows: an etcd call that found no etcd is 503 ETCD_UNAVAILABLE, worded by
 * `etcdProblem` (the health probe's account, when it has one); a write etcd
 * refused as too large is 413 PAYLOAD_TOO_LARGE.
 */
export function installErrorHandling(app: FastifyInstance, etcdProblem: () => string | undefined = () => undefined): void {
  installShared(app, {
    etcdProblem,
    mapError: (err) => {
      // toBerthError calls every other error "etcd request failed": those stay unexpected (500, text only in the log).
      const mapped = toBerthError(err);
      return mapped.code === 'ETCD_UNAVAILABLE' || mapped.code === 'PAYLOAD_TOO_LARGE' ? mapped : undefined;
    },
  });
}

import type { FastifyInstance } from 'fastify';
import { installErrorHandling as installShared, installJsonBodyParser } from '@berth/http';
import { toBerthError } from '@berth/store';

/**
 * The shared error handler of `@berth/http`, told what only the controller
 * knows: an etcd call that found no etcd is 503 ETCD_UNAVAILABLE, worded by
 * `etcdProblem` (the health probe's account, when it has one); a write etcd
 * refused as too large is 413 PAYLOAD_TOO_LARGE. JSON bodies nested deeper
 * than MAX_JSON_DEPTH are refused (400) before anything walks them.
 */
export function installErrorHandling(app: FastifyInstance, etcdProblem: () => string | undefined = () => undefined): void {
  installJsonBodyParser(app);
  installShared(app, {
    etcdProblem,
    mapError: (err) => {
      // toBerthError calls every other error "etcd request failed": those stay unexpected (500, text only in the log).
      const mapped = toBerthError(err);
      return mapped.code === 'ETCD_UNAVAILABLE' || mapped.code === 'PAYLOAD_TOO_LARGE' ? mapped : undefined;
    },
  });
}

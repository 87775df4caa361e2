import net from 'node:net';

/**
 * A TCP port free on every interface a moment ago (bind port 0 on all of
 * them, read it, close): a pod's host port, which the pod binds right after,
 * on every interface too, since other hosts reach it at the node's address.
 * The agent keeps its own copy rather than import the test cluster's
 * (`@berth/devcluster`), which a production agent must not depend on.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

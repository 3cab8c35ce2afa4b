import { createServer, type AddressInfo } from 'node:net';

/**
 * A TCP port the OS says is free on `host` now. It is closed again before the caller binds it,
 * so another process could take it in between: for start-up only (a :0 a primary pins for its
 * workers, a private redis-server), never for a port that must be ours.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

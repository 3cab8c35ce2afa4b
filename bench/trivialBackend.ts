// A trivial keep-alive HTTP backend for benchmarks: answers every POST with its own body
// (the /rpc echo) or 204. Run as a child process so it can be pinned to its own core.
import { createServer } from 'node:http';
import { onParentGone } from '../lib/parentWatch.js';

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.url?.startsWith('/rpc/')) {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    } else {
      res.writeHead(204);
      res.end();
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}` })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
// Started by gate bench with an IPC channel: end with it, SIGKILL of the bench included.
onParentGone(() => process.exit(0));

/**
 * A collector stand-in for benchmarks of `gate serve --otlp`: accepts OTLP/HTTP JSON on
 * POST /v1/traces, counts the spans, answers 200 `{}`. Prints `{"url": …}` once listening and
 * `{"spans": N, "posts": M}` on SIGTERM. Loopback only; ends with its parent.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

let spans = 0;
let posts = 0;
const server = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (c: Buffer) => parts.push(c));
  req.on('end', () => {
    posts++;
    try {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[] };
      for (const r of body.resourceSpans ?? []) for (const s of r.scopeSpans ?? []) spans += s.spans?.length ?? 0;
    } catch {
      // not JSON: counted as a post, no spans
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
const stop = (): void => {
  process.stdout.write(`${JSON.stringify({ spans, posts })}\n`);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);

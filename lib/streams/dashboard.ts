// The live dashboard on the API listener: the page and its assets (served without a key: they
// hold no figures), and the figures themselves as Server-Sent Events under /v1/, where the API
// key guards them like every other /v1/* call.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { Subject, fromEvent, map, merge, shareReplay, takeUntil, type Observable } from 'rxjs';
import { DASHBOARD_CSS, DASHBOARD_HTML } from '../dashboard/page.js';
import type { StatsSample } from './stats.js';

/** Live streams open at once, all dashboards together: past it, 503. */
export const MAX_STATS_STREAMS = 64;
/**
 * Bytes a stream may have waiting in its socket's write buffer. A sample that finds more is
 * skipped for that stream (the next one carries the newest figures anyway): a dashboard that
 * reads slowly never makes the gate hold more than this, plus one sample, for it.
 */
export const STATS_STREAM_MAX_BUFFERED = 64 * 1024;

export interface DashboardConfig {
  /** The shared samples every stream sends (lib/streams/stats.ts). */
  stats$: Observable<StatsSample>;
  /** Default MAX_STATS_STREAMS. */
  maxStreams?: number;
}

/** Headers of every dashboard asset: only its own origin's scripts and connections, never framed, no referrer. */
const ASSET_HEADERS = {
  'cache-control': 'no-cache',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  // uPlot sets element styles from script; nothing else inline.
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

const require = createRequire(import.meta.url);

/** Files served as they are: uPlot from its npm package (wherever npm put it), the page's script from tsc's output beside this file. */
const FILES: Record<string, { path: () => string; type: string }> = {
  'app.js': { path: () => new URL('../dashboard/app.js', import.meta.url).pathname, type: 'text/javascript; charset=utf-8' },
  'uPlot.iife.min.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/** One SSE event: the sample as JSON on one `data:` line (JSON has no raw newlines). */
const sseEvent = (s: StatsSample): string => `data: ${JSON.stringify(s)}\n\n`;

/**
 * Registers `GET /dashboard` (the page), `GET /dashboard/<asset>`, and `GET /v1/stats/stream`:
 * `text/event-stream`, one event a second from the shared `stats$`, serialised once for all
 * streams. Each stream ends when its client goes away (unsubscribed) or when the API closes
 * (so fastify's close never waits on one); at most `maxStreams` at once, 503 past them.
 */
export function dashboardRoutes(app: FastifyInstance, { stats$, maxStreams = MAX_STATS_STREAMS }: DashboardConfig): void {
  const events$ = stats$.pipe(map(sseEvent), shareReplay({ bufferSize: 1, refCount: true }));
  // Adapter from fastify's close hook to the streams: fires once, ending every open stream.
  const closing = new Subject<void>();
  // Set with `closing`: a stream asked for after it (a request pipelined on a connection that was busy
  // when the API began to close) is refused, else nothing would ever end it and the close would wait forever.
  let closed = false;
  let open = 0; // streams open now, ≤ maxStreams
  const files = new Map<string, Promise<Buffer>>(); // assets read once, on first request

  app.addHook('preClose', (done) => {
    closed = true;
    closing.next();
    closing.complete();
    done();
  });

  app.get('/dashboard', (_req, reply) => reply.headers(ASSET_HEADERS).type('text/html; charset=utf-8').send(DASHBOARD_HTML));
  app.get('/dashboard/', (_req, reply) => reply.redirect('/dashboard'));
  app.get('/dashboard/dashboard.css', (_req, reply) => reply.headers(ASSET_HEADERS).type('text/css; charset=utf-8').send(DASHBOARD_CSS));
  app.get<{ Params: { file: string } }>('/dashboard/:file', async (req, reply) => {
    const f = Object.hasOwn(FILES, req.params.file) ? FILES[req.params.file] : undefined;
    if (!f) return reply.code(404).send({ error: 'not_found', message: `no dashboard file ${req.params.file}` });
    let body = files.get(req.params.file);
    if (!body) files.set(req.params.file, (body = readFile(f.path())));
    return reply.headers(ASSET_HEADERS).type(f.type).send(await body);
  });

  app.get('/v1/stats/stream', (_req, reply) => {
    // Gone while the key was checked: its close event has fired already, so nothing would end the stream.
    if (reply.raw.destroyed) {
      reply.hijack();
      return reply;
    }
    if (closed) return reply.code(503).header('connection', 'close').send({ error: 'shutting_down', message: 'the gate is shutting down' });
    if (open >= maxStreams)
      return reply.code(503).send({ error: 'too_many_streams', message: `${maxStreams} stats streams are open already (each dashboard holds one)` });
    open++;
    reply.hijack();
    const res: ServerResponse = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      // The stream is the connection's last response: when the gate ends it, the socket closes too,
      // instead of idling as keep-alive while fastify's close waits for it.
      connection: 'close',
    });
    res.write(': gate stats\n\n'); // headers out now, so the client's fetch() resolves before the first sample
    const done = (): void => {
      open--;
      if (!res.writableEnded) res.end();
    };
    events$.pipe(takeUntil(merge(fromEvent(res, 'close'), closing))).subscribe({
      next: (chunk) => {
        // Bounded: skip the sample while the socket still holds more than the bound unsent.
        if (res.writableLength > STATS_STREAM_MAX_BUFFERED || res.destroyed) return;
        res.write(chunk);
      },
      complete: done,
      error: done, // stats$ catches its readings' errors; a stream that errors anyway just ends
    });
    return reply;
  });
}

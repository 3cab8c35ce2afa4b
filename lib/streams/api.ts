import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Observable } from 'rxjs';
import type { HostPort } from '../config.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { Gate } from '../gate.js';
import type { ApiSpanName, ApiTrace } from '../requestTracer.js';
import type { PushResult } from '../session/sessions.js';
import { dashboardRoutes, MAX_STATS_STREAMS } from './dashboard.js';
import { formatAddress } from './listeners.js';
import type { ReloadResult, ReloadTrigger } from './reload.js';
import { readGate, stats$, type StatsSample } from './stats.js';

/** Largest API request body (§4): past it, 413. */
export const API_BODY_LIMIT = 1024 * 1024;
/** Most messages in one /v1/push/batch, and player ids in one /v1/broadcast. */
export const API_BATCH_MAX = 10_000;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

const badRequest = (message: string): ApiError => new ApiError(400, 'bad_request', message);

interface PushInput {
  playerId: string;
  route: number;
  body: Buffer;
  /** The backend's own id: a push POSTed again with it is stored once. */
  id: string | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseRoute(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) throw badRequest(`${where}route must be an integer 0..65535`);
  return v;
}

function parseBody(o: Record<string, unknown>, where: string, maxFrame: number): Buffer {
  const hasData = 'data' in o;
  const has64 = 'body64' in o;
  if (hasData === has64) throw badRequest(`${where}give exactly one of data or body64`);
  let body: Buffer;
  if (hasData) body = Buffer.from(JSON.stringify(o.data));
  else {
    if (typeof o.body64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(o.body64) || o.body64.length % 4 === 1)
      throw badRequest(`${where}body64 must be a base64 string`);
    body = Buffer.from(o.body64, 'base64');
  }
  if (body.length > maxFrame)
    throw new ApiError(400, 'frame_too_large', `${where}body of ${body.length} bytes is over the gate's --max-frame (${maxFrame})`);
  return body;
}

function parsePlayerId(v: unknown, where: string): string {
  if (typeof v !== 'string' || v === '' || v.length > 128) throw badRequest(`${where}playerId must be a non-empty string (at most 128 characters)`);
  return v;
}

function parsePushId(v: unknown, where: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '' || v.length > 128) throw badRequest(`${where}id must be a non-empty string (at most 128 characters)`);
  return v;
}

function parsePush(v: unknown, where: string, maxFrame: number): PushInput {
  if (!isObject(v)) throw badRequest(`${where}must be a JSON object`);
  return { playerId: parsePlayerId(v.playerId, where), route: parseRoute(v.route, where), body: parseBody(v, where, maxFrame), id: parsePushId(v.id, where) };
}

/** What the API needs beyond the gate: the reload of `gate serve`, and what tests change. */
export interface ApiOptions {
  /** POST /v1/admin/reload: reads the options again (lib/serve.ts); without it the call answers 400. */
  reload?: (trigger: ReloadTrigger) => ReloadResult;
  /** The dashboard's samples; default: this gate read every second (lib/streams/stats.ts). */
  stats$?: Observable<StatsSample>;
  /** Live dashboard streams open at once; default MAX_STATS_STREAMS. */
  maxStatsStreams?: number;
}

/** Deliveries counted from push results: sent now, buffered for a detached session, no such player. */
class Deliveries {
  sent = 0;
  buffered = 0;
  missing = 0;
  readonly add = (r: PushResult | null): void => {
    if (!r) this.missing++;
    else if (r.status === 'sent') this.sent++;
    else this.buffered++;
  };
  static of(results: readonly (PushResult | null)[]): Deliveries {
    const d = new Deliveries();
    for (const r of results) d.add(r);
    return d;
  }
}

export interface ApiServer {
  readonly address: string;
  close(): Promise<void>;
}

/**
 * The push and admin API (CONTRACT §4) on fastify: bearer key on /v1/*, 400 with
 * `{error, message}` for malformed input, 413 past 1 MiB. Handlers are thin: they validate
 * and call the gate, which owns the sessions.
 */
export async function startApi(gate: Gate, at: HostPort, logger: Logger, opts: ApiOptions = {}): Promise<ApiServer> {
  const reload = opts.reload ?? ((): ReloadResult => ({ ok: false, option: 'config', source: null, message: 'this API was started without a reload source' }));
  const app: FastifyInstance = Fastify({ bodyLimit: API_BODY_LIMIT, logger: false, keepAliveTimeout: 65_000, return503OnClosing: false });
  const maxFrame = gate.cfg.maxFrame;
  const authorized = (header: string | undefined): boolean => {
    const got = Buffer.from(header ?? '');
    let ok = false;
    // The keys accepted now: --api-key, and after a reload that changed it the previous one for --key-grace.
    for (const want of gate.apiKeys.keys()) {
      if (want === null) return true; // no key set (a loopback --api)
      // No early exit on a mismatch to time the key by.
      if (got.length === want.length && timingSafeEqual(got, want)) ok = true;
    }
    return ok;
  };

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    // Decide by the route that matched, not the raw URL: the router percent-decodes the path,
    // so `/%761/push` reaches the /v1/push handler while its raw URL does not start with /v1/.
    const route = req.routeOptions.url ?? req.url;
    if (route.startsWith('/v1/') && !authorized(req.headers.authorization)) {
      await reply.code(401).send({ error: 'unauthorized', message: 'missing or wrong Authorization: Bearer <api-key>' });
    }
  });
  // Once the API closes (the gate has drained by then), an answer still being made closes its
  // connection: node keeps a busy keep-alive connection open for --keepAliveTimeout after close(),
  // and a dashboard would ask again on it, so the close would wait on the client.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  // JSON whatever the declared type (§4 "JSON in"): `curl -d '{…}'` sends form-urlencoded, fetch
  // with a string body text/plain. Same parser (and prototype-poisoning checks) as application/json.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send({ error: err.error, message: err.message });
    // Never a 200 for a push Redis did not store: the backend retries (with the same push id).
    if (isGatewayError(err, 'GW_ERR_CLUSTER_UNAVAILABLE')) return reply.code(503).send({ error: 'CLUSTER_UNAVAILABLE', message: err.message });
    const status = err.statusCode ?? 500;
    if (status === 413) return reply.code(413).send({ error: 'body_too_large', message: `request body over ${API_BODY_LIMIT} bytes` });
    if (status >= 400 && status < 500) return reply.code(status).send({ error: 'bad_request', message: err.message });
    logger.error({ err: err.message, code: err.code }, 'push API handler failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` }));

  const body = (req: FastifyRequest): Record<string, unknown> => {
    if (!isObject(req.body)) throw badRequest('body must be a JSON object');
    return req.body;
  };

  const tracer = gate.tracer;
  /**
   * A push API handler, inside its span when tracing (--otlp) is on: the span's parent is the
   * caller's `traceparent` header if it sent one, and a handler that throws (a 4xx or 5xx answer)
   * ends it as an error. With tracing off the handler runs as it is, with `span` null.
   */
  const withSpan = (name: ApiSpanName, handler: (req: FastifyRequest, reply: FastifyReply, span: ApiTrace | null) => Promise<unknown>) => {
    if (tracer === null) return (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => handler(req, reply, null);
    return async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
      const tp = req.headers.traceparent;
      const span = tracer.api(name, typeof tp === 'string' ? tp : undefined);
      let r: unknown;
      try {
        r = await handler(req, reply, span);
      } catch (e) {
        span.end(e);
        throw e;
      }
      span.end();
      return r;
    };
  };

  app.post(
    '/v1/push',
    withSpan('gate.push', async (req, reply, span) => {
      const p = parsePush(body(req), '', maxFrame);
      const r = await gate.sessions.push(p.playerId, p.route, p.body, p.id);
      if (span) {
        span.set('gate.player_id', p.playerId);
        span.set('gate.route', p.route);
        const d = Deliveries.of([r]);
        span.deliveries(d.sent, d.buffered, d.missing);
      }
      if (!r) return reply.code(404).send({ error: 'player_not_found', message: `no session for player ${p.playerId}` });
      return r;
    }),
  );

  app.post(
    '/v1/push/batch',
    withSpan('gate.push.batch', async (req, _reply, span) => {
      const b = body(req);
      if (!Array.isArray(b.messages)) throw badRequest('messages must be an array');
      if (b.messages.length > API_BATCH_MAX) throw badRequest(`at most ${API_BATCH_MAX} messages per batch`);
      // Validate all first: a malformed batch delivers nothing, so a retry cannot duplicate.
      const pushes = b.messages.map((m, i) => parsePush(m, `messages[${i}]: `, maxFrame));
      // In cluster mode the pushes of one batch go to Redis in one pipeline (auto-pipelining), in order.
      const results = await gate.sessions.pushMany(pushes);
      if (span) {
        span.set('gate.messages', pushes.length);
        const d = Deliveries.of(results);
        span.deliveries(d.sent, d.buffered, d.missing);
      }
      return { results: results.map((r) => r ?? { error: 'player_not_found' }) };
    }),
  );

  app.post(
    '/v1/broadcast',
    withSpan('gate.broadcast', async (req, _reply, span) => {
      const b = body(req);
      const route = parseRoute(b.route, '');
      const payload = parseBody(b, '', maxFrame);
      const d = new Deliveries();
      if (b.playerIds === undefined) {
        await gate.sessions.broadcast(route, payload, d.add);
      } else {
        if (!Array.isArray(b.playerIds)) throw badRequest('playerIds must be an array of strings');
        if (b.playerIds.length > API_BATCH_MAX) throw badRequest(`at most ${API_BATCH_MAX} playerIds per broadcast`);
        const ids = b.playerIds.map((id, i) => parsePlayerId(id, `playerIds[${i}]: `));
        for (const r of await gate.sessions.pushMany(ids.map((playerId) => ({ playerId, route, body: payload })))) d.add(r);
      }
      if (span) {
        span.set('gate.route', route);
        span.deliveries(d.sent, d.buffered, d.missing);
      }
      return { sent: d.sent, buffered: d.buffered, missing: d.missing };
    }),
  );

  app.post(
    '/v1/kick',
    withSpan('gate.kick', async (req, reply, span) => {
      const b = body(req);
      const playerId = parsePlayerId(b.playerId, '');
      if (b.reason !== undefined && typeof b.reason !== 'string') throw badRequest('reason must be a string');
      const kicked = await gate.sessions.kick(playerId, b.reason);
      if (span) {
        span.set('gate.player_id', playerId);
        span.set('gate.kicked', kicked);
        span.deliveries(kicked ? 1 : 0, 0, kicked ? 0 : 1);
      }
      if (!kicked) return reply.code(404).send({ error: 'player_not_found', message: `no session for player ${playerId}` });
      return { kicked: true };
    }),
  );

  app.get<{ Params: { playerId: string } }>('/v1/players/:playerId', async (req, reply) => {
    const info = await gate.sessions.findPlayer(req.params.playerId);
    if (!info) return reply.code(404).send({ error: 'player_not_found', message: `no session for player ${req.params.playerId}` });
    return info;
  });

  // The body is ignored: a reload reads the same sources SIGHUP does (flags, environment, --config file).
  app.post('/v1/admin/reload', async (_req, reply) => {
    const r = reload('api');
    if (r.ok) return { reloaded: true, applied: r.applied, restartRequired: r.restartRequired };
    return reply.code(400).send({ error: 'bad_config', message: r.message, option: r.option, source: r.source });
  });

  app.get('/v1/stats', async () => gate.statsAll());
  // The live dashboard: its page without a key, its figures (/v1/stats/stream) behind the hook above.
  dashboardRoutes(app, {
    stats$: opts.stats$ ?? stats$(readGate(gate), { onError: (e) => logger.warn({ err: (e as Error).message }, 'dashboard stats reading failed') }),
    maxStreams: opts.maxStatsStreams ?? MAX_STATS_STREAMS,
  });
  app.get('/v1/gates', async () => ({ gates: await gate.sessions.gates() }));
  app.get('/healthz', () => ({ ok: true }));
  // Not ready while starting, shutting down, or (cluster mode) while Redis is unreachable.
  app.get('/readyz', (_req, reply) => (gate.ready && gate.sessions.up ? { ready: true } : reply.code(503).send({ ready: false })));
  app.get('/metrics', async (_req, reply) => {
    // At the open-file limit the process collectors throw (EMFILE): the gate's own metrics still answer.
    const text = await gate.metrics.text((e) => logger.warn({ err: (e as Error).message }, 'process metrics unavailable'));
    return reply.type(gate.metrics.registry.contentType).send(text);
  });

  try {
    await app.listen({ host: at.host, port: at.port });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new GatewayError(
      'GW_ERR_LISTEN',
      code === 'EADDRINUSE' ? `${at.host}:${at.port} is already in use` : `cannot listen on ${at.host}:${at.port}: ${code ?? (e as Error).message}`,
    );
  }
  return { address: formatAddress(app.server.address()), close: () => app.close() };
}

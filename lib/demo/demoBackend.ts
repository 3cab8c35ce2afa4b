/**
 * The embedded demo backend: CONTRACT §3 served by plain node:http around the pure DemoGame.
 * `gate serve` runs it when no `--upstream` is given; `gate demo-backend` runs it alone.
 * Pushes go back to the gate holding each player through its push API (§4), one ordered
 * batch stream per gate.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Command, CommanderError } from 'commander';
import { pino, type Logger } from 'pino';
import { Agent, request } from 'undici';
import { DemoGame, type Push, type Reply } from './game.js';

export interface DemoBackendOptions {
  /** Default 127.0.0.1. */ host?: string;
  /** Default 0 (any free port; read the real one from `url`). */ port?: number;
  /** Bearer key for the gates' push API, when they require one; a function is asked at each push (a reload may roll the key). */ apiKey?: string | null | (() => string | null);
  /** Push failures and handler bugs are logged here; silent without it. */ logger?: pino.Logger;
}

export interface DemoBackend {
  /** Base URL to give the gate as `--upstream`, e.g. `http://127.0.0.1:7100`. */
  readonly url: string;
  /** Stops listening, drops open connections and pending pushes. */
  close(): Promise<void>;
}

/** Largest request body accepted, bytes (CONTRACT §4 uses the same bound). */
export const MAX_BODY = 1024 * 1024;
/** Pushes waiting for one gate; past it the oldest are dropped (and logged). */
export const MAX_QUEUED_PUSHES = 10_000;
/** Messages per POST /v1/push/batch. */
export const MAX_BATCH = 500;
/** One push POST gives up after this, so a stuck gate cannot stall its queue for long. */
export const PUSH_TIMEOUT_MS = 5_000;

const TOKEN_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const RPC_RE = /^\/rpc\/(\d{1,5})$/;
const GATE_RE = /^\/gates\/([^/]+)$/;

/** A request the backend refuses; the handler turns it into `{error, message}` with `status`. */
class DemoHttpError extends Error {
  override readonly name = 'DemoHttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** One push as the gate's batch API takes it. */
interface PushMessage {
  readonly playerId: string;
  readonly route: number;
  readonly data: unknown;
}

/**
 * Sends one gate its pushes in order: one batch in flight at a time, later pushes coalesce
 * into the next batch. Parallel POSTs could overtake each other and reorder a chat.
 */
class GatePusher {
  private queue: PushMessage[] = []; // waiting pushes; ≤ MAX_QUEUED_PUSHES, oldest dropped first
  private sending = false; // a batch is in flight
  private stopped = false; // gate deregistered or backend closed: drop everything

  constructor(
    readonly gateId: string,
    readonly api: string,
    private readonly url: string,
    private readonly agent: Agent,
    private readonly apiKey: () => string | null,
    private readonly log: Logger | undefined,
  ) {}

  enqueue(messages: readonly PushMessage[]): void {
    if (this.stopped) return;
    this.queue.push(...messages);
    const over = this.queue.length - MAX_QUEUED_PUSHES;
    if (over > 0) {
      this.queue.splice(0, over);
      this.log?.warn({ gateId: this.gateId, dropped: over }, 'demo backend push queue full, dropped oldest');
    }
    if (!this.sending) void this.drain();
  }

  stop(): void {
    this.stopped = true;
    this.queue = [];
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.stopped) await this.post(this.queue.splice(0, MAX_BATCH));
    } finally {
      this.sending = false;
    }
  }

  /** Never rejects: a failed push is logged and the queue moves on. */
  private async post(messages: PushMessage[]): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const key = this.apiKey();
    if (key) headers['authorization'] = `Bearer ${key}`;
    try {
      const res = await request(this.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers,
        body: JSON.stringify({ messages }),
        signal: AbortSignal.timeout(PUSH_TIMEOUT_MS),
      });
      const text = await res.body.text();
      if (res.statusCode < 200 || res.statusCode > 299) {
        this.log?.warn({ gateId: this.gateId, status: res.statusCode, body: text.slice(0, 200), count: messages.length }, 'demo backend push refused');
      }
    } catch (err) {
      if (!this.stopped) this.log?.warn({ gateId: this.gateId, api: this.api, err: (err as Error).message, count: messages.length }, 'demo backend push failed');
    }
  }
}

/** `host:port` from a gate registration → push batch URL; wildcard hosts are reached on loopback. */
function pushUrl(api: string): string | null {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(api);
  if (!m || m[1] === undefined || m[2] === undefined || Number(m[2]) > 65535) return null;
  let host = m[1];
  if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${m[2]}/v1/push/batch`;
}

function header(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return typeof v === 'string' ? v : null;
}

/** Reads the whole body, refusing past `limit` (declared or actual) with 413. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    return Promise.reject(new DemoHttpError(413, 'payload_too_large', `body over ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []; // ≤ limit bytes in total
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume(); // discard the rest; the 413 closes the connection
        reject(new DemoHttpError(413, 'payload_too_large', `body over ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new DemoHttpError(400, 'bad_request', `body is not JSON: ${(err as Error).message}`);
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown, close = false): void {
  const body = Buffer.from(JSON.stringify(value));
  const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': body.length };
  if (close) headers['connection'] = 'close';
  res.writeHead(status, headers).end(body);
}

function sendReply(res: ServerResponse, reply: Reply): void {
  if ('bytes' in reply) {
    res.writeHead(reply.status, { 'content-type': 'application/octet-stream', 'content-length': reply.bytes.length }).end(reply.bytes);
  } else {
    sendJson(res, reply.status, reply.json);
  }
}

/** Starts the demo backend; resolves once it listens. */
export async function startDemoBackend(opts: DemoBackendOptions = {}): Promise<DemoBackend> {
  const { host = '127.0.0.1', port = 0, logger: log } = opts;
  const given = opts.apiKey ?? null;
  const apiKey = typeof given === 'function' ? given : () => given;
  const game = new DemoGame();
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: 4 }); // per gate origin; pushes are serialised anyway
  const gates = new Map<string, GatePusher>(); // gateId → its pusher; one entry per registered gate
  const players = new Map<string, { gateId: string; sessionId: string | null }>(); // playerId → where its live session is; removed on offline

  const track = (playerId: string | null, gateId: string | null, sessionId: string | null): void => {
    if (playerId && gateId) players.set(playerId, { gateId, sessionId });
  };

  /** The gate holding a player; with one gate registered that gate, even if the player is unknown. */
  const gateFor = (playerId: string): GatePusher | undefined => {
    const known = players.get(playerId);
    const gate = known ? gates.get(known.gateId) : undefined;
    if (gate) return gate;
    if (gates.size === 1) return gates.values().next().value;
    return undefined;
  };

  const deliver = (pushes: readonly Push[]): void => {
    const byGate = new Map<GatePusher, PushMessage[]>();
    for (const { playerIds, route, data } of pushes) {
      for (const playerId of playerIds) {
        const gate = gateFor(playerId);
        if (!gate) {
          log?.debug({ playerId, route }, 'demo backend: no gate for player, push dropped');
          continue;
        }
        let batch = byGate.get(gate);
        if (!batch) byGate.set(gate, (batch = []));
        batch.push({ playerId, route, data });
      }
    }
    for (const [gate, messages] of byGate) gate.enqueue(messages);
  };

  const onRpc = (req: IncomingMessage, res: ServerResponse, route: number, body: Buffer): void => {
    const call = { route, body, playerId: header(req, 'x-player-id'), sessionId: header(req, 'x-session-id'), gateId: header(req, 'x-gate-id') };
    track(call.playerId, call.gateId, call.sessionId);
    const { reply, pushes } = game.rpc(call);
    sendReply(res, reply);
    // after the response is written: the requester sees its RESPONSE before the pushes it caused
    if (pushes.length > 0) deliver(pushes);
  };

  const onConnect = (res: ServerResponse, body: Buffer): void => {
    const v = parseJson(body);
    const token = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)['token'] : undefined;
    if (typeof token !== 'string' || !TOKEN_RE.test(token)) {
      sendJson(res, 401, { error: 'unauthorized', message: 'token must be 1-64 characters of [A-Za-z0-9_.-]' });
      return;
    }
    sendJson(res, 200, { playerId: token });
  };

  const onEvents = (res: ServerResponse, body: Buffer): void => {
    const v = parseJson(body);
    if (!Array.isArray(v)) throw new DemoHttpError(400, 'bad_request', 'body must be a JSON array of events');
    const pushes: Push[] = [];
    let ignored = 0;
    for (const e of v as unknown[]) {
      const ev = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
      const { type, playerId, gateId, sessionId } = ev;
      if (typeof playerId !== 'string' || typeof type !== 'string') {
        ignored++; // one bad item must not make the gate retry the whole batch forever
        continue;
      }
      const sid = typeof sessionId === 'string' ? sessionId : null;
      if (type === 'offline') {
        const known = players.get(playerId);
        // an offline for a session already replaced by a newer one must not evict the player
        if (known && sid && known.sessionId && known.sessionId !== sid) continue;
        players.delete(playerId);
        pushes.push(...game.offline(playerId));
      } else if (typeof gateId === 'string') {
        track(playerId, gateId, sid);
      }
    }
    sendJson(res, 200, { ok: true, ignored });
    if (pushes.length > 0) deliver(pushes);
  };

  const onGatePut = (res: ServerResponse, gateId: string, body: Buffer): void => {
    const v = parseJson(body);
    const api = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)['api'] : undefined;
    const url = typeof api === 'string' ? pushUrl(api) : null;
    if (typeof api !== 'string' || url === null) throw new DemoHttpError(400, 'bad_request', 'api must be "host:port"');
    const current = gates.get(gateId);
    if (current?.api !== api) {
      current?.stop();
      gates.set(gateId, new GatePusher(gateId, api, url, agent, apiKey, log));
      log?.info({ gateId, api }, 'demo backend: gate registered');
    }
    sendJson(res, 200, { ok: true });
  };

  const onGateDelete = (res: ServerResponse, gateId: string): void => {
    gates.get(gateId)?.stop();
    gates.delete(gateId);
    sendJson(res, 200, { ok: true });
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const method = req.method ?? 'GET';
    const rpc = RPC_RE.exec(path);
    const gate = GATE_RE.exec(path);
    if (path === '/healthz' && method === 'GET') return sendJson(res, 200, { ok: true });
    if (rpc?.[1] !== undefined && method === 'POST') {
      const n = Number(rpc[1]);
      const body = await readBody(req, MAX_BODY);
      if (n > 65535) return sendJson(res, 404, { error: 'unknown_route', message: `no route ${rpc[1]}` });
      return onRpc(req, res, n, body);
    }
    if (path === '/connect' && method === 'POST') return onConnect(res, await readBody(req, MAX_BODY));
    if (path === '/events' && method === 'POST') return onEvents(res, await readBody(req, MAX_BODY));
    if (gate?.[1] !== undefined) {
      const gateId = decodeURIComponent(gate[1]);
      if (method === 'PUT') return onGatePut(res, gateId, await readBody(req, MAX_BODY));
      if (method === 'DELETE') return onGateDelete(res, gateId);
    }
    if (rpc || gate || path === '/connect' || path === '/events' || path === '/healthz') {
      return sendJson(res, 405, { error: 'method_not_allowed', message: `${method} ${path}` });
    }
    sendJson(res, 404, { error: 'not_found', message: `${method} ${path}` });
  };

  const server = createServer({ keepAlive: true }, (req, res) => {
    route(req, res).catch((err: unknown) => {
      // never let a handler throw: a refusal becomes its status, a bug a 500 without the stack
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof DemoHttpError) return sendJson(res, err.status, { error: err.code, message: err.message }, err.status === 413);
      if (err instanceof URIError) return sendJson(res, 400, { error: 'bad_request', message: 'malformed percent-encoding in path' });
      log?.error({ err, method: req.method, url: req.url }, 'demo backend handler failed');
      sendJson(res, 500, { error: 'internal', message: 'internal error' });
    });
  });
  server.keepAliveTimeout = 30_000; // longer than undici's default 4 s so the gate's idle sockets close first

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log?.error({ err }, 'demo backend server error'));
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      for (const g of gates.values()) g.stop();
      gates.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await agent.destroy();
    })());

  return { url, close };
}

/**
 * `gate demo-backend [--port N] [--host H]`. `argv` holds the arguments after the command name.
 * Resolves once the backend has closed after SIGINT/SIGTERM. Bad options: one stderr line, exit 2;
 * a listen failure: one line, exit 1.
 */
export async function runDemoBackendCommand(argv: string[]): Promise<void> {
  const cmd = new Command('gate demo-backend')
    .description('run the example game backend on its own')
    .option('--port <n>', 'TCP port to listen on (0 = any free port)', '7100')
    .option('--host <h>', 'address to listen on', '127.0.0.1')
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined }); // we print the one-line error ourselves
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError && (err.code === 'commander.helpDisplayed' || err.code === 'commander.help')) process.exit(0);
    fail(2, err instanceof Error ? err.message.replace(/^error: /, '') : String(err));
  }
  const o = cmd.opts<{ port: string; host: string }>();
  const port = /^\d{1,5}$/.test(o.port) ? Number(o.port) : NaN;
  if (!(port >= 0 && port <= 65535)) fail(2, `--port: "${o.port}" is not a port number (0-65535)`);
  if (o.host.trim() === '') fail(2, '--host: must not be empty');

  const logger = pino();
  let backend: DemoBackend;
  try {
    backend = await startDemoBackend({ host: o.host, port, logger });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    fail(1, e.code === 'EADDRINUSE' ? `${o.host}:${port} is already in use` : `cannot listen on ${o.host}:${port}: ${e.message}`);
  }
  logger.info({ url: backend.url }, 'demo backend listening');
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await backend.close();
}

function fail(code: number, line: string): never {
  process.stderr.write(`gate demo-backend: ${line}\n`);
  process.exit(code);
}

/**
 * A scriptable fake game backend (CONTRACT §3) on 127.0.0.1, port 0, keep-alive HTTP. It records every
 * call, answers through a replaceable handler, and can delay, hang or drop the connection on demand.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { waitFor } from './wait.js';

export interface RecordedCall {
  readonly method: string;
  /** Path and query, as sent (`/rpc/7`). */
  readonly path: string;
  /** Lower-cased header names (node:http). */
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** Date.now() when the body had fully arrived. */
  readonly at: number;
  /** The status answered, once answered; undefined while pending, hung or destroyed. */
  status?: number;
}

export interface FakeReply {
  /** Default 200 (204 when there is no body). */
  status?: number;
  /** An object is sent as JSON, a string as text, a Buffer as octet-stream. */
  body?: Buffer | string | object;
  /** Answer after this long (the socket stays open meanwhile). */
  delayMs?: number;
  /** Never answer. */
  hang?: boolean;
  /** Destroy the socket without answering (a connection error for the gate). */
  destroy?: boolean;
}

export type FakeHandler = (req: RecordedCall) => FakeReply | Promise<FakeReply>;

export interface FakeBackend {
  /** Base URL, `http://127.0.0.1:PORT`, to pass as `--upstream`. */
  readonly url: string;
  readonly port: number;
  /** Every call, in the order its body finished arriving. */
  readonly calls: RecordedCall[];
  /** Every event object from every POST /events, flattened in order; `acceptedOnly` skips posts not answered 2xx. */
  events(opts?: { acceptedOnly?: boolean }): Record<string, unknown>[];
  setHandler(h: FakeHandler): void;
  /** The first recorded call (past or future) matching `pred`. */
  waitForCall(pred: (c: RecordedCall) => boolean, what: string, timeoutMs?: number): Promise<RecordedCall>;
  /** Stops listening and destroys every socket, hanging ones included. */
  close(): Promise<void>;
}

/**
 * The default backend: `/connect` names the player after the token, `/rpc/N` echoes the body,
 * `/events` and `PUT|DELETE /gates/*` answer 204, anything else 404.
 */
export const defaultHandler: FakeHandler = (req) => {
  const path = req.path.split('?')[0]!;
  if (req.method === 'POST' && path === '/connect') {
    const { token } = JSON.parse(req.body.toString('utf8')) as { token?: unknown };
    return { status: 200, body: { playerId: token } };
  }
  if (req.method === 'POST' && /^\/rpc\/\d+$/.test(path)) return { status: 200, body: req.body };
  if (req.method === 'POST' && path === '/events') return { status: 204 };
  if ((req.method === 'PUT' || req.method === 'DELETE') && path.startsWith('/gates/')) return { status: 204 };
  return { status: 404, body: { error: 'not_found', message: `${req.method} ${path}` } };
};

function encodeBody(body: FakeReply['body']): { bytes: Buffer; type: string } | null {
  if (body === undefined) return null;
  if (Buffer.isBuffer(body)) return { bytes: body, type: 'application/octet-stream' };
  if (typeof body === 'string') return { bytes: Buffer.from(body, 'utf8'), type: 'text/plain; charset=utf-8' };
  return { bytes: Buffer.from(JSON.stringify(body), 'utf8'), type: 'application/json' };
}

export async function startFakeBackend(handler: FakeHandler = defaultHandler): Promise<FakeBackend> {
  let current = handler; // the handler answering new calls
  const calls: RecordedCall[] = [];
  const sockets = new Set<Socket>(); // open sockets, destroyed on close()
  const timers = new Set<NodeJS.Timeout>(); // pending delayMs answers, cleared on close()

  const answer = (res: ServerResponse, call: RecordedCall, reply: FakeReply): void => {
    if (res.destroyed || res.writableEnded) return;
    const enc = encodeBody(reply.body);
    const status = reply.status ?? (enc ? 200 : 204);
    call.status = status;
    if (enc && status !== 204 && status !== 304) {
      res.writeHead(status, { 'content-type': enc.type, 'content-length': enc.bytes.length });
      res.end(enc.bytes);
    } else {
      res.writeHead(status);
      res.end();
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const call: RecordedCall = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(parts),
        at: Date.now(),
      };
      calls.push(call);
      Promise.resolve()
        .then(() => current(call))
        .then(
          (reply) => {
            if (reply.destroy) {
              req.socket.destroy();
              return;
            }
            if (reply.hang) return;
            if (reply.delayMs !== undefined && reply.delayMs > 0) {
              const t = setTimeout(() => {
                timers.delete(t);
                answer(res, call, reply);
              }, reply.delayMs);
              timers.add(t);
            } else {
              answer(res, call, reply);
            }
          },
          (e: unknown) => answer(res, call, { status: 500, body: { error: 'fake_backend_handler_threw', message: String(e) } }),
        );
    });
  };

  const server = createServer({ keepAlive: true }, onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    calls,
    events: ({ acceptedOnly = false } = {}) =>
      calls
        .filter((c) => c.method === 'POST' && c.path.split('?')[0] === '/events')
        .filter((c) => !acceptedOnly || (c.status !== undefined && c.status >= 200 && c.status < 300))
        .flatMap((c) => {
          const v = JSON.parse(c.body.toString('utf8')) as unknown;
          return (Array.isArray(v) ? v : [v]) as Record<string, unknown>[];
        }),
    setHandler: (h) => {
      current = h;
    },
    waitForCall: (pred, what, timeoutMs = 5000) =>
      waitFor(what, () => calls.find(pred), timeoutMs).catch((e: unknown) => {
        const seen = calls.map((c) => `${c.method} ${c.path}`).join(', ') || 'none';
        throw new Error(`${(e as Error).message}; calls received: ${seen}`, { cause: e });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      }),
  };
}

import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import got from 'got';
import { Pool, type Dispatcher } from 'undici';

/** One POST /rpc/{route} (§3). */
export interface RpcRequest {
  readonly route: number;
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, string>>;
}

export interface RpcReply {
  readonly status: number;
  readonly body: Buffer;
}

/** The backend could not be reached or dropped the connection: safe to retry (nothing ran, or `x-request-id` dedupes). */
export class RpcConnectionError extends Error {
  override readonly name = 'RpcConnectionError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** The reply was larger than --max-frame, so it cannot be sent on: never buffered past the limit. */
export class RpcReplyTooLarge extends Error {
  override readonly name = 'RpcReplyTooLarge';
}

/** Called once per call: an error (RpcConnectionError, RpcReplyTooLarge, other) or the reply. */
export type RpcDone = (err: unknown, reply?: RpcReply) => void;

/**
 * The hot-path HTTP client behind one interface, so the benchmark can compare
 * implementations (docs/performance.md). Callback style with a returned cancel function,
 * rather than a promise and an AbortSignal: on the per-request path an AbortController and
 * the DOMException of every abort cost more than the HTTP parsing. After cancel, `done` is
 * never called.
 */
export interface RpcClient {
  readonly name: string;
  call(req: RpcRequest, done: RpcDone): () => void;
  close(): Promise<void>;
}

export interface RpcClientConfig {
  /** Backend base URL (may have a path prefix). */
  baseUrl: string;
  /**
   * Sockets kept to the backend at most (≥ --workers, so no worker waits for a socket). null: no
   * cap here, the gate's worker pool bounds the calls in flight and so the sockets (a fixed cap
   * would keep a reload from raising --workers).
   */
  connections: number | null;
  /** Largest reply body read; past it the reply is refused. */
  maxBody: number;
}

const CONN_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ECONNABORTED',
]);

function asConnectionError(e: unknown): unknown {
  const err = e as { code?: string; cause?: { code?: string }; name?: string; message?: string };
  const code = err.code ?? err.cause?.code;
  if (err.name === 'AbortError') return e;
  if (code && CONN_CODES.has(code)) return new RpcConnectionError(code, err.message ?? code);
  return e;
}

/** undici Pool: the shipped client (about 8x got's throughput here, see docs/performance.md). */
export function undiciRpcClient({ baseUrl, connections, maxBody }: RpcClientConfig): RpcClient {
  const url = new URL(baseUrl);
  const prefix = url.pathname.replace(/\/+$/, '');
  const pool = new Pool(url.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    // Per-attempt timeouts are the pipeline's (timeout operator + abort), not undici's.
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  return {
    name: 'undici',
    call(req, done) {
      let cancelAttempt: ((err?: Error) => void) | null = null; // set once the request is on a socket
      let over = false; // done called, or cancelled
      const chunks: Buffer[] = [];
      let size = 0;
      let status = 0;
      const finish = (err: unknown, reply?: RpcReply): void => {
        if (over) return;
        over = true;
        done(err, reply);
      };
      // undici's callback handler API (onConnect/onHeaders/…): its newer controller API
      // (onRequestStart/…) is wrapped by undici in an adapter that parses every response's
      // headers into an object, which the gate never reads.
      const handler: Dispatcher.DispatchHandler = {
        onConnect(abort: (err?: Error) => void) {
          if (over) abort(new Error('cancelled'));
          else cancelAttempt = abort;
        },
        onHeaders(statusCode: number) {
          status = statusCode;
          return true;
        },
        onData(chunk: Buffer) {
          size += chunk.length;
          if (size > maxBody) {
            cancelAttempt?.(new RpcReplyTooLarge(`reply body over ${maxBody} bytes`));
            return false;
          }
          chunks.push(chunk);
          return true;
        },
        onComplete() {
          finish(null, { status, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
        },
        onError(err: Error) {
          finish(asConnectionError(err));
        },
      };
      pool.dispatch({ method: 'POST', path: `${prefix}/rpc/${req.route}`, headers: req.headers, body: req.body }, handler);
      return () => {
        if (over) return;
        over = true;
        cancelAttempt?.(new Error('cancelled'));
      };
    },
    close: () => pool.close(),
  };
}

/** got with a keep-alive agent, tuned as far as it goes; kept for the benchmark comparison. */
export function gotRpcClient({ baseUrl, connections, maxBody }: RpcClientConfig): RpcClient {
  const base = baseUrl.replace(/\/+$/, '');
  const agent = {
    http: new HttpAgent({ keepAlive: true, maxSockets: connections ?? Infinity, maxFreeSockets: connections ?? 256 }),
    https: new HttpsAgent({ keepAlive: true, maxSockets: connections ?? Infinity, maxFreeSockets: connections ?? 256 }),
  };
  const client = got.extend({
    agent,
    retry: { limit: 0 },
    throwHttpErrors: false,
    decompress: false,
    followRedirect: false,
    responseType: 'buffer',
  });
  return {
    name: 'got',
    call(req, done) {
      const ac = new AbortController();
      let over = false;
      client
        .post(`${base}/rpc/${req.route}`, { body: req.body, headers: req.headers, signal: ac.signal })
        .then(
          (res) => {
            if (over) return;
            over = true;
            if (res.rawBody.length > maxBody) done(new RpcReplyTooLarge(`reply body over ${maxBody} bytes`));
            else done(null, { status: res.statusCode, body: res.rawBody });
          },
          (e: unknown) => {
            if (over) return;
            over = true;
            done(asConnectionError(e));
          },
        );
      return () => {
        if (over) return;
        over = true;
        ac.abort();
      };
    },
    close: () => {
      agent.http.destroy();
      agent.https.destroy();
      return Promise.resolve();
    },
  };
}

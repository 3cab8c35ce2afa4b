import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';

/** One backend event (§3 POST /events). */
export interface BackendEvent {
  /** Cluster mode: the event's id in the cluster's stream (delivery is at-least-once: dedupe on it). */
  readonly id?: string;
  readonly type: 'online' | 'detached' | 'resumed' | 'offline';
  readonly playerId: string;
  readonly sessionId: string;
  readonly gateId: string;
  readonly reason?: string;
  /** ms since the epoch. */
  readonly at: number;
}

export interface GateRegistration {
  gateId: string;
  tcp: string | null;
  ws: string | null;
  api: string;
  startedAt: number;
  sessions: number;
}

export type ConnectAnswer = { readonly ok: true; readonly playerId: string } | { readonly ok: false; readonly reason: string };

/**
 * The control-plane calls (§3: /connect, /events, /gates). Over undici, as /rpc is: got spent
 * about 1 ms of CPU on each call (options merged, hooks, a promise wrapper), which a login storm
 * paid once per /events batch and, under `--auth upstream`, once per login (docs/performance.md).
 */
export interface BackendClient {
  connect(body: { token: string; gateId: string; sessionId: string; remoteAddress: string }): Promise<ConnectAnswer>;
  postEvents(events: readonly BackendEvent[]): Promise<void>;
  putGate(reg: GateRegistration): Promise<void>;
  deleteGate(gateId: string): Promise<void>;
  close(): void;
}

/** --upstream-timeout and --upstream-retries as they are now (a reload changes them). */
export interface CallPolicy {
  readonly timeoutMs: number;
  readonly retries: number;
}

export interface BackendClientConfig {
  baseUrl: string;
  gateId: string;
  /** Read at each call, so a reload applies to the calls made after it, as it does for /rpc. */
  policy: () => CallPolicy;
}

/** Largest /connect, /events or /gates reply read: a backend that streams more is cut off, never buffered. */
const MAX_REPLY_BYTES = 64 * 1024;
/** Answers worth another try: the backend (or a proxy in front of it) was not there to run the call. */
const RETRY_STATUS = new Set([502, 503, 504]);
/** Failures before the request could have run. Never a timeout (§1 --upstream-retries): the backend may have run the call. */
const RETRY_CODES = new Set(['ECONNRESET', 'EADDRINUSE', 'ECONNREFUSED', 'EPIPE', 'ENOTFOUND', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

/** A control-plane call the backend answered with a status the call does not accept. */
export class BackendStatusError extends Error {
  override readonly name = 'BackendStatusError';
  constructor(
    readonly status: number,
    what: string,
  ) {
    super(`backend ${what} answered ${status}`);
  }
}

const errCode = (e: unknown): string | undefined => {
  const err = e as { code?: string; cause?: { code?: string } };
  return err.code ?? err.cause?.code;
};

export function backendClient({ baseUrl, gateId, policy }: BackendClientConfig): BackendClient {
  const url = new URL(baseUrl);
  const prefix = url.pathname.replace(/\/+$/, '');
  // Per-call timeouts are an AbortSignal's (the whole call, as --upstream-timeout says), not undici's.
  const pool = new Pool(url.origin, { connections: 16, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0, maxResponseSize: MAX_REPLY_BYTES });
  const base = { 'x-gate-id': gateId };
  const json = { ...base, 'content-type': 'application/json' };

  /**
   * One call, tried again up to `tries - 1` times after a refused connection or a 502/503/504:
   * 100 ms, 200 ms, … capped at 500 ms apart (a login may be waiting on /connect). Resolves with
   * the last answer's status and text; rejects on a timeout, an oversized reply or a failure
   * that is not worth another try.
   */
  async function call(method: 'POST' | 'PUT' | 'DELETE', path: string, body: string | undefined, headers: Record<string, string>, tries: number): Promise<{ status: number; text: string }> {
    const what = `${method} /${path}`;
    const { timeoutMs } = policy();
    for (let attempt = 1; ; attempt++) {
      const again = attempt < tries;
      try {
        const res = await pool.request({ method, path: `${prefix}/${path}`, headers, body, signal: AbortSignal.timeout(timeoutMs) });
        const text = await res.body.text();
        if (!(again && RETRY_STATUS.has(res.statusCode))) return { status: res.statusCode, text };
      } catch (e) {
        const code = errCode(e);
        if ((e as Error).name === 'TimeoutError' || code === 'UND_ERR_ABORTED') throw new Error(`backend ${what} timed out after ${timeoutMs}ms`, { cause: e });
        if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') throw new Error(`backend ${what} answered more than ${MAX_REPLY_BYTES} bytes`, { cause: e });
        if (!(again && code !== undefined && RETRY_CODES.has(code))) throw e;
      }
      await sleep(Math.min(100 * 2 ** (attempt - 1), 500));
    }
  }
  /** A call whose answer matters only as a 2xx. */
  const send = async (method: 'POST' | 'PUT' | 'DELETE', path: string, body: unknown, tries: number): Promise<void> => {
    const { status } = await call(method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? base : json, tries);
    if (status < 200 || status >= 300) throw new BackendStatusError(status, `${method} /${path}`);
  };

  return {
    async connect(body) {
      const res = await call('POST', 'connect', JSON.stringify(body), { ...json, 'x-session-id': body.sessionId }, policy().retries + 1);
      if (res.status === 401 || res.status === 403) return { ok: false, reason: `backend refused the login (${res.status})` };
      if (res.status < 200 || res.status >= 300) return { ok: false, reason: `backend /connect answered ${res.status}` };
      let parsed: unknown;
      try {
        parsed = JSON.parse(res.text);
      } catch {
        return { ok: false, reason: 'backend /connect answered non-JSON' };
      }
      const playerId = (parsed as { playerId?: unknown })?.playerId;
      if (typeof playerId !== 'string' || playerId === '') return { ok: false, reason: 'backend /connect answered no playerId' };
      return { ok: true, playerId };
    },
    // The event queue retries a batch itself (with its own backoff, in order): one try here.
    postEvents: (events) => send('POST', 'events', events, 1),
    putGate: (reg) => send('PUT', `gates/${encodeURIComponent(reg.gateId)}`, reg, 1),
    deleteGate: (id) => send('DELETE', `gates/${encodeURIComponent(id)}`, undefined, policy().retries + 1),
    close() {
      void pool.destroy();
    },
  };
}

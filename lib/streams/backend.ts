import got, { type Got } from 'got';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';

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
 * The control-plane calls (§3: /connect, /events, /gates) over got: each call is rare next
 * to /rpc, and got's timeouts and retry policy earn their cost here.
 */
export interface BackendClient {
  connect(body: { token: string; gateId: string; sessionId: string; remoteAddress: string }): Promise<ConnectAnswer>;
  postEvents(events: readonly BackendEvent[]): Promise<void>;
  putGate(reg: GateRegistration): Promise<void>;
  deleteGate(gateId: string): Promise<void>;
  close(): void;
}

export interface BackendClientConfig {
  baseUrl: string;
  gateId: string;
  timeoutMs: number;
  retries: number;
}

/** Largest /connect, /events or /gates reply read. */
const MAX_REPLY_BYTES = 64 * 1024;

export function gotBackendClient({ baseUrl, gateId, timeoutMs, retries }: BackendClientConfig): BackendClient {
  const agent = { http: new HttpAgent({ keepAlive: true, maxSockets: 16 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 16 }) };
  const client: Got = got.extend({
    prefixUrl: baseUrl,
    agent,
    headers: { 'x-gate-id': gateId },
    timeout: { request: timeoutMs },
    throwHttpErrors: true,
    followRedirect: false,
    // POST is not idempotent by got's default; /connect and /events are safe to repeat here.
    // got's default backoff starts at 1 s: too slow for a login waiting on /connect. Retries
    // here wait 100 ms, 200 ms, … capped at 500 ms (plus got's up-to-100 ms noise).
    // Control-plane replies are small JSON: a backend that streams more is cut off, never buffered.
    handlers: [
      (options, next) => {
        const result = next(options) as ReturnType<typeof next> & { on?: (e: string, f: (p: { transferred: number }) => void) => void; cancel?: () => void };
        result.on?.('downloadProgress', ({ transferred }) => {
          if (transferred > MAX_REPLY_BYTES) result.cancel?.();
        });
        return result;
      },
    ],
    retry: {
      limit: retries,
      methods: ['POST', 'PUT', 'DELETE'],
      statusCodes: [502, 503, 504],
      // Never after a timeout (§1 --upstream-retries): the backend may have run the call.
      errorCodes: ['ECONNRESET', 'EADDRINUSE', 'ECONNREFUSED', 'EPIPE', 'ENOTFOUND', 'ENETUNREACH', 'EAI_AGAIN'],
      calculateDelay: ({ attemptCount, computedValue }) => (computedValue === 0 ? 0 : Math.min(100 * 2 ** (attemptCount - 1), 500)),
    },
  });
  return {
    async connect(body) {
      const res = await client.post('connect', {
        json: body,
        headers: { 'x-session-id': body.sessionId },
        throwHttpErrors: false,
        responseType: 'text',
      });
      if (res.statusCode === 401 || res.statusCode === 403) return { ok: false, reason: `backend refused the login (${res.statusCode})` };
      if (res.statusCode < 200 || res.statusCode >= 300) return { ok: false, reason: `backend /connect answered ${res.statusCode}` };
      let parsed: unknown;
      try {
        parsed = JSON.parse(res.body);
      } catch {
        return { ok: false, reason: 'backend /connect answered non-JSON' };
      }
      const playerId = (parsed as { playerId?: unknown })?.playerId;
      if (typeof playerId !== 'string' || playerId === '') return { ok: false, reason: 'backend /connect answered no playerId' };
      return { ok: true, playerId };
    },
    async postEvents(events) {
      await client.post('events', { json: events, retry: { limit: 0 } });
    },
    async putGate(reg) {
      await client.put(`gates/${encodeURIComponent(reg.gateId)}`, { json: reg, retry: { limit: 0 } });
    },
    async deleteGate(id) {
      await client.delete(`gates/${encodeURIComponent(id)}`);
    },
    close() {
      agent.http.destroy();
      agent.https.destroy();
    },
  };
}

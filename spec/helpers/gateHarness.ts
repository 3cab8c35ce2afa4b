import pino from 'pino';
import { testConfig, type GateConfig } from '../../lib/config.js';
import type { GateDeps } from '../../lib/gate.js';
import { serve, type RunningGate } from '../../lib/serve.js';
import { startFakeBackend, type FakeBackend, type FakeHandler } from './fakeBackend.js';
import { startRedis, type RedisServer } from './redisServer.js';

export interface Harness {
  gate: RunningGate;
  backend: FakeBackend;
  tcpPort: number;
  wsPort: number;
  api: string;
  /** Base URL of the push API. */
  apiUrl: string;
  close(): Promise<void>;
}

const portOf = (a: string | null): number => Number(a?.split(':').pop() ?? 0);

/** A running gate's addresses, as the specs use them. */
const harnessOf = (gate: RunningGate, backend: FakeBackend): Omit<Harness, 'close'> => ({
  gate,
  backend,
  tcpPort: portOf(gate.addresses.tcp),
  wsPort: portOf(gate.addresses.ws),
  api: gate.addresses.api,
  apiUrl: `http://${gate.addresses.api}`,
});

/**
 * A real gate on 127.0.0.1 (ports chosen by the OS) in front of a fake backend. `over` changes
 * config; by default auth is `upstream` against the fake (whose /connect names the token).
 */
export async function startGate(over: Partial<GateConfig> = {}, handler?: FakeHandler, deps: Partial<GateDeps> = {}): Promise<Harness> {
  const backend = await startFakeBackend(handler);
  const cfg = testConfig({ upstream: backend.url, auth: 'upstream', ...over });
  const gate = await serve(cfg, { logger: pino({ level: process.env.GATE_TEST_LOG ?? 'silent' }), ...deps });
  let closed = false;
  return {
    ...harnessOf(gate, backend),
    async close() {
      if (closed) return;
      closed = true;
      await gate.shutdown();
      await backend.close();
    },
  };
}

/**
 * A cluster of `n` real in-process gates (cluster mode) on one private redis-server and one fake
 * backend: the same harness per gate as `startGate`, with `deps(i)` per gate (e.g. its idle clock).
 */
export async function startCluster(
  n: number,
  over: Partial<GateConfig> = {},
  handler?: FakeHandler,
  deps: (i: number) => Partial<GateDeps> = () => ({}),
): Promise<{ gates: Harness[]; backend: FakeBackend; redis: RedisServer; close(): Promise<void> }> {
  const redis = await startRedis();
  const backend = await startFakeBackend(handler);
  const prefix = `h${++clusters}-${process.pid}:`;
  const gates: Harness[] = [];
  for (let i = 0; i < n; i++) {
    const cfg = testConfig({ upstream: backend.url, auth: 'upstream', ...over, gateId: `g${i + 1}`, redis: redis.url, redisPrefix: prefix });
    const gate = await serve(cfg, { logger: pino({ level: process.env.GATE_TEST_LOG ?? 'silent' }), ...deps(i) });
    gates.push({ ...harnessOf(gate, backend), close: () => gate.shutdown() });
  }
  return {
    gates,
    backend,
    redis,
    async close() {
      for (const g of gates) await g.close();
      await backend.close();
      await redis.stop();
    },
  };
}

let clusters = 0;

/** Safety net on one API call, ms (a hung gate fails the test with a message, not the runner's timeout). */
const API_MS = 30_000;

/** POST/GET JSON to the push API (of a harness, or any `{apiUrl}`); resolves status and parsed body. */
export async function api(
  h: { readonly apiUrl: string },
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  timeoutMs = API_MS,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.apiUrl}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: res.status, body: parsed };
}

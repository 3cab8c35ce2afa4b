// Compares the control-plane client (lib/streams/backend.ts, undici) with the got client it
// replaced: CPU of this process per call, for POST /events with 100 events and for POST /connect,
// calls made one after another against the trivial backend on another core, the two clients
// alternating `rounds` times. Usage (pinned to core 0 by the caller; the backend goes to core 1):
//   taskset -c 0 node dist/bench/controlPlaneClients.js [calls=1000] [rounds=3]
import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import got from 'got';
import { spawnTrivialBackend } from '../lib/cli/bench/common.js';
import { backendClient, type BackendEvent } from '../lib/streams/backend.js';

const calls = Number(process.argv[2] ?? 1000);
const rounds = Number(process.argv[3] ?? 3);

interface Client {
  readonly name: string;
  events(batch: readonly BackendEvent[]): Promise<unknown>;
  connect(body: object): Promise<unknown>;
  close(): void;
}

/** got as lib/streams/backend.ts used it until 2026-11-29: keep-alive agent, a timeout, retries on. */
function gotClient(url: string): Client {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 16 });
  const c = got.extend({ prefixUrl: url, agent: { http: agent }, headers: { 'x-gate-id': 'bench' }, timeout: { request: 5_000 }, followRedirect: false, retry: { limit: 2, methods: ['POST'] } });
  return {
    name: 'got@14',
    events: (batch) => c.post('events', { json: batch, retry: { limit: 0 } }),
    connect: (body) => c.post('connect', { json: body, throwHttpErrors: false, responseType: 'text' }),
    close: () => agent.destroy(),
  };
}

function undiciClient(url: string): Client {
  const c = backendClient({ baseUrl: url, gateId: 'bench', policy: () => ({ timeoutMs: 5_000, retries: 2 }) });
  return {
    name: 'undici (shipped)',
    events: (batch) => c.postEvents(batch),
    // The trivial backend echoes the body, so the answer names no player: a refusal, at the same cost.
    connect: (body) => c.connect(body as Parameters<typeof c.connect>[0]),
    close: () => c.close(),
  };
}

/** CPU µs of this process per call of `fn`, after a warm-up of a fifth as many. */
async function perCall(fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < calls / 5; i++) await fn();
  const u0 = process.cpuUsage();
  for (let i = 0; i < calls; i++) await fn();
  const u = process.cpuUsage(u0);
  return Math.round((u.user + u.system) / calls);
}

// On core 1 (this process is pinned to core 0 by the caller), ending with this process.
const backend = await spawnTrivialBackend({ cpu: '1' });
const batch: BackendEvent[] = Array.from({ length: 100 }, (_, i) => ({ type: 'online', playerId: `bench-${i}`, sessionId: randomUUID(), gateId: 'bench', at: Date.now() }));
const hello = { token: 'tok', gateId: 'bench', sessionId: randomUUID(), remoteAddress: '127.0.0.1:1' };
console.log(`${calls} calls a figure, ${rounds} rounds; /events body ${JSON.stringify(batch).length} bytes; CPU µs of the caller per call`);
try {
  for (let r = 1; r <= rounds; r++) {
    for (const make of [gotClient, undiciClient]) {
      const c = make(backend.url);
      const events = await perCall(() => c.events(batch));
      const connect = await perCall(() => c.connect(hello));
      c.close();
      console.log(`round ${r}  ${c.name.padEnd(17)} /events ${String(events).padStart(5)} µs   /connect ${String(connect).padStart(5)} µs`);
    }
  }
} finally {
  await backend.stop();
}

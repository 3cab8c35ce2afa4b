/**
 * Connection churn (CONTRACT §2.3, §2.4): many connect / login / leave cycles over TCP and WS
 * leave nothing behind. After logouts the gate holds no connection, session, in-flight or queued
 * request; sessions left detached end after --idle-timeout; connections that never say HELLO are
 * closed after --hello-timeout. With `node --expose-gc` the heap is also checked to come back to
 * near where it started (skipped when `global.gc` is not exposed).
 *
 * CHURN_N sets the number of cycles (default 500; the 10,000-cycle run is the benchmark's).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType } from '../lib/frame.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, connectWs, json, type TestClient } from './helpers/testClient.js';
import { waitFor, withTimeout } from './helpers/wait.js';

const N = Number(process.env.CHURN_N ?? 500);
/** Cycles running at once: enough to overlap logins and closes, few enough to stay far below any limit. */
const PARALLEL = 25;
/** Bound on any single wait, ms. */
const WAIT_MS = 5_000;
/** --idle-timeout for the detached-session test, ms. */
const IDLE_MS = 300;
/** --hello-timeout for the silent-connection test, ms. */
const HELLO_MS = 200;
/** Largest heap growth accepted after N cycles and a full GC, bytes. */
const HEAP_SLACK = 5 * 1024 * 1024;
/** How long the heap may take to come back: the request groups' linger (5 s in lib/gate.ts) plus slack, ms. */
const HEAP_WAIT_MS = 8_000;
/** Interval between heap measurements while waiting, ms. */
const HEAP_POLL_MS = 250;

interface Stats {
  connections: number;
  sessions: number;
  online: number;
  detached: number;
  inflight: number;
  queued: number;
}

/** Runs `task(0..n-1)` with at most `parallel` running at once; rejects with the first failure. */
async function runAll(n: number, parallel: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0; // the next index to start
  const lane = async (): Promise<void> => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, lane));
}

/** Polls /v1/stats until `pred` holds; fails after `timeoutMs` showing the last stats. */
async function statsUntil(h: Harness, what: string, pred: (s: Stats) => boolean, timeoutMs = WAIT_MS): Promise<Stats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = (await api(h, 'GET', '/v1/stats')).body as Stats;
    if (pred(s)) return s;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs}ms waiting for ${what}; last /v1/stats: ${JSON.stringify(s)}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const open = (h: Harness, i: number): Promise<TestClient> => (i % 2 === 0 ? connectTcp(h.tcpPort) : connectWs(h.wsPort));

/** One full cycle: connect, log in, one request, logout BYE, wait for the gate to close the link. */
async function loginLogout(h: Harness, i: number): Promise<void> {
  const c = await open(h, i);
  try {
    await c.hello({ token: `churn-${i}` });
    c.request(1, 1, { i });
    const f = await c.next((x) => x.seq === 1 && (x.type === FrameType.RESPONSE || x.type === FrameType.ERROR));
    assert.equal(f.type, FrameType.RESPONSE, `cycle ${i}: ${JSON.stringify(json(f))}`);
    c.send({ type: FrameType.BYE, flags: 0, route: 0, seq: 0, body: Buffer.from(JSON.stringify({ code: 'logout' })) });
    await withTimeout(c.closed, WAIT_MS, `the gate to close cycle ${i}'s link after logout`);
  } finally {
    await c.destroy();
  }
}

/** Full GCs until the heap stops shrinking; the settled heapUsed. */
function settledHeap(gc: () => void): number {
  let last = Infinity;
  for (let i = 0; i < 10; i++) {
    gc();
    const used = process.memoryUsage().heapUsed;
    if (used >= last) return used;
    last = used;
  }
  return last;
}

describe('churn: connect, log in, log out', () => {
  let h: Harness;
  before(async () => {
    h = await startGate({ auth: 'none' });
  });
  after(() => h?.close());

  it(`should leave no connection, session or request behind after ${N} cycles over TCP and WS`, async (t) => {
    const gc = (globalThis as { gc?: () => void }).gc;
    // Warm-up: JIT, buffer pools, undici sockets and metric label sets all exist before the baseline.
    await runAll(Math.min(100, N), PARALLEL, (i) => loginLogout(h, N + i));
    await statsUntil(h, 'the warm-up to drain', (s) => s.connections === 0 && s.sessions === 0);
    h.backend.calls.length = 0;
    const before = gc ? settledHeap(gc) : 0;

    const t0 = Date.now();
    await runAll(N, PARALLEL, (i) => loginLogout(h, i));
    const s = await statsUntil(h, 'no connections, sessions, in-flight or queued requests', (x) => x.connections === 0 && x.sessions === 0 && x.inflight === 0 && x.queued === 0);
    assert.deepEqual({ connections: s.connections, sessions: s.sessions, inflight: s.inflight, queued: s.queued }, { connections: 0, sessions: 0, inflight: 0, queued: 0 });
    t.diagnostic(`${N} cycles in ${Date.now() - t0} ms`);

    const metrics = await fetch(`${h.apiUrl}/metrics`).then((r) => r.text());
    for (const transport of ['tcp', 'ws']) assert.match(metrics, new RegExp(`^gate_connections\\{[^}]*transport="${transport}"[^}]*\\} 0$`, 'm'), `gate_connections{transport="${transport}"} is 0`);

    if (!gc) {
      t.diagnostic('heap check skipped: run node with --expose-gc to enable it');
      return;
    }
    h.backend.calls.length = 0; // the fake backend records every call: not the gate's memory
    // Polled, not measured once: each player's request group lingers a few seconds after its last
    // request (lib/ops/groupByPlayer.ts), holding a few KiB until then; bounded by time, not leaked.
    const deadline = Date.now() + HEAP_WAIT_MS;
    let grown = settledHeap(gc) - before;
    while (grown >= HEAP_SLACK && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, HEAP_POLL_MS));
      grown = settledHeap(gc) - before;
    }
    t.diagnostic(`heap grew ${(grown / 1024).toFixed(0)} KiB over ${N} cycles`);
    assert.ok(grown < HEAP_SLACK, `heap still ${grown} bytes above its start ${HEAP_WAIT_MS}ms after ${N} cycles (limit ${HEAP_SLACK})`);
  });
});

describe('churn: sessions left detached', () => {
  let h: Harness;
  before(async () => {
    // The default --hello-timeout: a short one could end a login on a loaded machine before its HELLO is read.
    h = await startGate({ auth: 'none', idleTimeoutMs: IDLE_MS });
  });
  after(() => h?.close());

  it('should end every detached session after --idle-timeout and report offline(idle) for each', async () => {
    const n = Math.max(10, Math.floor(N / 5));
    await runAll(n, PARALLEL, async (i) => {
      const c = await open(h, i);
      await c.hello({ token: `detached-${i}` });
      await c.destroy(); // the network vanishes: the session is detached, not ended
    });
    await statsUntil(h, 'every link to be gone', (s) => s.connections === 0);
    // Every session ends within its idle timeout (counted from login) plus slack for the timers.
    const s = await statsUntil(h, `all ${n} detached sessions to end after --idle-timeout ${IDLE_MS}ms`, (x) => x.sessions === 0, IDLE_MS + WAIT_MS);
    assert.deepEqual({ connections: s.connections, sessions: s.sessions, detached: s.detached, inflight: s.inflight, queued: s.queued }, { connections: 0, sessions: 0, detached: 0, inflight: 0, queued: 0 });

    const offline = (): Record<string, unknown>[] => h.backend.events().filter((e) => e.type === 'offline' && String(e.playerId).startsWith('detached-'));
    await waitFor(`${n} offline events at the backend`, () => offline().length >= n, WAIT_MS).catch((e: Error) => {
      throw new Error(`${e.message}; got ${offline().length}`);
    });
    const ended = offline();
    assert.equal(ended.length, n, `one offline event per session, got ${ended.length}`);
    assert.deepEqual([...new Set(ended.map((e) => e.reason))], ['idle']);
    assert.equal(new Set(ended.map((e) => e.playerId)).size, n, 'each player once');
  });

});

describe('churn: connections that never log in', () => {
  let h: Harness;
  before(async () => {
    h = await startGate({ auth: 'none', helloTimeoutMs: HELLO_MS });
  });
  after(() => h?.close());

  it('should close connections that never send HELLO after --hello-timeout', async () => {
    const n = Math.max(10, Math.floor(N / 10));
    const clients: TestClient[] = [];
    // No count of them while open: that would be a race with the very timeout under test. Each
    // one's BYE hello_timeout shows the gate accepted and timed it; the stats must end at zero.
    await runAll(n, PARALLEL, async (i) => void clients.push(await open(h, i)));
    await Promise.all(clients.map((c, i) => withTimeout(c.closed, HELLO_MS + WAIT_MS, `silent connection ${i} to be closed`)));
    for (const c of clients) {
      const byes = c.frames.filter((f) => f.type === FrameType.BYE).map((f) => (json(f) as { code: string }).code);
      assert.deepEqual(byes, ['hello_timeout']);
    }
    const s = await statsUntil(h, 'no connections', (x) => x.connections === 0 && x.sessions === 0);
    assert.equal(s.connections, 0);
  });
});

/**
 * Liveness over real sockets (CONTRACT §1 --hello-timeout / --heartbeat / --idle-timeout, §2.4):
 * the HELLO deadline, PING/PONG, the 3× heartbeat watchdog that detaches a session, and the idle
 * clock that only REQUESTs reset. Durations are a few hundred ms at most; every wait is for an
 * effect, bounded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GateConfig } from '../lib/config.js';
import { FrameType } from '../lib/frame.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, connectWs, json, type ByeBody, type TestClient } from './helpers/testClient.js';
import { waitFor, withTimeout } from './helpers/wait.js';

type Transport = 'tcp' | 'ws';
const TRANSPORTS: readonly Transport[] = ['tcp', 'ws'];
/** Bound on any single wait in this file, ms. */
const WAIT_MS = 3_000;

const open = (h: Harness, t: Transport): Promise<TestClient> => (t === 'tcp' ? connectTcp(h.tcpPort) : connectWs(h.wsPort));

async function withGate(over: Partial<GateConfig>, fn: (h: Harness) => Promise<void>): Promise<void> {
  const h = await startGate(over);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

const ping = (c: TestClient, seq: number): void => c.send({ type: FrameType.PING, flags: 0, route: 0, seq, body: Buffer.alloc(0) });

/**
 * Calls `tick` every `everyMs` until `stop` resolves or `forMs` has passed (the activity a test is
 * about, not a wait for an effect); resolves with how many ticks were sent.
 */
function keepSending(tick: (n: number) => void, everyMs: number, forMs: number, stop?: Promise<unknown>): Promise<number> {
  return new Promise((resolve) => {
    let n = 0;
    const iv = setInterval(() => tick(++n), everyMs);
    const done = (): void => {
      clearInterval(iv);
      clearTimeout(t);
      resolve(n);
    };
    const t = setTimeout(done, forMs);
    void stop?.then(done, done);
  });
}

const offlineReason = (h: Harness, playerId: string): string | undefined =>
  h.backend.events().find((e) => e.playerId === playerId && e.type === 'offline')?.reason as string | undefined;

for (const t of TRANSPORTS) {
  describe(`liveness over ${t}`, () => {
    it('should send BYE hello_timeout and close a link that sends no HELLO', () =>
      withGate({ helloTimeoutMs: 100 }, async (h) => {
        // Measured from before connecting: the gate's clock starts at accept, never earlier.
        const started = Date.now();
        const c = await open(h, t);
        const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
        assert.equal((json(bye) as ByeBody).code, 'hello_timeout');
        assert.ok(Date.now() - started >= 80, `BYE came after ${Date.now() - started}ms, before the 100ms hello timeout`);
        await withTimeout(c.closed, WAIT_MS, 'the gate to close after BYE hello_timeout');
        assert.equal(c.frames.filter((f) => f.type !== FrameType.BYE).length, 0, 'nothing but the BYE is sent');
      }));

    it('should not time out a link whose HELLO came in time', () =>
      // 500 ms: the HELLO goes out right after connect, and a loaded machine may stall the loop between the two.
      withGate({ helloTimeoutMs: 500 }, async (h) => {
        const c = await open(h, t);
        await c.hello({ token: 'prompt' }, WAIT_MS);
        // Three hello timeouts of traffic (PINGs): no BYE may come.
        await keepSending((n) => ping(c, n), 30, 1_500, c.closed);
        assert.equal(c.isClosed, false, 'the link should still be open');
        ping(c, 999);
        await c.next((f) => f.type === FrameType.PONG && f.seq === 999, WAIT_MS);
        assert.equal(c.frames.filter((f) => f.type === FrameType.BYE).length, 0);
        await c.close();
      }));

    it('should answer PING with PONG of the same seq, before and after HELLO', () =>
      withGate({}, async (h) => {
        const c = await open(h, t);
        ping(c, 7);
        const p1 = await c.next((f) => f.type === FrameType.PONG, WAIT_MS);
        assert.equal(p1.seq, 7);
        assert.equal(p1.route, 0);
        assert.equal(p1.body.length, 0);
        await c.hello({ token: 'pinger' }, WAIT_MS);
        ping(c, 0xffffffff);
        ping(c, 1);
        assert.equal((await c.next((f) => f.type === FrameType.PONG, WAIT_MS)).seq, 0xffffffff);
        assert.equal((await c.next((f) => f.type === FrameType.PONG, WAIT_MS)).seq, 1);
        await c.close();
      }));

    it('should close a link silent for 3x heartbeat and detach its session', () =>
      // auth none keeps the login well inside the 600ms limit even on a loaded machine.
      withGate({ heartbeatMs: 200, auth: 'none' }, async (h) => {
        const c = await open(h, t);
        // The HELLO is the last frame the gate gets, so its silence clock starts after this.
        const started = Date.now();
        const w = await c.hello({ token: 'silent' }, WAIT_MS);
        assert.equal(w.heartbeatMs, 200);
        await withTimeout(c.closed, WAIT_MS, 'the gate to close a link silent for 3x heartbeat');
        const took = Date.now() - started;
        assert.ok(took >= 550, `closed after ${took}ms of silence, before 3x heartbeat (600ms)`);
        const p = await waitFor(
          'the player to be detached',
          () => h.gate.gate.sessions.player('silent')?.state === 'detached' && h.gate.gate.sessions.player('silent'),
          WAIT_MS,
        );
        assert.equal(p.sessionId, w.sessionId);
        const viaApi = await api(h, 'GET', '/v1/players/silent');
        assert.equal(viaApi.status, 200);
        assert.equal(viaApi.body.state, 'detached');
        await waitFor('a detached event', () => h.backend.events().some((e) => e.playerId === 'silent' && e.type === 'detached'), WAIT_MS);
        assert.equal(offlineReason(h, 'silent'), undefined, 'silence detaches; it does not end the session');
      }));

    it('should keep a link alive while it sends PINGs', () =>
      withGate({ heartbeatMs: 400 }, async (h) => {
        const c = await open(h, t);
        await c.hello({ token: 'lively' }, WAIT_MS);
        // 2.5 s is over twice the 1.2 s silence limit; a PING every 30 ms is life. (The margin is
        // wide because client and gate share one event loop: a stall on a loaded machine delays both.)
        await keepSending((n) => ping(c, n), 30, 2_500, c.closed);
        assert.equal(c.isClosed, false, 'a pinging link must not be closed');
        assert.equal((await api(h, 'GET', '/v1/players/lively')).body.state, 'online');
        await c.close();
      }));

    it('should end an idle session with BYE idle even while it PINGs', () =>
      withGate({ idleTimeoutMs: 200, heartbeatMs: 1_000 }, async (h) => {
        const c = await open(h, t);
        // The idle clock starts at login, after the HELLO is sent.
        const started = Date.now();
        await c.hello({ token: 'idler' }, WAIT_MS);
        const pinging = keepSending((n) => ping(c, n), 40, WAIT_MS, c.closed);
        const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
        const took = Date.now() - started;
        assert.equal((json(bye) as ByeBody).code, 'idle');
        assert.ok(took >= 150, `BYE idle after ${took}ms, before the 200ms idle timeout`);
        await withTimeout(c.closed, WAIT_MS, 'the gate to close after BYE idle');
        const pings = await pinging;
        assert.ok(pings >= 2, `the client should have been pinging (sent ${pings})`);
        await waitFor('an offline event', () => offlineReason(h, 'idler'), WAIT_MS);
        assert.equal(offlineReason(h, 'idler'), 'idle');
        assert.equal((await api(h, 'GET', '/v1/players/idler')).status, 404);
      }));

    it('should keep a session alive while it sends REQUESTs', () =>
      // 1 s: a stall of a loaded machine (client and gate share one event loop) must not fake idleness.
      withGate({ idleTimeoutMs: 1_000, heartbeatMs: 5_000 }, async (h) => {
        const c = await open(h, t);
        await c.hello({ token: 'busy' }, WAIT_MS);
        // 2.5 s of requests every 30 ms: over twice the idle timeout, never 1 s without one.
        const sent = await keepSending((n) => c.request(1, n, { n }), 30, 2_500, c.closed);
        assert.equal(c.isClosed, false, 'a session sending REQUESTs must not be idled');
        for (let seq = 1; seq <= sent; seq++) await c.next((f) => f.type === FrameType.RESPONSE && f.seq === seq, WAIT_MS);
        // Then silence: the idle clock runs out.
        const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
        assert.equal((json(bye) as ByeBody).code, 'idle');
      }));
  });
}

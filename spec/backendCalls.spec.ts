/**
 * The gate's control-plane calls to the backend (CONTRACT §3): PUT /gates at start and then
 * periodically; POST /events as batched JSON arrays, retried with backoff, in order per player,
 * nothing lost or duplicated; and a backend that is down or failing never stops the gate serving.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { testConfig, type GateConfig } from '../lib/config.js';
import { FrameType } from '../lib/frame.js';
import { serve } from '../lib/serve.js';
import { startGate, type Harness } from './helpers/gateHarness.js';
import { defaultHandler, type FakeHandler, type RecordedCall } from './helpers/fakeBackend.js';
import { connectTcp, json, type TestClient } from './helpers/testClient.js';
import { waitFor } from './helpers/wait.js';

const WAIT_MS = 5_000;
/** PUT /gates period for these gates, so "periodically" is observable quickly. */
const REGISTER_EVERY_MS = 40;

async function gate(t: TestContext, over: Partial<GateConfig> = {}, handler?: FakeHandler): Promise<Harness> {
  const h = await startGate(over, handler);
  t.after(() => h.close());
  return h;
}

async function login(t: TestContext, h: Harness, playerId: string): Promise<{ c: TestClient; sessionId: string; resumeToken: string }> {
  const c = await connectTcp(h.tcpPort);
  t.after(() => c.destroy());
  const w = await c.hello({ token: playerId });
  return { c, sessionId: w.sessionId, resumeToken: w.resumeToken };
}

const pathOf = (c: RecordedCall): string => c.path.split('?')[0]!;
const isPut = (c: RecordedCall): boolean => c.method === 'PUT' && pathOf(c).startsWith('/gates/');
const isEvents = (c: RecordedCall): boolean => c.method === 'POST' && pathOf(c) === '/events';
const body = (c: RecordedCall): any => JSON.parse(c.body.toString('utf8'));

/** A logout BYE from the client: ends the session (offline event). */
const logout = (c: TestClient): void => c.send({ type: FrameType.BYE, flags: 0, route: 0, seq: 0, body: Buffer.from(JSON.stringify({ code: 'logout' })) });

describe('backend calls: PUT /gates', () => {
  it('should register at start with {gateId, tcp, ws, api, startedAt, sessions} and x-gate-id', async (t) => {
    const before = Date.now();
    const h = await gate(t, { gateId: 'reg-gate' });
    const put = await h.backend.waitForCall(isPut, 'PUT /gates at start', WAIT_MS);
    assert.equal(pathOf(put), '/gates/reg-gate');
    assert.equal(put.headers['x-gate-id'], 'reg-gate');
    assert.match(String(put.headers['content-type']), /application\/json/);
    const b = body(put);
    assert.deepEqual(Object.keys(b).sort(), ['api', 'gateId', 'sessions', 'startedAt', 'tcp', 'ws']);
    assert.equal(b.gateId, 'reg-gate');
    assert.equal(b.tcp, h.gate.addresses.tcp);
    assert.equal(b.ws, h.gate.addresses.ws);
    assert.equal(b.api, h.api);
    assert.match(b.tcp, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(b.tcp, '127.0.0.1:0', 'the bound port, not the configured 0');
    assert.equal(typeof b.startedAt, 'number');
    assert.ok(b.startedAt >= before - 1000 && b.startedAt <= Date.now(), `startedAt ${b.startedAt} is when the gate started`);
    assert.equal(b.sessions, 0);
  });

  it('should repeat the registration periodically with the current session count', async (t) => {
    const h = await gate(t, { registerEveryMs: REGISTER_EVERY_MS });
    await waitFor('three PUT /gates', () => h.backend.calls.filter(isPut).length >= 3, WAIT_MS);
    await login(t, h, 'p1');
    await login(t, h, 'p2');
    const put = await h.backend.waitForCall((c) => isPut(c) && body(c).sessions === 2, 'a PUT /gates with sessions: 2', WAIT_MS);
    assert.equal(body(put).startedAt, body(h.backend.calls.find(isPut)!).startedAt, 'startedAt stays the same');
  });

  it('should keep serving and keep retrying the registration while PUT /gates answers 500', async (t) => {
    const handler: FakeHandler = (req) => (isPut(req) ? { status: 500, body: { error: 'down' } } : defaultHandler(req));
    const h = await gate(t, { registerEveryMs: REGISTER_EVERY_MS }, handler);
    await waitFor('three failed PUT /gates', () => h.backend.calls.filter((c) => isPut(c) && c.status === 500).length >= 3, WAIT_MS);
    const { c } = await login(t, h, 'p');
    c.request(1, 1, { ping: true });
    const r = await c.next((f) => f.type === FrameType.RESPONSE, WAIT_MS);
    assert.deepEqual(json(r), { ping: true });
    assert.equal(h.gate.gate.ready, true);
  });
});

describe('backend calls: POST /events', () => {
  it('should post online, detached, resumed and offline as JSON arrays with x-gate-id', async (t) => {
    const h = await gate(t, { gateId: 'ev-gate' });
    const before = Date.now();
    const { c, sessionId, resumeToken } = await login(t, h, 'eve');
    await c.destroy();
    await waitFor('eve detached', () => h.gate.gate.sessions.player('eve')?.state === 'detached', WAIT_MS);
    const c2 = await connectTcp(h.tcpPort);
    t.after(() => c2.destroy());
    const w = await c2.hello({ token: 'eve', resume: { sessionId, resumeToken, lastSeq: 0 } });
    assert.equal(w.resumed, true);
    logout(c2);
    await c2.closed;
    const evs = await waitFor('four events for eve', () => (h.backend.events().length >= 4 ? h.backend.events() : null), WAIT_MS);
    assert.deepEqual(
      evs.map((e) => e.type),
      ['online', 'detached', 'resumed', 'offline'],
    );
    for (const e of evs) {
      assert.equal(e.playerId, 'eve');
      assert.equal(e.sessionId, sessionId);
      assert.equal(e.gateId, 'ev-gate');
      assert.equal(typeof e.at, 'number');
      assert.ok((e.at as number) >= before - 1000 && (e.at as number) <= Date.now());
      const keys = Object.keys(e).sort();
      assert.ok(
        ['at,gateId,playerId,sessionId,type', 'at,gateId,playerId,reason,sessionId,type'].includes(keys.join(',')),
        `unexpected event fields ${keys.join(',')}`,
      );
    }
    assert.equal(typeof evs[1]!.reason, 'string', 'detached carries a reason');
    assert.equal(evs[3]!.reason, 'logout');
    for (const post of h.backend.calls.filter(isEvents)) {
      assert.ok(Array.isArray(body(post)), 'every /events body is a JSON array');
      assert.equal(post.headers['x-gate-id'], 'ev-gate');
    }
  });

  it('should retry failed posts with growing backoff, in order per player, losing and duplicating nothing', async (t) => {
    const FAILURES = 2;
    let failed = 0;
    const handler: FakeHandler = (req) => (isEvents(req) && failed++ < FAILURES ? { status: 500, body: { error: 'busy' } } : defaultHandler(req));
    const h = await gate(t, {}, handler);
    const players = ['r1', 'r2', 'r3'];
    const clients = [];
    for (const p of players) clients.push((await login(t, h, p)).c);
    for (const c of clients) await c.destroy(); // detached
    for (const p of players) await waitFor(`${p} detached`, () => h.gate.gate.sessions.player(p)?.state === 'detached', WAIT_MS);
    for (const p of players) {
      const c = await connectTcp(h.tcpPort);
      t.after(() => c.destroy());
      await c.hello({ token: p }); // a fresh login ends the detached session: offline (replaced), then online
    }
    const expected = players.length * 4; // online, detached, offline(replaced), online
    const accepted = await waitFor(
      `${expected} accepted events`,
      () => (h.backend.events({ acceptedOnly: true }).length >= expected ? h.backend.events({ acceptedOnly: true }) : null),
      WAIT_MS,
    );
    assert.equal(accepted.length, expected, 'nothing duplicated');
    for (const p of players) {
      const mine = accepted.filter((e) => e.playerId === p) as { type: string; reason?: string; sessionId: string }[];
      assert.deepEqual(
        mine.map((e) => (e.reason === undefined || e.type === 'detached' ? e.type : `${e.type}:${e.reason}`)),
        ['online', 'detached', 'offline:replaced', 'online'],
        `events of ${p} in order`,
      );
      assert.notEqual(mine[0]!.sessionId, mine[3]!.sessionId, 'the new login is a new session');
    }
    const posts = h.backend.calls.filter(isEvents);
    assert.deepEqual(
      posts.slice(0, FAILURES + 1).map((c) => c.status),
      [500, 500, 204],
    );
    const firstBatch = body(posts[0]!) as unknown[];
    assert.deepEqual((body(posts[1]!) as unknown[]).slice(0, firstBatch.length), firstBatch, 'a retry re-sends the failed batch first');
    const gap1 = posts[1]!.at - posts[0]!.at;
    const gap2 = posts[2]!.at - posts[1]!.at;
    assert.ok(gap1 >= 150, `first retry waited ${gap1}ms, expected a backoff`);
    assert.ok(gap2 > gap1, `second retry waited ${gap2}ms, not longer than the first (${gap1}ms)`);
  });
});

describe('backend calls: a backend that is down', () => {
  it('should serve clients with --auth none while the upstream refuses connections: login works, requests get UPSTREAM_UNAVAILABLE', async (t) => {
    // A port nothing listens on: bind one, note it, close it.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const cfg = testConfig({ upstream: `http://127.0.0.1:${port}`, auth: 'none', upstreamRetries: 0, upstreamTimeoutMs: 1_000, registerEveryMs: REGISTER_EVERY_MS });
    const running = await serve(cfg, { logger: pino({ level: 'silent' }) });
    let revived: ReturnType<typeof createServer> | null = null;
    t.after(async () => {
      // Bring a backend up on that port so shutdown's event flush and DELETE /gates finish quickly.
      revived = createServer((_req, res) => res.writeHead(204).end());
      await new Promise<void>((resolve) => {
        revived!.once('error', () => resolve()); // port taken meanwhile: shutdown just takes longer
        revived!.listen(port, '127.0.0.1', resolve);
      });
      await running.shutdown();
      revived.closeAllConnections();
      await new Promise<void>((resolve) => revived!.close(() => resolve()));
    });
    assert.equal(running.gate.ready, true);
    const tcpPort = Number(running.addresses.tcp!.split(':').pop());
    const c = await connectTcp(tcpPort);
    t.after(() => c.destroy());
    const w = await c.hello({ token: 'lonely' });
    assert.equal(w.playerId, 'lonely');
    c.request(1, 1, { q: 1 });
    const err = await c.next((f) => f.seq === 1, WAIT_MS);
    assert.equal(err.type, FrameType.ERROR, `expected ERROR, got type ${err.type}`);
    assert.equal((json(err) as { code: string }).code, 'UPSTREAM_UNAVAILABLE');
    c.send({ type: FrameType.PING, flags: 0, route: 0, seq: 9, body: Buffer.alloc(0) });
    assert.equal((await c.next((f) => f.type === FrameType.PONG, WAIT_MS)).seq, 9, 'the connection still works');
    const res = await fetch(`http://${running.addresses.api}/readyz`);
    assert.equal(res.status, 200, 'still ready');
  });

  it('should keep serving when every backend connection is dropped, and recover when it returns', async (t) => {
    const h = await gate(t, { auth: 'none', upstreamRetries: 0, registerEveryMs: REGISTER_EVERY_MS }, () => ({ destroy: true }));
    await waitFor('a few dropped PUT /gates', () => h.backend.calls.filter(isPut).length >= 2, WAIT_MS);
    const { c } = await login(t, h, 'dropped');
    c.request(1, 1, {});
    const err = await c.next((f) => f.seq === 1, WAIT_MS);
    assert.equal((json(err) as { code: string }).code, 'UPSTREAM_UNAVAILABLE');
    h.backend.setHandler(defaultHandler);
    await h.backend.waitForCall((x) => isEvents(x) && x.status === 204, 'the queued online event to land once the backend is back', WAIT_MS);
    const online = h.backend.events({ acceptedOnly: true }).filter((e) => e.playerId === 'dropped');
    assert.deepEqual(
      online.map((e) => e.type),
      ['online'],
    );
    c.request(1, 2, { back: 1 });
    assert.deepEqual(json(await c.next((f) => f.seq === 2 && f.type === FrameType.RESPONSE, WAIT_MS)), { back: 1 });
  });
});

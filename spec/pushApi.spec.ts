/**
 * The push and admin API (CONTRACT §4) against a real gate: pushes reach real clients with the
 * right route, seq and bytes; batch, broadcast, kick, players, stats, health and metrics answer
 * as documented; the bearer key guards /v1/*; malformed input gets 400/413 with `{error, message}`.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType, type Frame } from '../lib/frame.js';
import type { GateConfig } from '../lib/config.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, connectWs, json, type TestClient } from './helpers/testClient.js';
import { waitFor } from './helpers/wait.js';

/** --max-frame for these gates: small, so the frame_too_large case needs no big bodies. */
const MAX_FRAME = 4096;
/** Bound on every wait in this file, ms. */
const WAIT_MS = 5_000;

/** A gate torn down when the test ends. */
async function gate(t: TestContext, over: Partial<GateConfig> = {}): Promise<Harness> {
  const h = await startGate({ maxFrame: MAX_FRAME, ...over });
  t.after(() => h.close());
  return h;
}

/** A logged-in client for `playerId` (the fake backend's /connect names the player after the token), closed when the test ends. */
async function login(t: TestContext, h: Harness, playerId: string, transport: 'tcp' | 'ws' = 'tcp'): Promise<TestClient> {
  const c = transport === 'tcp' ? await connectTcp(h.tcpPort) : await connectWs(h.wsPort);
  t.after(() => c.destroy());
  const w = await c.hello({ token: playerId });
  assert.equal(w.playerId, playerId);
  return c;
}

const isPush = (f: Frame): boolean => f.type === FrameType.PUSH;
const nextPush = (c: TestClient): Promise<Frame> => c.next(isPush, WAIT_MS);

/** Waits until the gate (in-process) sees the player's session in `state`. */
const untilState = (h: Harness, playerId: string, state: 'online' | 'detached'): Promise<unknown> =>
  waitFor(`player ${playerId} to be ${state}`, () => h.gate.gate.sessions.player(playerId)?.state === state, WAIT_MS);

/** The sum of every sample of a metric (all label sets) in Prometheus text. */
function metricSum(text: string, name: string): number {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    seen = true;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  assert.ok(seen, `metric ${name} not found in /metrics`);
  return sum;
}

async function metrics(h: Harness): Promise<string> {
  const res = await fetch(`${h.apiUrl}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

describe('push API: /v1/push', () => {
  it('should deliver data as a PUSH with the route, seq 1, 2, 3 and the UTF-8 JSON text of data', async (t) => {
    const h = await gate(t);
    const c = await login(t, h, 'alice');
    const data = [{ hello: 'wörld', n: 1 }, ['x', 2, null], 'plain string'];
    for (const [i, d] of data.entries()) {
      const r = await api(h, 'POST', '/v1/push', { playerId: 'alice', route: 40 + i, data: d });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, { seq: i + 1, status: 'sent' });
    }
    for (const [i, d] of data.entries()) {
      const f = await nextPush(c);
      assert.equal(f.route, 40 + i);
      assert.equal(f.seq, i + 1);
      assert.equal(f.flags, 0);
      assert.equal(f.body.toString('utf8'), JSON.stringify(d));
    }
  });

  it('should deliver body64 as the exact bytes over WebSocket', async (t) => {
    const h = await gate(t);
    const c = await login(t, h, 'bob', 'ws');
    const bytes = Buffer.from([0, 1, 2, 250, 255, 0x7b]);
    const r = await api(h, 'POST', '/v1/push', { playerId: 'bob', route: 7, body64: bytes.toString('base64') });
    assert.deepEqual([r.status, r.body], [200, { seq: 1, status: 'sent' }]);
    const f = await nextPush(c);
    assert.deepEqual([f.route, f.seq], [7, 1]);
    assert.deepEqual(f.body, bytes);
  });

  it('should answer buffered for a detached session and replay the push on resume', async (t) => {
    const h = await gate(t);
    const c = await connectTcp(h.tcpPort);
    t.after(() => c.destroy());
    const w = await c.hello({ token: 'carol' });
    const first = await api(h, 'POST', '/v1/push', { playerId: 'carol', route: 1, data: { n: 1 } });
    assert.deepEqual(first.body, { seq: 1, status: 'sent' });
    await nextPush(c);
    await c.destroy();
    await untilState(h, 'carol', 'detached');
    const r = await api(h, 'POST', '/v1/push', { playerId: 'carol', route: 1, data: { n: 2 } });
    assert.deepEqual([r.status, r.body], [200, { seq: 2, status: 'buffered' }]);
    const again = await connectTcp(h.tcpPort);
    t.after(() => again.destroy());
    const w2 = await again.hello({ token: 'carol', resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 1 } });
    assert.equal(w2.resumed, true);
    const f = await nextPush(again);
    assert.deepEqual([f.seq, json(f)], [2, { n: 2 }]);
  });

  it('should answer 404 player_not_found for a player with no session', async (t) => {
    const h = await gate(t);
    const r = await api(h, 'POST', '/v1/push', { playerId: 'nobody', route: 1, data: {} });
    assert.equal(r.status, 404);
    assert.equal(r.body.error, 'player_not_found');
  });

  it('should trim the buffer when the client ACKs', async (t) => {
    const h = await gate(t);
    const c = await login(t, h, 'dave');
    for (let i = 1; i <= 3; i++) await api(h, 'POST', '/v1/push', { playerId: 'dave', route: 1, data: i });
    for (let i = 1; i <= 3; i++) assert.equal((await nextPush(c)).seq, i);
    const before = await api(h, 'GET', '/v1/players/dave');
    assert.equal(before.body.buffered, 3);
    assert.equal(before.body.pushSeq, 3);
    c.send({ type: FrameType.ACK, flags: 0, route: 0, seq: 2, body: Buffer.alloc(0) });
    await waitFor('the ACK to trim the buffer to 1', () => h.gate.gate.sessions.player('dave')?.buffered === 1, WAIT_MS);
    const after = await api(h, 'GET', '/v1/players/dave');
    assert.equal(after.body.buffered, 1);
    c.send({ type: FrameType.ACK, flags: 0, route: 0, seq: 3, body: Buffer.alloc(0) });
    await waitFor('the ACK to empty the buffer', () => h.gate.gate.sessions.player('dave')?.buffered === 0, WAIT_MS);
    assert.equal((await api(h, 'GET', '/v1/players/dave')).body.buffered, 0);
  });
});

describe('push API: a push id makes a retried POST safe', () => {
  it('should store a push POSTed twice with the same id once, answering the first seq both times', async (t) => {
    const h = await gate(t);
    const c = await login(t, h, 'erin');
    const first = await api(h, 'POST', '/v1/push', { playerId: 'erin', route: 3, data: { n: 1 }, id: 'order-17' });
    assert.deepEqual([first.status, first.body], [200, { seq: 1, status: 'sent' }]);
    // The backend lost the answer and retries: same id, same receipt, flagged; nothing new stored or sent.
    const retry = await api(h, 'POST', '/v1/push', { playerId: 'erin', route: 3, data: { n: 1 }, id: 'order-17' });
    assert.deepEqual([retry.status, retry.body], [200, { seq: 1, status: 'sent', duplicate: true }]);
    const other = await api(h, 'POST', '/v1/push', { playerId: 'erin', route: 3, data: { n: 2 }, id: 'order-18' });
    assert.deepEqual(other.body, { seq: 2, status: 'sent' });
    const plain = await api(h, 'POST', '/v1/push', { playerId: 'erin', route: 3, data: { n: 3 } });
    assert.deepEqual(plain.body, { seq: 3, status: 'sent' }, 'a push without an id is never deduplicated');
    assert.deepEqual([(await nextPush(c)).seq, (await nextPush(c)).seq, (await nextPush(c)).seq], [1, 2, 3]);
    assert.equal(h.gate.gate.sessions.player('erin')?.pushSeq, 3);
    const dup = (await metrics(h)).split('\n').find((l) => l.startsWith('gate_pushes_total{') && l.includes('status="duplicate"'));
    assert.ok(dup?.endsWith(' 1'), `gate_pushes_total{status="duplicate"} is 1: ${dup}`);
  });

  it('should deduplicate batch items by id, within a batch and across retried batches, per player', async (t) => {
    const h = await gate(t);
    await login(t, h, 'a');
    const b = await login(t, h, 'b');
    await b.destroy();
    await untilState(h, 'b', 'detached');
    const batch = {
      messages: [
        { playerId: 'a', route: 1, data: 1, id: 'x' },
        { playerId: 'b', route: 1, data: 1, id: 'x' }, // ids are per player: b's x is another push
        { playerId: 'a', route: 1, data: 1, id: 'x' }, // repeated inside the batch
      ],
    };
    const r = await api(h, 'POST', '/v1/push/batch', batch);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.results, [{ seq: 1, status: 'sent' }, { seq: 1, status: 'buffered' }, { seq: 1, status: 'sent', duplicate: true }]);
    const again = await api(h, 'POST', '/v1/push/batch', batch);
    assert.deepEqual(again.body.results, [
      { seq: 1, status: 'sent', duplicate: true },
      { seq: 1, status: 'buffered', duplicate: true },
      { seq: 1, status: 'sent', duplicate: true },
    ]);
    assert.deepEqual([h.gate.gate.sessions.player('a')?.pushSeq, h.gate.gate.sessions.player('b')?.buffered], [1, 1]);
  });

  it('should refuse a bad id with 400 naming it', async (t) => {
    const h = await gate(t);
    await login(t, h, 'a');
    for (const id of ['', 7, 'x'.repeat(129), null]) {
      const r = await api(h, 'POST', '/v1/push', { playerId: 'a', route: 1, data: 1, id });
      assert.equal(r.status, 400, JSON.stringify(id));
      assert.match(r.body.message, /\bid\b/);
    }
    const rb = await api(h, 'POST', '/v1/push/batch', { messages: [{ playerId: 'a', route: 1, data: 1, id: 3 }] });
    assert.equal(rb.status, 400);
    assert.match(rb.body.message, /messages\[0\]: id/);
    assert.equal(h.gate.gate.sessions.player('a')?.pushSeq, 0, 'nothing was pushed');
  });
});

describe('push API: /v1/push/batch and /v1/broadcast', () => {
  it('should answer batch results in order, including a missing player, and deliver each push', async (t) => {
    const h = await gate(t);
    const a = await login(t, h, 'a');
    const b = await login(t, h, 'b');
    const r = await api(h, 'POST', '/v1/push/batch', {
      messages: [
        { playerId: 'a', route: 5, data: { i: 0 } },
        { playerId: 'ghost', route: 5, data: { i: 1 } },
        { playerId: 'b', route: 6, body64: Buffer.from('raw').toString('base64') },
        { playerId: 'a', route: 7, data: { i: 3 } },
      ],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.results.length, 4);
    assert.deepEqual(r.body.results[0], { seq: 1, status: 'sent' });
    assert.equal(r.body.results[1].error, 'player_not_found');
    assert.deepEqual(r.body.results[2], { seq: 1, status: 'sent' });
    assert.deepEqual(r.body.results[3], { seq: 2, status: 'sent' });
    const a1 = await nextPush(a);
    const a2 = await nextPush(a);
    assert.deepEqual([a1.route, a1.seq, json(a1)], [5, 1, { i: 0 }]);
    assert.deepEqual([a2.route, a2.seq, json(a2)], [7, 2, { i: 3 }]);
    const b1 = await nextPush(b);
    assert.deepEqual([b1.route, b1.seq, b1.body.toString()], [6, 1, 'raw']);
  });

  it('should refuse a batch with a malformed message with 400 naming its index, delivering nothing', async (t) => {
    const h = await gate(t);
    await login(t, h, 'a');
    const r = await api(h, 'POST', '/v1/push/batch', {
      messages: [
        { playerId: 'a', route: 1, data: 1 },
        { playerId: 'a', route: 1, data: 2 },
        { playerId: 'a', data: 3 }, // no route
      ],
    });
    assert.equal(r.status, 400);
    assert.equal(typeof r.body.error, 'string');
    assert.match(r.body.message, /messages\[2\]/);
    const info = await api(h, 'GET', '/v1/players/a');
    assert.equal(info.body.pushSeq, 0, 'nothing of a refused batch is delivered');
    assert.equal(info.body.buffered, 0);
  });

  it('should broadcast to the named players and count sent, buffered and missing', async (t) => {
    const h = await gate(t);
    const on = await login(t, h, 'on');
    const off = await login(t, h, 'off');
    await off.destroy();
    await untilState(h, 'off', 'detached');
    const r = await api(h, 'POST', '/v1/broadcast', { playerIds: ['on', 'off', 'gone'], route: 9, data: { hi: 1 } });
    assert.deepEqual([r.status, r.body], [200, { sent: 1, buffered: 1, missing: 1 }]);
    const f = await nextPush(on);
    assert.deepEqual([f.route, f.seq, json(f)], [9, 1, { hi: 1 }]);
    assert.equal(h.gate.gate.sessions.player('off')?.buffered, 1);
  });

  it('should broadcast to every session when playerIds is absent', async (t) => {
    const h = await gate(t);
    const x = await login(t, h, 'x');
    const y = await login(t, h, 'y', 'ws');
    const z = await login(t, h, 'z');
    await z.destroy();
    await untilState(h, 'z', 'detached');
    const r = await api(h, 'POST', '/v1/broadcast', { route: 3, body64: Buffer.from('all').toString('base64') });
    assert.deepEqual([r.status, r.body], [200, { sent: 2, buffered: 1, missing: 0 }]);
    for (const c of [x, y]) assert.equal((await nextPush(c)).body.toString(), 'all');
  });
});

describe('push API: /v1/kick and /v1/players', () => {
  it('should kick: BYE kicked to the client, kicked:true, an offline event with reason kicked', async (t) => {
    const h = await gate(t);
    const c = await login(t, h, 'kim');
    const r = await api(h, 'POST', '/v1/kick', { playerId: 'kim', reason: 'cheating' });
    assert.deepEqual([r.status, r.body], [200, { kicked: true }]);
    const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
    assert.deepEqual(json(bye), { code: 'kicked', reason: 'cheating' }, 'the BYE carries the kick reason');
    await c.closed;
    const ev = await waitFor('an offline event for kim', () => h.backend.events().find((e) => e.type === 'offline' && e.playerId === 'kim'), WAIT_MS);
    assert.equal(ev.reason, 'kicked');
    assert.equal((await api(h, 'GET', '/v1/players/kim')).status, 404, 'a kicked session is gone');
  });

  it('should answer 404 when kicking a player with no session', async (t) => {
    const h = await gate(t);
    const r = await api(h, 'POST', '/v1/kick', { playerId: 'nobody' });
    assert.equal(r.status, 404);
    assert.equal(r.body.error, 'player_not_found');
  });

  it('should describe a player: online, then detached, with the time of its last REQUEST; 404 for unknown', async (t) => {
    const h = await gate(t, { gateId: 'gate-players' });
    const c = await login(t, h, 'pat');
    await api(h, 'POST', '/v1/push', { playerId: 'pat', route: 1, data: 1 });
    const on = await api(h, 'GET', '/v1/players/pat');
    assert.equal(on.status, 200);
    assert.deepEqual(Object.keys(on.body).sort(), ['buffered', 'gateId', 'lastRequestAt', 'playerId', 'pushSeq', 'sessionId', 'state']);
    assert.equal(on.body.lastRequestAt, null, 'no REQUEST yet');
    assert.equal(on.body.playerId, 'pat');
    assert.equal(typeof on.body.sessionId, 'string');
    assert.ok(on.body.sessionId.length > 0);
    assert.equal(on.body.state, 'online');
    assert.equal(on.body.pushSeq, 1);
    assert.equal(on.body.buffered, 1);
    assert.equal(on.body.gateId, 'gate-players');
    const before = Date.now();
    c.request(1, 1, { hi: 1 });
    await c.next((f) => f.type === FrameType.RESPONSE, WAIT_MS);
    const after = (await api(h, 'GET', '/v1/players/pat')).body.lastRequestAt;
    assert.ok(typeof after === 'number' && after >= before && after <= Date.now(), `lastRequestAt ${after} is the REQUEST's arrival`);
    await c.destroy();
    await untilState(h, 'pat', 'detached');
    const off = await api(h, 'GET', '/v1/players/pat');
    assert.equal(off.body.state, 'detached');
    assert.equal(off.body.sessionId, on.body.sessionId);
    const none = await api(h, 'GET', '/v1/players/nobody');
    assert.equal(none.status, 404);
    assert.equal(none.body.error, 'player_not_found');
  });
});

describe('push API: stats, health, metrics', () => {
  it('should count connections and sessions in /v1/stats', async (t) => {
    const h = await gate(t);
    const empty = await api(h, 'GET', '/v1/stats');
    assert.equal(empty.status, 200);
    for (const k of ['connections', 'sessions', 'inflight', 'queued']) assert.equal(empty.body[k], 0, `${k} starts at 0`);
    await login(t, h, 's1');
    const s2 = await login(t, h, 's2', 'ws');
    const two = await api(h, 'GET', '/v1/stats');
    assert.equal(two.body.connections, 2);
    assert.equal(two.body.sessions, 2);
    await s2.destroy();
    await untilState(h, 's2', 'detached');
    await waitFor('the closed connection to be uncounted', () => h.gate.gate.stats().connections === 1, WAIT_MS);
    const one = await api(h, 'GET', '/v1/stats');
    assert.equal(one.body.connections, 1);
    assert.equal(one.body.sessions, 2, 'a detached session still counts');
  });

  it('should answer /healthz 200 and /readyz 200 while serving', async (t) => {
    const h = await gate(t);
    assert.equal((await api(h, 'GET', '/healthz')).status, 200);
    assert.equal((await api(h, 'GET', '/readyz')).status, 200);
  });

  it('should expose the documented metrics and move the counters', async (t) => {
    const h = await gate(t);
    const before = await metrics(h);
    for (const name of ['gate_connections', 'gate_sessions', 'gate_requests_total', 'gate_upstream_duration_seconds', 'gate_pushes_total'])
      assert.match(before, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is declared`);
    assert.match(before, /^# TYPE gate_upstream_duration_seconds histogram$/m);
    const c = await login(t, h, 'm');
    c.request(1, 1, { q: 1 });
    await c.next((f) => f.type === FrameType.RESPONSE, WAIT_MS);
    await api(h, 'POST', '/v1/push', { playerId: 'm', route: 1, data: 1 });
    await nextPush(c);
    const after = await metrics(h);
    assert.match(after, /^gate_connections\{[^}]*transport="tcp"[^}]*\} 1$/m);
    assert.match(after, /^gate_sessions\{[^}]*state="online"[^}]*\} 1$/m);
    assert.match(after, /^gate_requests_total\{[^}]*outcome="ok"[^}]*\} 1$/m);
    assert.match(after, /^gate_pushes_total\{[^}]*status="sent"[^}]*\} 1$/m);
    assert.equal(metricSum(after, 'gate_upstream_duration_seconds_count'), 1);
  });
});

describe('push API: bearer key', () => {
  it('should answer 401 without or with a wrong bearer, 200 with the right one; /healthz needs no key', async (t) => {
    const h = await gate(t, { apiKey: 's3cret' });
    assert.equal((await api(h, 'GET', '/v1/stats')).status, 401);
    const wrong = await api(h, 'GET', '/v1/stats', undefined, { authorization: 'Bearer nope' });
    assert.equal(wrong.status, 401);
    assert.equal(typeof wrong.body.error, 'string');
    assert.equal((await api(h, 'POST', '/v1/push', { playerId: 'p', route: 1, data: 1 })).status, 401);
    assert.equal((await api(h, 'GET', '/v1/stats', undefined, { authorization: 'Bearer s3cret' })).status, 200);
    assert.equal((await api(h, 'GET', '/healthz')).status, 200);
    assert.equal((await api(h, 'GET', '/readyz')).status, 200);
    assert.equal((await api(h, 'GET', '/metrics')).status, 200);
  });

  it('should require the key however the /v1/ path is percent-encoded', async (t) => {
    const h = await gate(t, { apiKey: 's3cret' });
    await login(t, h, 'enc');
    for (const path of ['/%761/push', '/v%31/push', '/%76%31/%70ush']) {
      const r = await api(h, 'POST', path, { playerId: 'enc', route: 1, data: 1 });
      assert.equal(r.status, 401, `${path} without a key`);
    }
    assert.equal((await api(h, 'GET', '/%761/stats')).status, 401);
    assert.equal(h.gate.gate.sessions.player('enc')?.pushSeq, 0, 'nothing was pushed without the key');
  });
});

describe('push API: malformed input', () => {
  const bad = async (h: Harness, body: unknown, path = '/v1/push'): Promise<{ error: string; message: string }> => {
    const r = await api(h, 'POST', path, body);
    assert.equal(r.status, 400, `expected 400 for ${JSON.stringify(body)}, got ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body.error, 'string');
    assert.equal(typeof r.body.message, 'string');
    assert.ok(r.body.message.length > 0);
    return r.body;
  };

  it('should answer 400 {error, message} to malformed JSON', async (t) => {
    const h = await gate(t);
    await bad(h, '{"playerId": "a", route');
  });

  it('should answer 400 naming the problem: missing route, both data and body64, bad base64, neither', async (t) => {
    const h = await gate(t);
    await login(t, h, 'a');
    assert.match((await bad(h, { playerId: 'a', data: 1 })).message, /route/);
    assert.match((await bad(h, { playerId: 'a', route: 1, data: 1, body64: 'AA==' })).message, /data|body64/);
    assert.match((await bad(h, { playerId: 'a', route: 1, body64: '!!not base64!!' })).message, /body64/);
    assert.match((await bad(h, { playerId: 'a', route: 1 })).message, /data|body64/);
    assert.match((await bad(h, { route: 1, data: 1 })).message, /playerId/);
    assert.equal(h.gate.gate.sessions.player('a')?.pushSeq, 0, 'nothing was pushed');
  });

  it('should read a JSON body whatever its content type (curl -d sends form-urlencoded)', async (t) => {
    const h = await gate(t);
    await login(t, h, 'ct');
    const msg = JSON.stringify({ playerId: 'ct', route: 1, data: { ok: 1 } });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-8']) {
      const r = await api(h, 'POST', '/v1/push', msg, { 'content-type': type });
      assert.equal(r.status, 200, `${type}: ${JSON.stringify(r.body)}`);
    }
    const none = await fetch(`${h.apiUrl}/v1/push`, { method: 'POST', body: new Uint8Array(Buffer.from(msg)) });
    assert.equal(none.status, 200, 'no content-type at all');
    assert.equal(h.gate.gate.sessions.player('ct')?.pushSeq, 4);
    const broken = await api(h, 'POST', '/v1/push', '{"playerId":', { 'content-type': 'text/plain' });
    assert.equal(broken.status, 400);
    assert.equal(typeof broken.body.message, 'string');
  });

  it('should answer 413 to a body over 1 MiB', async (t) => {
    const h = await gate(t);
    const r = await api(h, 'POST', '/v1/push', { playerId: 'a', route: 1, data: 'x'.repeat(1024 * 1024 + 10) });
    assert.equal(r.status, 413);
    assert.equal(typeof r.body.error, 'string');
  });

  it('should answer 400 frame_too_large to a push body over --max-frame', async (t) => {
    const h = await gate(t);
    await login(t, h, 'a');
    const r = await api(h, 'POST', '/v1/push', { playerId: 'a', route: 1, data: 'y'.repeat(MAX_FRAME) });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'frame_too_large');
    assert.equal(h.gate.gate.sessions.player('a')?.pushSeq, 0);
  });
});

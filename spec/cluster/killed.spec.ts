/**
 * Cluster mode when gates die: no acknowledged push is lost to a SIGKILL (of the API gate and
 * of the one holding the player), a REQUEST runs once across a move and is answered
 * OUTCOME_UNKNOWN when its gate died mid-call, and a dead gate's sessions are taken over.
 *
 * Every gate is a real process (the CLI); a gate that quietly ran single-node fails, since each
 * member's `listening` line must name its member id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FrameType } from '../../lib/frame.js';
import { WAIT_MS, call, login, nextPrefix, nextPush, push, resume, startMember, type Member } from '../helpers/cluster.js';
import { startFakeBackend, type FakeBackend } from '../helpers/fakeBackend.js';
import { startRedis, type RedisServer } from '../helpers/redisServer.js';
import { json, type TestClient } from '../helpers/testClient.js';
import { waitFor } from '../helpers/wait.js';

describe('cluster mode: a gate killed with SIGKILL loses no acknowledged push', () => {
  let redis: RedisServer;
  let backend: FakeBackend;
  const members: Member[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    backend = await startFakeBackend();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.destroy()));
    await Promise.all(members.map((m) => m.proc.kill()));
    await backend?.close();
    await redis?.stop();
  });

  it('should resume on a survivor with every 200-acknowledged push after lastSeq, exactly once, in order', async () => {
    const prefix = nextPrefix('k');
    const [api, holder, survivor] = await Promise.all(['gK1', 'gK2', 'gK3'].map((n) => startMember(n, redis.url, prefix, backend.url)));
    members.push(api!, holder!, survivor!);
    const { c, w } = await login(holder!, 'durable');
    // 100 pushes through the API gate, 20 at a time, each answered 200 before the next batch.
    const acked: number[] = [];
    for (let i = 0; i < 100; i += 20) {
      const rs = await Promise.all(Array.from({ length: 20 }, (_, k) => push(api!, 'durable', { n: i + k }, `d-${i + k}`)));
      for (const r of rs) {
        assert.equal(r.status, 200);
        acked.push(r.body.seq as number);
      }
    }
    // The client got some of them; then its gate dies without a word, and so does the API gate.
    await waitFor('a few pushes on the link', () => c.frames.filter((f) => f.type === FrameType.PUSH).length >= 10 || null, WAIT_MS);
    await holder!.proc.kill();
    await api!.proc.kill();
    const got = c.frames.filter((f) => f.type === FrameType.PUSH).map((f) => f.seq);
    const lastSeq = got.length;
    assert.deepEqual(got, Array.from({ length: lastSeq }, (_, k) => k + 1), 'in order, no hole, before the kill');
    const r = await resume(survivor!, w, lastSeq);
    clients.push(r.c, c);
    assert.equal(r.w.resumed, true);
    assert.equal(r.w.gap, false);
    assert.equal(r.w.lastSeq, 100);
    const replay: number[] = [];
    while (replay.length < 100 - lastSeq) replay.push((await nextPush(r.c)).seq);
    assert.deepEqual(replay, Array.from({ length: 100 - lastSeq }, (_, k) => lastSeq + 1 + k));
    assert.deepEqual([...new Set(acked)].sort((x, y) => x - y), Array.from({ length: 100 }, (_, k) => k + 1), 'every POST answered a distinct seq');
  });
});

describe('cluster mode: a REQUEST runs once across moves', () => {
  let redis: RedisServer;
  let backend: FakeBackend;
  const members: Member[] = [];
  const clients: TestClient[] = [];
  /** Requests the backend holds until released, by x-request-id. */
  const held = new Map<string, () => void>();

  before(async () => {
    redis = await startRedis();
    backend = await startFakeBackend((req) => {
      if (req.path.startsWith('/rpc/') && req.body.toString().includes('"hold"')) {
        return new Promise((resolve) => held.set(String(req.headers['x-request-id']), () => resolve({ body: { ran: req.body.toString() } })));
      }
      if (req.path.startsWith('/rpc/')) return { body: req.body };
      return { status: 204 };
    });
  });
  after(async () => {
    for (const release of held.values()) release();
    await Promise.all(clients.map((c) => c.destroy()));
    await Promise.all(members.map((m) => m.proc.kill()));
    await backend?.close();
    await redis?.stop();
  });

  const rpcCalls = (id: string): number => backend.calls.filter((c) => c.path.startsWith('/rpc/') && c.headers['x-request-id'] === id).length;

  it('should answer a re-send on the new gate with the outcome of the call still running on the old one, run once', async () => {
    const prefix = nextPrefix('e');
    const [a, b] = await Promise.all([startMember('gE1', redis.url, prefix, backend.url), startMember('gE2', redis.url, prefix, backend.url)]);
    members.push(a, b);
    const { c, w } = await login(a, 'mover');
    const id = `${w.sessionId}.1`;
    c.request(1, 1, { hold: 1 });
    await waitFor('the call to reach the backend', () => held.get(id), WAIT_MS);
    await c.destroy();
    const r = await resume(b, w, 0);
    clients.push(r.c);
    r.c.request(1, 1, { hold: 1 }); // the client re-sends what it never got an answer to
    // Only the first call is running: release it; its answer comes on the new link.
    held.get(id)!();
    const answer = await r.c.next((f) => f.seq === 1 && (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR), WAIT_MS);
    assert.equal(answer.type, FrameType.RESPONSE, answer.body.toString());
    assert.deepEqual(JSON.parse(answer.body.toString()), { ran: JSON.stringify({ hold: 1 }) });
    // Once more from the stored outcome, and still one call upstream; one answer per send.
    r.c.request(1, 1, { hold: 1 });
    await waitFor('the second answer', () => r.c.frames.filter((f) => f.type === FrameType.RESPONSE && f.seq === 1).length >= 2, WAIT_MS);
    r.c.request(1, 2, { n: 2 });
    assert.deepEqual(JSON.parse((await r.c.next((f) => f.type === FrameType.RESPONSE && f.seq === 2, WAIT_MS)).body.toString()), { n: 2 });
    assert.equal(r.c.frames.filter((f) => f.seq === 1).length, 2, 'two sends of seq 1, two answers');
    assert.equal(rpcCalls(id), 1, 'one upstream call for the seq');
  });

  it('should answer OUTCOME_UNKNOWN, never run it again, when the gate running the call was SIGKILLed', async () => {
    const prefix = nextPrefix('e');
    const [a, b] = await Promise.all([startMember('gU1', redis.url, prefix, backend.url), startMember('gU2', redis.url, prefix, backend.url)]);
    members.push(a, b);
    const { c, w } = await login(a, 'orphaned-call');
    clients.push(c);
    const id = `${w.sessionId}.1`;
    c.request(1, 1, { hold: 2 });
    await waitFor('the call to reach the backend', () => held.get(id), WAIT_MS);
    await a.proc.kill();
    const r = await resume(b, w, 0);
    clients.push(r.c);
    r.c.request(1, 1, { hold: 2 });
    // Within a few beats the dead gate is reaped and its running call declared unknowable.
    const e = await r.c.next((f) => f.seq === 1 && (f.type === FrameType.ERROR || f.type === FrameType.RESPONSE), 20_000);
    assert.equal(e.type, FrameType.ERROR, e.body.toString());
    assert.equal((json(e) as { code: string }).code, 'OUTCOME_UNKNOWN');
    r.c.request(1, 1, { hold: 2 });
    const again = await r.c.next((f) => f.seq === 1 && f.type === FrameType.ERROR, WAIT_MS);
    assert.equal((json(again) as { code: string }).code, 'OUTCOME_UNKNOWN');
    assert.equal(rpcCalls(id), 1, 'never run again');
    const key = backend.calls.find((x) => x.headers['x-request-id'] === id)!.headers['idempotency-key'];
    assert.equal(key, id, 'the backend had the idempotency key to dedupe with');
  });
});

describe('cluster mode: a dead gate is noticed and its sessions taken over', () => {
  it('should detach the sessions of a SIGKILLed gate within a few beats (gate_lost), for a resume anywhere', async (t) => {
    const redis = await startRedis();
    const backend = await startFakeBackend();
    const prefix = nextPrefix('d');
    const [dead, alive] = await Promise.all([startMember('gD1', redis.url, prefix, backend.url), startMember('gD2', redis.url, prefix, backend.url)]);
    const clients: TestClient[] = [];
    t.after(async () => {
      await Promise.all(clients.map((c) => c.destroy()));
      await Promise.all([dead.proc.kill(), alive.proc.kill()]);
      await backend.close();
      await redis.stop();
    });
    const held = await Promise.all(['d1', 'd2', 'd3', 'd4', 'd5'].map((p) => login(dead, p)));
    clients.push(...held.map((h) => h.c));
    await dead.proc.kill();
    for (const { w } of held) {
      await waitFor(`detached(gate_lost) for ${w.playerId}`, () => backend.events().filter((e) => e.sessionId === w.sessionId && e.type === 'detached').length === 1, 15_000);
      const e = backend.events().find((x) => x.sessionId === w.sessionId && x.type === 'detached')!;
      assert.equal(e.reason, 'gate_lost');
      assert.equal((await call(alive, 'GET', `/v1/players/${w.playerId}`)).body.state, 'detached');
    }
    assert.deepEqual((await call(alive, 'GET', '/v1/gates')).body.gates.map((g: { gateId: string }) => g.gateId), ['gD2']);
    await push(alive, 'd1', 'kept');
    const r = await resume(alive, held[0]!.w, 0);
    clients.push(r.c);
    assert.equal(r.w.resumed, true);
    assert.equal((await nextPush(r.c)).seq, 1);
    // The backend saw each session's events once, in the order of the changes, although the
    // gate that logged them in died (the events were written by the scripts that made them).
    const first = held[0]!.w.sessionId;
    await waitFor('the resumed event', () => backend.events().some((e) => e.sessionId === first && e.type === 'resumed'), WAIT_MS);
    for (const { w } of held) {
      const seen = backend.events().filter((e) => e.sessionId === w.sessionId).map((e) => e.type);
      assert.deepEqual(seen, w.sessionId === first ? ['online', 'detached', 'resumed'] : ['online', 'detached'], `events of ${w.playerId}`);
    }
    assert.ok(backend.events().every((e) => typeof e.id === 'string' && /^\d+-\d+$/.test(e.id)), 'every event carries its stream id');
  });
});

/**
 * Cluster mode when gates die, over one cluster of real `gate serve --redis` processes (gE1,
 * gE2 from the start; gK1, gK2 joining for the last test), a private redis-server and one fake
 * backend. The tests run in order and build on each other's gates:
 * 1. a REQUEST runs once across a move (gE1 → gE2), nobody killed;
 * 2. gE1 is SIGKILLed holding five sessions and a running call: its sessions are taken over
 *    (detached, gate_lost), the call is answered OUTCOME_UNKNOWN and never run again, and the
 *    backend's events stay complete and in order although the gate that wrote some of them died;
 * 3. the gate holding a player and the gate taking the push POSTs are both SIGKILLed: every
 *    acknowledged push is replayed on the survivor, once, in order;
 * 4. a gate frozen (SIGSTOP) for more than 3 beats is declared dead while it still lives: when it
 *    wakes it lets its links go (its old fences change nothing), rejoins, and serves the resume of
 *    its own former player with the push stored meanwhile.
 *
 * Every gate is a real process (the CLI); a gate that quietly ran single-node fails, since each
 * member's `listening` line must name its member id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FrameType } from '../../lib/frame.js';
import { WAIT_MS, call, login, nextPrefix, nextPush, push, pushData as pushDataOf, resume, startMember, type Member } from '../helpers/cluster.js';
import { startFakeBackend, type FakeBackend } from '../helpers/fakeBackend.js';
import { startRedis, type RedisServer } from '../helpers/redisServer.js';
import { json, type TestClient } from '../helpers/testClient.js';
import { waitFor, waitForAsync } from '../helpers/wait.js';

describe('cluster mode: gates killed with SIGKILL', () => {
  let redis: RedisServer;
  let backend: FakeBackend;
  let prefix: string;
  let e1: Member;
  let e2: Member;
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
    prefix = nextPrefix('k');
    [e1, e2] = await Promise.all([startMember('gE1', redis.url, prefix, backend.url), startMember('gE2', redis.url, prefix, backend.url)]);
    members.push(e1, e2);
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
    const { c, w } = await login(e1, 'mover');
    const id = `${w.sessionId}.1`;
    c.request(1, 1, { hold: 1 });
    await waitFor('the call to reach the backend', () => held.get(id), WAIT_MS);
    await c.destroy();
    const r = await resume(e2, w, 0);
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

  it('should take a killed gate\'s sessions over (gate_lost) and answer its running call OUTCOME_UNKNOWN, never run again', async () => {
    const logins = await Promise.all(['d1', 'd2', 'd3', 'd4', 'd5'].map((p) => login(e1, p)));
    clients.push(...logins.map((h) => h.c));
    const caller = logins[4]!;
    const id = `${caller.w.sessionId}.1`;
    caller.c.request(1, 1, { hold: 2 });
    await waitFor('the call to reach the backend', () => held.get(id), WAIT_MS);
    await e1.proc.kill();
    for (const { w } of logins) {
      await waitFor(`detached(gate_lost) for ${w.playerId}`, () => backend.events().filter((e) => e.sessionId === w.sessionId && e.type === 'detached').length === 1, 15_000);
      const e = backend.events().find((x) => x.sessionId === w.sessionId && x.type === 'detached')!;
      assert.equal(e.reason, 'gate_lost');
      assert.equal((await call(e2, 'GET', `/v1/players/${w.playerId}`)).body.state, 'detached');
    }
    assert.deepEqual((await call(e2, 'GET', '/v1/gates')).body.gates.map((g: { gateId: string }) => g.gateId), ['gE2']);

    // A session resumes on the survivor with what was pushed meanwhile.
    await push(e2, 'd1', 'kept');
    const r = await resume(e2, logins[0]!.w, 0);
    clients.push(r.c);
    assert.equal(r.w.resumed, true);
    assert.equal((await nextPush(r.c)).seq, 1);

    // The call that was running on the dead gate: unknowable, so never run again.
    const rc = await resume(e2, caller.w, 0);
    clients.push(rc.c);
    rc.c.request(1, 1, { hold: 2 });
    const e = await rc.c.next((f) => f.seq === 1 && (f.type === FrameType.ERROR || f.type === FrameType.RESPONSE), WAIT_MS);
    assert.equal(e.type, FrameType.ERROR, e.body.toString());
    assert.equal((json(e) as { code: string }).code, 'OUTCOME_UNKNOWN');
    rc.c.request(1, 1, { hold: 2 });
    await waitFor('the second OUTCOME_UNKNOWN', () => rc.c.frames.filter((f) => f.seq === 1 && f.type === FrameType.ERROR).length === 2, WAIT_MS);
    assert.equal(rpcCalls(id), 1, 'never run again');
    assert.equal(backend.calls.find((x) => x.headers['x-request-id'] === id)!.headers['idempotency-key'], id, 'the backend had the idempotency key to dedupe with');

    // The backend saw each session's events once, in the order of the changes, although the
    // gate that logged them in died (the scripts that made the changes wrote them).
    for (const { w } of [logins[0]!, caller])
      await waitFor(`the resumed event of ${w.playerId}`, () => backend.events().some((x) => x.sessionId === w.sessionId && x.type === 'resumed'), WAIT_MS);
    for (const { w } of logins) {
      // At-least-once (docs/backend.md): a batch the killed gate posted but had not yet marked
      // done is posted again by the next lease holder, with the same ids. The backend dedupes on
      // `id`, and so does this check; a second event with a new id would still fail it.
      const ids = new Set<string>();
      const seen = backend
        .events()
        .filter((x) => x.sessionId === w.sessionId && !ids.has(String(x.id)) && ids.add(String(x.id)))
        .map((x) => x.type);
      const resumedToo = w === logins[0]!.w || w === caller.w;
      assert.deepEqual(seen, resumedToo ? ['online', 'detached', 'resumed'] : ['online', 'detached'], `events of ${w.playerId}`);
    }
    assert.ok(backend.events().every((x) => typeof x.id === 'string' && /^\d+-\d+$/.test(x.id)), 'every event carries its stream id');
  });

  it('should resume on a survivor with every 200-acknowledged push after lastSeq, exactly once, in order', async () => {
    const [api, holder] = await Promise.all(['gK1', 'gK2'].map((n) => startMember(n, redis.url, prefix, backend.url)));
    members.push(api!, holder!);
    const { c, w } = await login(holder!, 'durable');
    clients.push(c);
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
    const r = await resume(e2, w, lastSeq);
    clients.push(r.c);
    assert.equal(r.w.resumed, true);
    assert.equal(r.w.gap, false);
    assert.equal(r.w.lastSeq, 100);
    const replay: number[] = [];
    while (replay.length < 100 - lastSeq) replay.push((await nextPush(r.c)).seq);
    assert.deepEqual(replay, Array.from({ length: 100 - lastSeq }, (_, k) => lastSeq + 1 + k));
    assert.deepEqual([...new Set(acked)].sort((x, y) => x - y), Array.from({ length: 100 }, (_, k) => k + 1), 'every POST answered a distinct seq');
  });

  it('should let a gate declared dead while frozen close its links and rejoin', async () => {
    const frozen = await startMember('gF', redis.url, prefix, backend.url);
    members.push(frozen);
    const { c, w } = await login(frozen, 'sleeper');
    clients.push(c);
    const pid = frozen.proc.child.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      // The survivor reaps it after 3 silent beats: the session is detached (gate_lost), and a push is stored for it.
      await waitFor('the frozen gate\'s session taken over', () => backend.events().some((e) => e.sessionId === w.sessionId && e.type === 'detached' && e.reason === 'gate_lost') || null, 15_000);
      assert.equal((await push(e2, 'sleeper', 'while asleep')).body.status, 'buffered');
      const listed = ((await call(e2, 'GET', '/v1/gates')).body.gates as { gateId: string }[]).map((g) => g.gateId);
      assert.ok(!listed.includes('gF'), `a dead member is not listed: ${listed.join(', ')}`);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Awake, it finds out at its next beat: its links go without a BYE (it no longer holds their sessions).
    await frozen.proc.waitForLog('this gate was declared dead by another; closing its links and rejoining', WAIT_MS);
    await waitFor('the woken gate to close the link', () => c.isClosed || null, WAIT_MS);
    assert.equal(c.frames.filter((f) => f.type === FrameType.BYE).length, 0, 'no BYE: the session lives on, detached');
    await waitForAsync('the woken gate back in /v1/gates', async () => ((await call(e2, 'GET', '/v1/gates')).body.gates as { gateId: string }[]).some((x) => x.gateId === 'gF'), WAIT_MS);
    // It serves again: its former player resumes on it and gets what was pushed while it slept.
    const r = await resume(frozen, w, 0);
    clients.push(r.c);
    assert.equal(r.w.resumed, true);
    assert.equal(pushDataOf(await nextPush(r.c)), 'while asleep');
  });
});

/**
 * Cluster mode over two `gate serve --redis` processes on one private redis-server: any gate
 * reaches any player (push, ids, batch, broadcast, kick, /v1/players, /v1/gates, /v1/stats),
 * replace and resume anywhere with one owner, and the gap rule across gates.
 *
 * Every gate is a real process (the CLI); a gate that quietly ran single-node fails, since each
 * member's `listening` line must name its member id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FrameType } from '../../lib/frame.js';
import { WAIT_MS, ack, bye, call, login, nextPrefix, nextPush, push, pushData, resume, startMember, type Member } from '../helpers/cluster.js';
import { startFakeBackend, type FakeBackend } from '../helpers/fakeBackend.js';
import { startRedis, type RedisServer } from '../helpers/redisServer.js';
import { ByeError, type TestClient } from '../helpers/testClient.js';
import { waitFor, waitForAsync } from '../helpers/wait.js';

describe('cluster mode: two gates on one Redis', () => {
  let redis: RedisServer;
  let backend: FakeBackend;
  let a: Member;
  let b: Member;
  const clients: TestClient[] = [];
  const keep = <T extends { c: TestClient }>(x: T): T => (clients.push(x.c), x);

  before(async () => {
    redis = await startRedis();
    backend = await startFakeBackend();
    const prefix = nextPrefix('c');
    [a, b] = await Promise.all([startMember('gA', redis.url, prefix, backend.url), startMember('gB', redis.url, prefix, backend.url)]);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.destroy()));
    await Promise.all([a?.proc.kill(), b?.proc.kill()]);
    await backend?.close();
    await redis?.stop();
  });

  it('should deliver a push POSTed to either gate to the player on the other, in seq order', async () => {
    const { c, w } = keep(await login(a, 'p1'));
    assert.equal(w.gateId, 'gA');
    for (let i = 1; i <= 5; i++) {
      const r = await push(i % 2 ? b : a, 'p1', { i });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, { seq: i, status: 'sent' });
    }
    for (let i = 1; i <= 5; i++) {
      const f = await nextPush(c);
      assert.equal(f.seq, i);
      assert.deepEqual(pushData(f), { i });
    }
    assert.equal((await push(b, 'nobody', {})).status, 404);
  });

  it('should store a push with an id once, whichever gate the retried POST reaches', async () => {
    const { c } = keep(await login(b, 'p2'));
    const first = await push(a, 'p2', { n: 1 }, 'order-1');
    const again = await push(b, 'p2', { n: 1 }, 'order-1');
    assert.deepEqual(first.body, { seq: 1, status: 'sent' });
    assert.deepEqual(again.body, { seq: 1, status: 'sent', duplicate: true });
    const batch = await call(a, 'POST', '/v1/push/batch', {
      messages: [
        { playerId: 'p2', route: 1, data: 'x', id: 'order-1' },
        { playerId: 'p2', route: 1, data: 'y', id: 'order-2' },
        { playerId: 'ghost', route: 1, data: 'z' },
      ],
    });
    assert.deepEqual(batch.body.results, [{ seq: 1, status: 'sent', duplicate: true }, { seq: 2, status: 'sent' }, { error: 'player_not_found' }]);
    assert.equal((await nextPush(c)).seq, 1);
    assert.equal((await nextPush(c)).seq, 2);
  });

  it('should broadcast to every session of the cluster from any gate', async () => {
    const x = keep(await login(a, 'bx'));
    const y = keep(await login(b, 'by', 'ws'));
    const r = await call(b, 'POST', '/v1/broadcast', { route: 3, data: { hi: 1 } });
    assert.equal(r.status, 200);
    assert.ok(r.body.sent >= 2, JSON.stringify(r.body));
    for (const { c } of [x, y]) assert.deepEqual(pushData(await c.next((f) => f.type === FrameType.PUSH && f.route === 3, WAIT_MS)), { hi: 1 });
  });

  it('should kick from any gate: the gate holding the link says BYE kicked with the reason', async () => {
    const { c, w } = keep(await login(a, 'p3'));
    const r = await call(b, 'POST', '/v1/kick', { playerId: 'p3', reason: 'cheating' });
    assert.deepEqual(r.body, { kicked: true });
    assert.deepEqual(await bye(c), { code: 'kicked', reason: 'cheating' });
    assert.equal((await call(a, 'GET', '/v1/players/p3')).status, 404);
    await waitFor('offline(kicked) for p3', () => backend.events().some((e) => e.sessionId === w.sessionId && e.type === 'offline' && e.reason === 'kicked'), WAIT_MS);
  });

  it('should answer /v1/players from every gate, naming the gate that holds the link', async () => {
    const { c } = keep(await login(b, 'p4'));
    await push(a, 'p4', 1);
    c.request(1, 1, { hi: 1 });
    await c.next((f) => f.type === FrameType.RESPONSE, WAIT_MS);
    const keys: string[][] = [];
    for (const m of [a, b]) {
      const r = await call(m, 'GET', '/v1/players/p4');
      assert.equal(r.status, 200);
      assert.equal(r.body.gateId, 'gB');
      assert.equal(r.body.state, 'online');
      assert.equal(r.body.pushSeq, 1);
      keys.push(Object.keys(r.body).sort());
      // The time of the last REQUEST is known to the holder only (Redis keeps none).
      if (m === b) assert.equal(typeof r.body.lastRequestAt, 'number');
      else assert.equal(r.body.lastRequestAt, null);
    }
    assert.deepEqual(keys[0], keys[1], 'the same fields from the holder and from another gate');
  });

  it('should replace a session held on another gate: BYE replaced there, one session', async () => {
    const first = keep(await login(a, 'p5'));
    const second = keep(await login(b, 'p5'));
    assert.notEqual(second.w.sessionId, first.w.sessionId);
    assert.equal((await bye(first.c)).code, 'replaced');
    await first.c.closed;
    assert.equal((await call(a, 'GET', '/v1/players/p5')).body.sessionId, second.w.sessionId);
    const r = await push(a, 'p5', 'after');
    assert.deepEqual(r.body, { seq: 1, status: 'sent' });
    assert.equal((await nextPush(second.c)).seq, 1);
    await waitFor('offline(replaced) then online for p5', () => {
      const ev = backend.events().filter((e) => e.playerId === 'p5');
      const off = ev.findIndex((e) => e.sessionId === first.w.sessionId && e.type === 'offline' && e.reason === 'replaced');
      const on = ev.findIndex((e) => e.sessionId === second.w.sessionId && e.type === 'online');
      return off !== -1 && on !== -1 && off < on;
    }, WAIT_MS);
  });

  for (const t of ['tcp', 'ws'] as const) {
    it(`should resume over ${t} on the other gate with every push after lastSeq, once, in order`, async () => {
      const player = `r-${t}`;
      const { c, w } = await login(a, player, t);
      for (let i = 1; i <= 3; i++) await push(b, player, { i });
      for (let i = 1; i <= 3; i++) assert.equal((await nextPush(c)).seq, i);
      ack(c, 2);
      await c.destroy();
      await waitForAsync('the session to be detached', async () => (await call(b, 'GET', `/v1/players/${player}`)).body?.state === 'detached', WAIT_MS);
      for (let i = 4; i <= 6; i++) assert.equal((await push(a, player, { i })).body.status, 'buffered');
      const r = keep(await resume(b, w, 3, t));
      assert.equal(r.w.resumed, true);
      assert.equal(r.w.gap, false);
      assert.equal(r.w.sessionId, w.sessionId);
      assert.equal(r.w.lastSeq, 6);
      for (let i = 4; i <= 6; i++) {
        const f = await nextPush(r.c);
        assert.equal(f.seq, i);
        assert.deepEqual(pushData(f), { i });
      }
      // Live pushes follow the replay, wherever they are POSTed.
      await push(a, player, { i: 7 });
      assert.equal((await nextPush(r.c)).seq, 7);
      assert.equal(r.c.frames.filter((f) => f.type === FrameType.PUSH).length, 4, 'no push twice');
      assert.equal((await call(a, 'GET', `/v1/players/${player}`)).body.gateId, 'gB');
    });
  }

  it('should say gap on a resume elsewhere when the client lost pushes it had ACKed', async () => {
    const { c, w } = await login(b, 'gapper');
    for (let i = 1; i <= 4; i++) await push(a, 'gapper', { i });
    for (let i = 1; i <= 4; i++) await nextPush(c);
    ack(c, 4);
    await waitForAsync('the ACK to reach Redis', async () => (await call(a, 'GET', '/v1/players/gapper')).body?.buffered === 0, WAIT_MS);
    await c.destroy();
    const r = keep(await resume(a, w, 1));
    assert.equal(r.w.resumed, true);
    assert.equal(r.w.gap, true);
  });

  it('should take a half-open session over: a resume on B closes the link still open on A (BYE replaced)', async () => {
    const first = keep(await login(a, 'half'));
    const second = keep(await resume(b, first.w, 0));
    assert.equal(second.w.resumed, true);
    assert.equal((await bye(first.c)).code, 'replaced');
    await push(a, 'half', 'x');
    assert.equal((await nextPush(second.c)).seq, 1);
  });

  it('should list both gates in /v1/gates and add them to /v1/stats of each', async () => {
    const gates = await waitForAsync('both gates to beat', async () => (await call(a, 'GET', '/v1/gates')).body.gates.length === 2, WAIT_MS).then(() => call(a, 'GET', '/v1/gates'));
    assert.deepEqual(gates.body.gates.map((g: { gateId: string }) => g.gateId).sort(), ['gA', 'gB']);
    for (const g of gates.body.gates) assert.match(String(g.tcp), /^127\.0\.0\.1:\d+$/);
    for (const m of [a, b]) {
      const st = (await call(m, 'GET', '/v1/stats')).body;
      assert.equal(st.gateId, m.name);
      assert.equal(st.gates.length, 2);
      assert.equal(st.cluster.sessions, st.gates.reduce((n: number, g: { sessions: number }) => n + g.sessions, 0));
      assert.equal(st.cluster.connections, st.gates.reduce((n: number, g: { connections: number }) => n + g.connections, 0));
    }
  });

  it('should leave exactly one live link when two resumes race on two gates', async () => {
    for (let round = 0; round < 10; round++) {
      const player = `race-${round}`;
      const { c, w } = await login(a, player);
      await c.destroy();
      const results = await Promise.allSettled([resume(a, w, 0), resume(b, w, 0)]);
      const links = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.c] : []));
      clients.push(...links);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof ByeError && r.reason.code === 'replaced', String(r.reason));
      // The loser's link is told BYE replaced and closed; the winner's stays.
      await waitFor(`one open link for ${player}`, () => links.filter((l) => !l.isClosed).length === 1 && links, WAIT_MS);
      const winner = links.find((l) => !l.isClosed)!;
      await push(b, player, { round });
      assert.equal((await nextPush(winner)).seq, 1);
    }
  });
});

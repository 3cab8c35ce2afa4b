/**
 * Cluster mode (CONTRACT §5, issue 10) over real processes: `gate serve --redis` members on one
 * private redis-server, a fake backend, clients on real sockets. Any gate reaches any player;
 * pushes are stored before they are acknowledged and survive a SIGKILLed gate; a session
 * resumes on another gate with exactly one owner; a login replaces a session held anywhere; and
 * Redis trouble is a 503 or an ERROR, never a silent loss, and heals by itself.
 *
 * Every test first checks that the gates run as members of one cluster (their `listening` line
 * names a member), so a gate that quietly ran single-node fails instead of passing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { FrameType, type Frame } from '../lib/frame.js';
import { startFakeBackend, type FakeBackend } from './helpers/fakeBackend.js';
import { portOf, spawnGate, type GateProcess } from './helpers/gateProcess.js';
import { startRedis, type RedisServer } from './helpers/redisServer.js';
import { ByeError, connectTcp, connectWs, json, type ByeBody, type TestClient, type WelcomeBody } from './helpers/testClient.js';
import { waitFor, waitForAsync } from './helpers/wait.js';

/** Bound on one wait for a frame, a log line or an HTTP answer, ms. */
const WAIT_MS = 10_000;

interface Member {
  readonly name: string;
  readonly proc: GateProcess;
  readonly tcp: number;
  readonly ws: number;
  readonly api: string;
  readonly member: string;
}

let prefixes = 0;

async function startMember(name: string, redisUrl: string, prefix: string, upstream: string, extra: string[] = []): Promise<Member> {
  const proc = spawnGate([
    'serve', '--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0', '--auth', 'none', '--upstream', upstream,
    '--gate-id', name, '--redis', redisUrl, '--redis-prefix', prefix, ...extra,
  ]);
  const l = await proc.waitForLog('listening');
  assert.equal(typeof l.member, 'string', `gate ${name} should run as a cluster member: ${JSON.stringify(l)}`);
  return { name, proc, tcp: portOf(l.tcp), ws: portOf(l.ws), api: `http://${String(l.api)}`, member: String(l.member) };
}

async function call(m: Member, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(m.api + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A session's state as Redis holds it (no gate left to ask). */
async function fetchPlayer(url: string, prefix: string, playerId: string): Promise<string | null> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  try {
    return await r.hget(`${prefix}s:${playerId}`, 'st');
  } finally {
    r.disconnect();
  }
}

const push = (m: Member, playerId: string, data: unknown, id?: string) => call(m, 'POST', '/v1/push', { playerId, route: 7, data, ...(id ? { id } : {}) });

const login = async (m: Member, player: string, t: 'tcp' | 'ws' = 'tcp'): Promise<{ c: TestClient; w: WelcomeBody }> => {
  const c = t === 'tcp' ? await connectTcp(m.tcp) : await connectWs(m.ws);
  const w = await c.hello({ token: player }, WAIT_MS);
  return { c, w };
};

const resume = async (m: Member, w: WelcomeBody, lastSeq: number, t: 'tcp' | 'ws' = 'tcp'): Promise<{ c: TestClient; w: WelcomeBody }> => {
  const c = t === 'tcp' ? await connectTcp(m.tcp) : await connectWs(m.ws);
  const w2 = await c.hello({ token: w.playerId, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq } }, WAIT_MS);
  return { c, w: w2 };
};

const nextPush = (c: TestClient): Promise<Frame> => c.next((f) => f.type === FrameType.PUSH, WAIT_MS);
const pushData = (f: Frame): unknown => JSON.parse(f.body.toString('utf8'));
const bye = async (c: TestClient): Promise<ByeBody> => json(await c.next((f) => f.type === FrameType.BYE, WAIT_MS)) as ByeBody;
const ack = (c: TestClient, seq: number): void => c.send({ type: FrameType.ACK, flags: 0, route: 0, seq, body: Buffer.alloc(0) });

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
    const prefix = `c${++prefixes}:`;
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
    keep(await login(b, 'p4'));
    await push(a, 'p4', 1);
    for (const m of [a, b]) {
      const r = await call(m, 'GET', '/v1/players/p4');
      assert.equal(r.status, 200);
      assert.equal(r.body.gateId, 'gB');
      assert.equal(r.body.state, 'online');
      assert.equal(r.body.pushSeq, 1);
    }
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
    const prefix = `k${++prefixes}:`;
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
    const prefix = `e${++prefixes}:`;
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
    const prefix = `e${++prefixes}:`;
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
    const prefix = `d${++prefixes}:`;
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
  });
});

describe('cluster mode: idle cleanup is cluster-wide', () => {
  it('should end idle sessions once, on a live gate and on a killed one, and keep a busy one', async (t) => {
    const redis = await startRedis();
    const backend = await startFakeBackend();
    const prefix = `i${++prefixes}:`;
    const extra = ['--idle-timeout', '1s'];
    const [g1, g2] = await Promise.all([startMember('gI1', redis.url, prefix, backend.url, extra), startMember('gI2', redis.url, prefix, backend.url, extra)]);
    const clients: TestClient[] = [];
    t.after(async () => {
      await Promise.all(clients.map((c) => c.destroy()));
      await Promise.all([g1.proc.kill(), g2.proc.kill()]);
      await backend.close();
      await redis.stop();
    });
    const quiet = await login(g1, 'quiet');
    const orphan = await login(g2, 'orphan');
    const busy = await login(g1, 'busy');
    clients.push(quiet.c, orphan.c, busy.c);
    await g2.proc.kill();
    // The busy player keeps sending REQUESTs (every 100 ms, each answered) past twice the timeout.
    let seq = 0;
    while (seq < 25) {
      busy.c.request(1, ++seq, { seq });
      await busy.c.next((f) => f.type === FrameType.RESPONSE && f.seq === seq, WAIT_MS);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await bye(quiet.c)).code, 'idle');
    for (const w of [quiet.w, orphan.w]) await waitFor(`offline(idle) for ${w.playerId}`, () => backend.events().some((e) => e.sessionId === w.sessionId && e.type === 'offline'), WAIT_MS);
    assert.equal(busy.c.isClosed, false, 'a session sending REQUESTs is not idle');
    assert.equal((await call(g1, 'GET', '/v1/players/busy')).body.state, 'online');
    for (const w of [quiet.w, orphan.w]) {
      const offline = backend.events().filter((e) => e.sessionId === w.sessionId && e.type === 'offline');
      assert.deepEqual(offline.map((e) => e.reason), ['idle'], `one offline(idle) for ${w.playerId}`);
      assert.equal((await call(g1, 'GET', `/v1/players/${w.playerId}`)).status, 404);
    }
  });
});

describe('cluster mode: Redis trouble is loud and heals by itself', () => {
  it('should answer 503, refuse HELLO with CLUSTER_UNAVAILABLE and keep requests flowing while Redis is down, then recover', async (t) => {
    let redis = await startRedis();
    const backend = await startFakeBackend();
    const m = await startMember('gR', redis.url, `r${++prefixes}:`, backend.url);
    const clients: TestClient[] = [];
    t.after(async () => {
      await Promise.all(clients.map((c) => c.destroy()));
      await m.proc.kill();
      await backend.close();
      await redis.stop();
    });
    const { c } = await login(m, 'steady');
    clients.push(c);
    assert.equal((await call(m, 'GET', '/readyz')).status, 200);

    await redis.kill();
    await waitForAsync('/readyz to turn 503', async () => (await call(m, 'GET', '/readyz')).status === 503, WAIT_MS);
    const refused = await push(m, 'steady', 'lost?');
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error, 'CLUSTER_UNAVAILABLE');
    // A HELLO gets a clear ERROR and the link closes (try again later).
    const late = await connectTcp(m.tcp);
    clients.push(late);
    late.send({ type: FrameType.HELLO, flags: 0, route: 0, seq: 0, body: Buffer.from(JSON.stringify({ token: 'late' })) });
    const err = await late.next((f) => f.type === FrameType.ERROR, WAIT_MS);
    assert.equal((json(err) as { code: string }).code, 'CLUSTER_UNAVAILABLE');
    await late.closed;
    // The connected client's requests still reach the backend.
    c.request(1, 1, { ping: 1 });
    assert.equal((await c.next((f) => f.type === FrameType.RESPONSE && f.seq === 1, WAIT_MS)).seq, 1);

    redis = await startRedis(redis.port);
    await waitForAsync('/readyz to turn 200 again', async () => (await call(m, 'GET', '/readyz')).status === 200, WAIT_MS);
    // Redis came back empty (no persistence): the old session is gone, so the link was closed to
    // let its client learn that on resume; a new login and pushes work again.
    await c.closed;
    const again = await login(m, 'steady');
    clients.push(again.c);
    assert.deepEqual((await push(m, 'steady', 'stored')).body, { seq: 1, status: 'sent' });
    assert.equal((await nextPush(again.c)).seq, 1);
  });
});

describe('cluster mode: --procs', () => {
  it('should serve from N workers on shared ports, restart a killed one (its sessions taken over at once), and stop on SIGTERM with sessions detached', async (t) => {
    const redis = await startRedis();
    const backend = await startFakeBackend();
    const prefix = `p${++prefixes}:`;
    const clients: TestClient[] = [];
    const proc = spawnGate([
      'serve', '--procs', '2', '--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0', '--auth', 'none', '--upstream', backend.url,
      '--gate-id', 'gP', '--redis', redis.url, '--redis-prefix', prefix,
    ]);
    t.after(async () => {
      await Promise.all(clients.map((c) => c.destroy()));
      await proc.kill();
      await backend.close();
      await redis.stop();
    });
    const l = await proc.waitForLog('listening');
    const m: Member = { name: 'gP', proc, tcp: portOf(l.tcp), ws: portOf(l.ws), api: `http://${String(l.api)}`, member: '' };
    type G = { gateId: string; pid: number; member: string };
    const gates = async (): Promise<G[]> => ((await call(m, 'GET', '/v1/gates')).body.gates as G[]).sort((x, y) => x.gateId.localeCompare(y.gateId));
    await waitForAsync('both workers in /v1/gates', async () => (await gates()).length === 2, WAIT_MS);
    const before = await gates();
    assert.deepEqual(before.map((g) => g.gateId), ['gP.1', 'gP.2']);
    assert.equal(proc.lines.filter((x) => x.includes('"msg":"listening"')).length, 1, 'one listening line for the whole gate');
    // Logins land on both workers (round robin); a session on worker 1 survives its death.
    const logins = await Promise.all(['w1', 'w2', 'w3', 'w4'].map((p) => login(m, p)));
    clients.push(...logins.map((x) => x.c));
    const victim = before[0]!;
    const onVictim = logins.filter((x) => x.w.gateId === victim.gateId);
    assert.ok(onVictim.length > 0, `some login on ${victim.gateId}: ${logins.map((x) => x.w.gateId).join(',')}`);
    process.kill(victim.pid, 'SIGKILL');
    await waitForAsync(`${victim.gateId} restarted with a new pid`, async () => (await gates()).some((g) => g.gateId === victim.gateId && g.pid !== victim.pid), 20_000);
    // The restarted worker reaped its predecessor at start: its sessions are detached already.
    for (const { w } of onVictim) {
      assert.equal((await call(m, 'GET', `/v1/players/${w.playerId}`)).body.state, 'detached');
      const r = await resume(m, w, 0);
      clients.push(r.c);
      assert.equal(r.w.resumed, true);
    }
    proc.child.kill('SIGTERM');
    const exit = await proc.waitForExit(WAIT_MS * 3);
    assert.equal(exit.code, 0, proc.stderr());
    const st = await Promise.all(['w1', 'w2', 'w3', 'w4'].map(async (p) => (await fetchPlayer(redis.url, prefix, p))));
    assert.deepEqual(st, ['detached', 'detached', 'detached', 'detached'], 'cluster shutdown detaches sessions for a resume elsewhere');
  });
});

describe('cluster mode: start-up', () => {
  it('should exit 1 with one line when Redis cannot be reached', async () => {
    const gone = await startRedis();
    await gone.stop();
    const p = spawnGate(['serve', '--tcp', '127.0.0.1:0', '--ws', 'off', '--api', '127.0.0.1:0', '--auth', 'none', '--redis', gone.url]);
    const exit = await p.waitForExit(WAIT_MS * 3);
    assert.equal(exit.code, 1);
    const lines = p.stderr().trim().split('\n');
    assert.equal(lines.length, 1, p.stderr());
    assert.match(lines[0]!, /^gate serve: .*Redis.*127\.0\.0\.1/);
  });
});

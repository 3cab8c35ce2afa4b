/**
 * The cluster session store's core (lib/cluster/, docs/design/cluster.md step 5) against a
 * private redis-server: login, resume, push, ack, detach, end and range; the bounds and the gap
 * rule of the single node's PushBuffer; push id dedupe; fencing of a member that lost its
 * session; and the epoch that turns data Redis may have lost into `gap: true`, never a silent
 * hole. Two ioredis connections play two members where a race needs two.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { FIELDS, TOMBSTONE_MS, epochKey, runIdKey, sessionIdKey, sessionKeys } from '../lib/cluster/keys.js';
import { RedisSessions, type Fence, type RedisSessionsConfig, type ResumeResult } from '../lib/cluster/redisSessions.js';
import { FrameType, type Frame } from '../lib/frame.js';
import type { KeptPush } from '../lib/session/pushBuffer.js';
import { startRedis, type RedisServer } from './helpers/redisServer.js';
import { waitFor } from './helpers/wait.js';

const A = 'gA~0000000a';
const B = 'gB~0000000b';

/** Redis crashes (SIGKILL: what it had not persisted is lost) and comes back on the same port; a new client on it. */
async function crashAndRestart(t: TestContext, r1: RedisServer, c1: Redis): Promise<Redis> {
  c1.disconnect();
  await r1.kill();
  const r2 = await startRedis(r1.port);
  t.after(() => r2.stop());
  const c2 = await connect(r2.url);
  t.after(() => c2.disconnect());
  return c2;
}

const connect = async (url: string): Promise<Redis> => {
  const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await c.connect();
  return c;
};

describe('RedisSessions', () => {
  let server: RedisServer;
  /** Member A's connection (and the tests' own reads). */
  let ra: Redis;
  /** Member B's connection. */
  let rb: Redis;
  let tests = 0;

  before(async () => {
    server = await startRedis();
    ra = await connect(server.url);
    rb = await connect(server.url);
  });
  after(async () => {
    ra?.disconnect();
    rb?.disconnect();
    await server?.stop();
  });

  /** Members A and B of a cluster of their own (a fresh prefix per test). */
  const cluster = (cfg: Partial<RedisSessionsConfig> = {}): { a: RedisSessions; b: RedisSessions; prefix: string } => {
    const prefix = `t${++tests}:`;
    return {
      a: new RedisSessions(ra, { prefix, member: A, bufferMax: 8, ...cfg }),
      b: new RedisSessions(rb, { prefix, member: B, bufferMax: 8, ...cfg }),
      prefix,
    };
  };

  /** Logs a player in on `s`; returns its fence and the resume token the client holds. */
  const login = async (s: RedisSessions, playerId: string): Promise<{ fence: Fence; token: string }> => {
    const token = randomBytes(18).toString('base64url');
    const r = await s.login({ playerId, sessionId: randomUUID(), resumeToken: token });
    return { fence: r.fence, token };
  };

  const pushN = async (s: RedisSessions, playerId: string, n: number): Promise<number[]> => {
    const seqs: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await s.push({ playerId, route: 7, body: Buffer.from(`p${i}`) });
      assert.equal(r.kind, 'ok');
      if (r.kind === 'ok') seqs.push(r.seq);
    }
    return seqs;
  };

  const resumed = (r: ResumeResult): Extract<ResumeResult, { kind: 'ok' }> => {
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    return r;
  };

  const seqs = (ps: readonly KeptPush[]): number[] => ps.map((p) => p.seq);

  /** What Redis holds for the player; checks the list invariant (exactly fgt+1 … seq, b = their bytes). */
  const stored = async (prefix: string, playerId: string): Promise<{ meta: Record<string, string>; list: Buffer[] }> => {
    const k = sessionKeys(prefix, playerId);
    const meta = await ra.hgetall(k.meta);
    const list = await ra.lrangeBuffer(k.pushes, 0, -1);
    if (meta[FIELDS.sid] !== undefined) {
      assert.equal(list.length, Number(meta[FIELDS.seq]) - Number(meta[FIELDS.fgt]), 'the list holds exactly fgt+1 … seq');
      assert.equal(Number(meta[FIELDS.b]), list.reduce((n, el) => n + el.length - 2, 0), 'b is the kept body bytes');
    }
    return { meta, list };
  };

  it('should log in, push, ack, detach, resume on another member with the pushes after lastSeq, and end', async () => {
    const { a, b, prefix } = cluster();
    const token = 'tok-happy';
    const sessionId = randomUUID();
    const l = await a.login({ playerId: 'p1', sessionId, resumeToken: token });
    assert.deepEqual(l, { kind: 'ok', fence: { playerId: 'p1', sessionId, gen: 1 }, replaced: null });
    const m = (await stored(prefix, 'p1')).meta;
    assert.equal(m[FIELDS.own], A);
    assert.equal(m[FIELDS.st], 'online');
    assert.notEqual(m[FIELDS.tok], token, 'the token itself never reaches Redis');
    assert.match(m[FIELDS.tok]!, /^[0-9a-f]{64}$/);
    assert.equal(await ra.get(sessionIdKey(prefix, sessionId)), 'p1');

    for (let seq = 1; seq <= 3; seq++) {
      assert.deepEqual(await a.push({ playerId: 'p1', route: 100 + seq, body: Buffer.from(`b${seq}`) }), {
        kind: 'ok', seq, duplicate: false, dropped: 0, owner: A, state: 'online', notified: false,
      });
    }
    assert.deepEqual(await a.ack(l.fence, 2), { kind: 'ok', forgottenUpTo: 2 });
    assert.deepEqual(await a.detach(l.fence), { kind: 'ok' });
    assert.deepEqual(await b.push({ playerId: 'p1', route: 104, body: Buffer.from('b4') }), {
      kind: 'ok', seq: 4, duplicate: false, dropped: 0, owner: null, state: 'detached', notified: false,
    });

    const r = resumed(await b.resume({ sessionId, resumeToken: token, lastSeq: 2 }));
    assert.deepEqual(r.fence, { playerId: 'p1', sessionId, gen: 2 });
    assert.deepEqual(
      { pushSeq: r.pushSeq, upTo: r.upTo, gap: r.gap, more: r.more, previous: r.previous },
      { pushSeq: 4, upTo: 2, gap: false, more: false, previous: { member: null, gen: 1, state: 'detached' } },
    );
    assert.deepEqual(r.replay, [
      { seq: 3, route: 103, body: Buffer.from('b3') },
      { seq: 4, route: 104, body: Buffer.from('b4') },
    ]);
    assert.equal((await stored(prefix, 'p1')).meta[FIELDS.own], B);
    assert.deepEqual(await b.ack(r.fence, 4), { kind: 'ok', forgottenUpTo: 4 });
    assert.deepEqual(await b.end(r.fence, 'logout'), { kind: 'ok', sessionId, owner: B });
    assert.deepEqual(await stored(prefix, 'p1'), { meta: {}, list: [] });
  });

  it('should keep binary bodies and routes byte-exact through push, resume and range', async () => {
    const { a, b } = cluster({ bufferMax: 16 });
    const { fence, token } = await login(a, 'bin');
    const pushes = [
      { route: 0, body: Buffer.alloc(0) },
      { route: 0xffff, body: Buffer.from([0x00, 0xff, 0x80, 0xc3, 0x28, 0x00]) }, // NULs and invalid UTF-8
      { route: 258, body: Buffer.from('\r\n$-1\r\n*2\r\n') }, // RESP-looking bytes
      { route: 1, body: randomBytes(64 * 1024) },
    ];
    for (const p of pushes) await a.push({ playerId: 'bin', ...p });
    const expected = pushes.map((p, i) => ({ seq: i + 1, ...p }));
    await a.detach(fence);
    const r = resumed(await b.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 0 }));
    assert.deepEqual(r.replay, expected);
    const page = await b.range(r.fence, 0, 16);
    assert.equal(page.kind, 'ok');
    if (page.kind === 'ok') assert.deepEqual(page.pushes, expected);
    assert.deepEqual(await b.ack(r.fence, 1), { kind: 'ok', forgottenUpTo: 1 }, 'an ACK that trims only an empty body');
    await assert.rejects(a.push({ playerId: 'bin', route: 0x10000, body: Buffer.alloc(1) }), TypeError);
    await assert.rejects(a.push({ playerId: 'bin', route: -1, body: Buffer.alloc(1) }), TypeError);
  });

  it('should number pushes in call order when they are issued at once', async () => {
    const { a, b } = cluster({ bufferMax: 64 });
    const { fence, token } = await login(a, 'order');
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => b.push({ playerId: 'order', route: 1, body: Buffer.from(String(i)) })));
    assert.deepEqual(
      results.map((r) => (r.kind === 'ok' ? r.seq : -1)),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    const r = resumed(await a.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 0 }, 100));
    assert.deepEqual(
      r.replay.map((p) => p.body.toString()),
      Array.from({ length: 50 }, (_, i) => String(i)),
    );
  });

  it('should drop the oldest push past bufferMax and raise forgottenUpTo', async () => {
    const { a, prefix } = cluster({ bufferMax: 3 });
    const { fence, token } = await login(a, 'count');
    const dropped: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await a.push({ playerId: 'count', route: 1, body: Buffer.from([i]) });
      if (r.kind === 'ok') dropped.push(r.dropped);
    }
    assert.deepEqual(dropped, [0, 0, 0, 1, 1]);
    const { meta, list } = await stored(prefix, 'count');
    assert.equal(meta[FIELDS.fgt], '2');
    assert.deepEqual(list.map((el) => el[2]), [2, 3, 4]);
    // lastSeq 2: push 3 onwards is all kept, no gap; lastSeq 1: push 2 was dropped, gap.
    assert.equal(resumed(await a.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 2 })).gap, false);
    const r = resumed(await a.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 1 }));
    assert.equal(r.gap, true);
    assert.deepEqual(seqs(r.replay), [3, 4, 5]);
  });

  it('should drop the oldest push past bufferMaxBytes but always keep the newest', async () => {
    const { a, prefix } = cluster({ bufferMax: 10, bufferMaxBytes: 10 });
    const { fence, token } = await login(a, 'bytes');
    const push = async (n: number): Promise<number> => {
      const r = await a.push({ playerId: 'bytes', route: 2, body: Buffer.alloc(n, n) });
      return r.kind === 'ok' ? r.dropped : -1;
    };
    assert.deepEqual([await push(4), await push(4), await push(4)], [0, 0, 1]); // 12 bytes > 10
    assert.equal((await stored(prefix, 'bytes')).meta[FIELDS.b], '8');
    assert.equal(await push(20), 2, 'a push over the bound alone is kept, and everything older goes');
    let { meta } = await stored(prefix, 'bytes');
    assert.deepEqual([meta[FIELDS.b], meta[FIELDS.fgt], meta[FIELDS.seq]], ['20', '3', '4']);
    assert.equal(await push(0), 1);
    ({ meta } = await stored(prefix, 'bytes'));
    assert.deepEqual([meta[FIELDS.b], meta[FIELDS.fgt], meta[FIELDS.seq]], ['0', '4', '5']);
    const r = resumed(await a.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 0 }));
    assert.equal(r.gap, true);
    assert.deepEqual(r.replay, [{ seq: 5, route: 2, body: Buffer.alloc(0) }]);
  });

  describe('gap rule (as PushBuffer: some push after min(lastSeq, newest) will not be replayed)', () => {
    /** 8 pushes, ACK 6, detach: what a client that lost its state then resumes into. */
    const acked6 = async (): Promise<{ b: RedisSessions; sessionId: string; token: string; prefix: string }> => {
      const { a, b, prefix } = cluster();
      const { fence, token } = await login(a, 'gap');
      await pushN(a, 'gap', 6);
      assert.deepEqual(await a.ack(fence, 6), { kind: 'ok', forgottenUpTo: 6 });
      await pushN(a, 'gap', 2);
      await a.detach(fence);
      return { b, sessionId: fence.sessionId, token, prefix };
    };

    it('should report gap and replay 7, 8 to a client back at 3 after it ACKed 6', async () => {
      const { b, sessionId, token } = await acked6();
      const r = resumed(await b.resume({ sessionId, resumeToken: token, lastSeq: 3 }));
      assert.deepEqual([r.gap, r.upTo, seqs(r.replay)], [true, 3, [7, 8]]);
    });

    it('should report no gap to a client at its own ACK, 6', async () => {
      const { b, sessionId, token } = await acked6();
      const r = resumed(await b.resume({ sessionId, resumeToken: token, lastSeq: 6 }));
      assert.deepEqual([r.gap, r.upTo, seqs(r.replay)], [false, 6, [7, 8]]);
    });

    it('should take a lastSeq beyond the newest push as the newest, and go on from there', async () => {
      const { b, sessionId, token, prefix } = await acked6();
      const r = resumed(await b.resume({ sessionId, resumeToken: token, lastSeq: 20 }));
      assert.deepEqual([r.gap, r.upTo, r.pushSeq, seqs(r.replay)], [false, 8, 8, []]);
      const { meta } = await stored(prefix, 'gap');
      assert.deepEqual([meta[FIELDS.fgt], meta[FIELDS.ack]], ['8', '8']);
      const p = await b.push({ playerId: 'gap', route: 1, body: Buffer.from('9') });
      assert.equal(p.kind === 'ok' && p.seq, 9);
      assert.deepEqual(await b.ack(r.fence, 1_000), { kind: 'ok', forgottenUpTo: 9 }, 'an ACK beyond the newest is the newest');
    });

    it('should take a negative lastSeq as 0', async () => {
      const { b, sessionId, token } = await acked6();
      const r = resumed(await b.resume({ sessionId, resumeToken: token, lastSeq: -5 }));
      assert.deepEqual([r.gap, r.upTo, seqs(r.replay)], [true, 0, [7, 8]]);
    });
  });

  it('should page a long replay and give the rest by range', async () => {
    const { a } = cluster({ bufferMax: 10, replayPage: 4 });
    const { fence, token } = await login(a, 'page');
    await pushN(a, 'page', 10);
    const r = resumed(await a.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 0 }));
    assert.deepEqual([seqs(r.replay), r.more], [[1, 2, 3, 4], true]);
    const next = await a.range(r.fence, 4);
    assert.equal(next.kind, 'ok');
    if (next.kind === 'ok') assert.deepEqual([seqs(next.pushes), next.pushSeq, next.forgottenUpTo], [[5, 6, 7, 8], 10, 0]);
    const last = await a.range(r.fence, 8, 100);
    assert.equal(last.kind === 'ok' && seqs(last.pushes).join(), '9,10');
    const none = await a.range(r.fence, 10);
    assert.equal(none.kind === 'ok' && none.pushes.length, 0);
    const all = resumed(await a.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 2 }, 100));
    assert.deepEqual([seqs(all.replay), all.more], [[3, 4, 5, 6, 7, 8, 9, 10], false]);
  });

  it('should keep the request window under --request-window-bytes: the oldest answers leave first, and their seqs are then stale', async () => {
    const c = cluster({ requestWindowBytes: 250 });
    const { fence } = await login(c.a, 'w');
    const answer = (seq: number): Frame => ({ type: FrameType.RESPONSE, flags: 0, route: 1, seq, body: Buffer.alloc(100, seq) });
    for (const seq of [1, 2, 3]) {
      assert.deepEqual(await c.a.reqBegin(fence, seq, 128), { kind: 'new' });
      assert.equal(await c.a.reqFinish(fence, seq, answer(seq)), true);
    }
    // Three answers of 104 stored bytes are over 250: seq 1 left, seqs 2 and 3 are kept.
    assert.deepEqual(await c.a.reqBegin(fence, 1, 128), { kind: 'stale' });
    const two = await c.a.reqBegin(fence, 2, 128);
    assert.equal(two.kind, 'done');
    assert.deepEqual(two.kind === 'done' ? two.answer.body : null, answer(2).body);
    assert.equal((await c.a.reqBegin(fence, 3, 128)).kind, 'done');
    assert.equal(Number(await ra.hget(`${c.prefix}s:w`, 'wb')), 208, 'bytes kept: two answers');
  });

  it('should store a batch in one call exactly as one push after another, with one notice per owner', async () => {
    const one = cluster({ bufferMax: 3 });
    const many = cluster({ bufferMax: 3 });
    for (const c of [one, many]) {
      await login(c.a, 'x');
      await login(c.b, 'y');
    }
    const batch = [
      { playerId: 'x', route: 1, body: Buffer.from('a'), id: 'i1' },
      { playerId: 'y', route: 2, body: Buffer.from('b') },
      { playerId: 'nobody', route: 3, body: Buffer.from('c') },
      { playerId: 'x', route: 4, body: Buffer.from('d'), id: 'i1' }, // a repeat within the batch
      ...['e', 'f', 'g', 'h'].map((b) => ({ playerId: 'x', route: 5, body: Buffer.from(b) })), // past bufferMax: drops
    ];
    const expected = [];
    for (const p of batch) expected.push(await one.a.push(p));
    // Listen on A's and B's notice channels: one message each for the whole batch.
    const sub = ra.duplicate();
    const got: Buffer[] = [];
    sub.on('messageBuffer', (_ch: Buffer, msg: Buffer) => got.push(msg));
    await sub.subscribe(`${many.prefix}n:${A}`, `${many.prefix}n:${B}`);
    try {
      const actual = await many.b.pushMany(batch);
      assert.deepEqual(
        actual.map((r) => (r.kind === 'ok' ? { ...r, notified: true } : r)),
        expected.map((r) => (r.kind === 'ok' ? { ...r, notified: true } : r)),
        'the same seqs, duplicates, drops and owners as one push after another',
      );
      assert.ok(actual.every((r) => r.kind !== 'ok' || r.duplicate || r.notified), 'every new push to an online session reached its owner');
      await waitFor('the two batch notices', () => got.length === 2 || null, 5_000);
      assert.ok(got.every((m) => m.subarray(0, 2).toString() === 'B\n'), 'batch notices');
      for (const k of ['x', 'y']) {
        const [kept1, kept2] = await Promise.all([one.a, many.a].map(async (s) => ((await s.info(k)) ?? { kept: -1 }).kept));
        assert.equal(kept2, kept1, `kept pushes of ${k}`);
      }
    } finally {
      sub.disconnect();
    }
  });

  it('should store a push whose id was seen once: the same seq, flagged duplicate, per player and per session', async () => {
    const { a, b, prefix } = cluster();
    await login(a, 'ids');
    await login(a, 'other');
    const push = (playerId: string, id: string | undefined, body = 'x'): Promise<unknown> =>
      b.push({ playerId, route: 3, body: Buffer.from(body), ...(id === undefined ? {} : { id }) });
    const ok = (seq: number, duplicate: boolean): unknown => ({ kind: 'ok', seq, duplicate, dropped: 0, owner: A, state: 'online', notified: false });
    assert.deepEqual(await push('ids', 'a', 'first'), ok(1, false));
    assert.deepEqual(await push('ids', 'a', 'retry'), ok(1, true));
    assert.deepEqual(await push('ids', 'b'), ok(2, false));
    assert.deepEqual(await push('ids', undefined), ok(3, false));
    assert.deepEqual(await push('ids', 'a'), ok(1, true));
    assert.deepEqual(await push('other', 'a'), ok(1, false), 'ids are per player');
    const { list } = await stored(prefix, 'ids');
    assert.deepEqual(
      list.map((el) => el.subarray(2).toString()),
      ['first', 'x', 'x'],
      'the duplicate stored nothing',
    );
    await login(b, 'ids'); // a new session of the player: a new seq space, no ids
    assert.deepEqual(await push('ids', 'a'), { kind: 'ok', seq: 1, duplicate: false, dropped: 0, owner: B, state: 'online', notified: false });
  });

  it('should remember the ids of the last pushIdsMax pushes that carried one', async () => {
    const { a, prefix } = cluster({ pushIdsMax: 2 });
    await login(a, 'evict');
    const seqOf = async (id: string): Promise<[number, boolean]> => {
      const r = await a.push({ playerId: 'evict', route: 1, body: Buffer.from(id), id });
      return r.kind === 'ok' ? [r.seq, r.duplicate] : [-1, false];
    };
    assert.deepEqual([await seqOf('a'), await seqOf('b'), await seqOf('c')], [[1, false], [2, false], [3, false]]);
    assert.deepEqual(await seqOf('a'), [4, false], 'a was forgotten: taken as new');
    assert.deepEqual(await seqOf('c'), [3, true]);
    assert.equal(await ra.zcard(sessionKeys(prefix, 'evict').pushIds), 2);
  });

  it('should answer unknown for no session, and learn and move nothing on a wrong token', async () => {
    const { a, b, prefix } = cluster();
    assert.deepEqual(await a.push({ playerId: 'nobody', route: 1, body: Buffer.alloc(1) }), { kind: 'unknown' });
    assert.deepEqual(await a.resume({ sessionId: randomUUID(), resumeToken: 'x', lastSeq: 0 }), { kind: 'unknown', ended: null });
    assert.deepEqual(await a.ack({ playerId: 'nobody', sessionId: randomUUID(), gen: 1 }, 1), { kind: 'unknown' });
    assert.deepEqual(await a.detach({ playerId: 'nobody', sessionId: randomUUID(), gen: 1 }), { kind: 'unknown' });
    assert.deepEqual(await a.end({ playerId: 'nobody' }, 'kicked'), { kind: 'unknown' });
    const { fence } = await login(a, 'tok');
    await pushN(a, 'tok', 2);
    const before = await stored(prefix, 'tok');
    assert.deepEqual(await b.resume({ sessionId: fence.sessionId, resumeToken: 'wrong', lastSeq: 0 }), { kind: 'unknown', ended: null });
    assert.deepEqual(await stored(prefix, 'tok'), before);
  });

  it('should fence a member whose session was resumed elsewhere: its ack, detach, end and range change nothing', async () => {
    const { a, b, prefix } = cluster();
    const { fence: fa, token } = await login(a, 'fence');
    await pushN(a, 'fence', 5);
    // No detach: A's link is half-open, and the resume on B wins anyway.
    const r = resumed(await b.resume({ sessionId: fa.sessionId, resumeToken: token, lastSeq: 2 }));
    assert.deepEqual([r.fence.gen, r.previous], [2, { member: A, gen: 1, state: 'online' }]);
    const before = await stored(prefix, 'fence');
    const fenced = { kind: 'fenced', owner: B, gen: 2 };
    assert.deepEqual(await a.ack(fa, 5), fenced);
    assert.deepEqual(await a.detach(fa), fenced);
    assert.deepEqual(await a.end(fa, 'logout'), fenced);
    assert.deepEqual(await a.range(fa, 0), fenced);
    assert.deepEqual(await a.ack({ ...fa, gen: 2 }, 5), fenced, 'the right gen from the wrong member');
    assert.deepEqual(await stored(prefix, 'fence'), before);
    const r2 = resumed(await b.resume({ sessionId: fa.sessionId, resumeToken: token, lastSeq: 3 }));
    assert.deepEqual(await b.ack(r.fence, 5), { kind: 'fenced', owner: B, gen: 3 }, 'the same member with an older generation');
    assert.deepEqual(await b.ack(r2.fence, 5), { kind: 'ok', forgottenUpTo: 5 });
    assert.deepEqual(await b.detach(r2.fence), { kind: 'ok' });
    assert.deepEqual(await b.ack(r2.fence, 5), { kind: 'fenced', owner: null, gen: 3 }, 'a detached session has no owner to ACK for it');
  });

  it('should let exactly one of two racing resumes own the session, in generation order', async () => {
    const { a, b, prefix } = cluster();
    const { fence, token } = await login(a, 'race');
    await pushN(a, 'race', 3);
    let gen = fence.gen;
    for (let round = 0; round < 20; round++) {
      const [ra2, rb2] = await Promise.all([a.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 0 }), b.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 0 })]);
      const x = resumed(ra2);
      const y = resumed(rb2);
      assert.deepEqual([x.fence.gen, y.fence.gen].sort((p, q) => p - q), [gen + 1, gen + 2], 'each resume takes its own generation');
      const [first, second, loser, winner] = x.fence.gen < y.fence.gen ? ([x, y, a, b] as const) : ([y, x, b, a] as const);
      assert.deepEqual(second.previous, { member: loser.member, gen: first.fence.gen, state: 'online' }, 'the later one took it from the earlier');
      assert.deepEqual(await loser.ack(first.fence, 3), { kind: 'fenced', owner: winner.member, gen: second.fence.gen });
      assert.deepEqual(await loser.detach(first.fence), { kind: 'fenced', owner: winner.member, gen: second.fence.gen });
      assert.equal((await stored(prefix, 'race')).meta[FIELDS.own], winner.member);
      assert.deepEqual(await winner.ack(second.fence, 0), { kind: 'ok', forgottenUpTo: 0 });
      gen = second.fence.gen;
    }
  });

  it('should end the previous session on a new login, naming its sid and owner, and never resume it again', async () => {
    const { a, b, prefix } = cluster();
    const { fence: f1, token: t1 } = await login(a, 'rep');
    await pushN(a, 'rep', 3);
    const sid2 = randomUUID();
    const l2 = await b.login({ playerId: 'rep', sessionId: sid2, resumeToken: 't2' });
    assert.deepEqual(l2, { kind: 'ok', fence: { playerId: 'rep', sessionId: sid2, gen: 2 }, replaced: { sessionId: f1.sessionId, member: A, gen: 1 } });
    assert.equal(await ra.get(sessionIdKey(prefix, f1.sessionId)), '~replaced');
    const ttl = await ra.pttl(sessionIdKey(prefix, f1.sessionId));
    assert.ok(ttl > 0 && ttl <= TOMBSTONE_MS, `tombstone PTTL ${ttl}`);
    assert.deepEqual(await a.resume({ sessionId: f1.sessionId, resumeToken: t1, lastSeq: 0 }), { kind: 'unknown', ended: 'replaced' });
    assert.deepEqual(await a.ack(f1, 3), { kind: 'unknown' });
    assert.deepEqual(await a.end(f1, 'logout'), { kind: 'unknown' });
    const p = await a.push({ playerId: 'rep', route: 1, body: Buffer.alloc(1) });
    assert.equal(p.kind === 'ok' && p.seq, 1, 'the new session starts its own seqs');
    await b.detach(l2.fence);
    const l3 = await a.login({ playerId: 'rep', sessionId: randomUUID(), resumeToken: 't3' });
    assert.deepEqual(l3.replaced, { sessionId: sid2, member: null, gen: 2 }, 'a detached session has no owner to tell');
  });

  it('should end a session by its owner (fenced) or by player (kick), leaving a tombstone for a late resume', async () => {
    const { a, b, prefix } = cluster();
    const { fence, token } = await login(a, 'end');
    await a.push({ playerId: 'end', route: 1, body: Buffer.alloc(1), id: 'i' });
    assert.deepEqual(await a.end(fence, 'logout'), { kind: 'ok', sessionId: fence.sessionId, owner: A });
    const k = sessionKeys(prefix, 'end');
    assert.equal(await ra.exists(k.meta, k.pushes, k.pushIds), 0);
    assert.deepEqual(await b.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 0 }), { kind: 'unknown', ended: 'logout' });
    assert.deepEqual(await b.push({ playerId: 'end', route: 1, body: Buffer.alloc(1) }), { kind: 'unknown' });
    assert.deepEqual(await a.ack(fence, 1), { kind: 'unknown' });

    const { fence: f2 } = await login(b, 'end');
    assert.deepEqual(await a.end({ playerId: 'end' }, 'kicked'), { kind: 'ok', sessionId: f2.sessionId, owner: B });
    assert.equal(await ra.get(sessionIdKey(prefix, f2.sessionId)), '~kicked');
    assert.deepEqual(await a.end({ playerId: 'end' }, 'kicked'), { kind: 'unknown' });
  });

  describe('epoch', () => {
    it('should keep one epoch while Redis is the same server, agreed by members booting at once', async () => {
      const { a, b, prefix } = cluster();
      const [x, y] = await Promise.all([a.boot(), b.boot()]);
      assert.equal(x.epoch, y.epoch);
      assert.equal(Number(x.changed) + Number(y.changed), 1, 'exactly one of them started it');
      assert.deepEqual(await a.boot(), { epoch: x.epoch, changed: false });
      assert.equal(await ra.get(epochKey(prefix)), x.epoch);
    });

    it('should burn one seq of a session written under another epoch: the next resume reports gap, no seq is reused', async () => {
      const { a, b, prefix } = cluster();
      const { fence, token } = await login(a, 'ep');
      await pushN(a, 'ep', 3);
      await a.detach(fence);
      await ra.set(epochKey(prefix), 'lost-some'); // what boot does after Redis restarted

      // A client holding all 3 pushes still hears gap: Redis may have lost pushes after 3.
      const r = resumed(await b.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 3 }));
      assert.deepEqual([r.gap, r.upTo, r.pushSeq, seqs(r.replay)], [true, 3, 4, []]);
      const { meta } = await stored(prefix, 'ep');
      assert.deepEqual([meta[FIELDS.seq], meta[FIELDS.fgt], meta[FIELDS.ep], meta[FIELDS.xs]], ['4', '4', 'lost-some', '0']);
      const p = await b.push({ playerId: 'ep', route: 1, body: Buffer.from('5') });
      assert.equal(p.kind === 'ok' && p.seq, 5);
      const again = resumed(await b.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 4 }));
      assert.deepEqual([again.gap, seqs(again.replay)], [false, [5]], 'a session burns once per epoch');

      // A push is the first to touch it after the next change: the burn comes before the push.
      await ra.set(epochKey(prefix), 'lost-more');
      const q = await b.push({ playerId: 'ep', route: 1, body: Buffer.from('7') });
      assert.equal(q.kind === 'ok' && q.seq, 7);
      const last = resumed(await b.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 5 }));
      assert.deepEqual([last.gap, seqs(last.replay)], [true, [7]]);
    });

    // lost 1: the client holds exactly the seq the burn takes (4), which only the resume can tell.
    for (const lost of [1, 2]) {
      it(`should report gap, never a silent hole, after Redis restarted from a copy ${lost} push(es) behind the client`, async (t) => {
        const r1 = await startRedis();
        t.after(() => r1.stop());
        const c1 = await connect(r1.url);
        t.after(() => c1.disconnect()); // also when the test fails before its own disconnect
        const prefix = 'rs:';
        const s1 = new RedisSessions(c1, { prefix, member: A, bufferMax: 8 });
        const e1 = (await s1.boot()).epoch;
        const { fence, token } = await login(s1, 'rs');
        await pushN(s1, 'rs', 3);
        // The copy Redis will come back with (an AOF or RDB behind the last writes).
        const k = sessionKeys(prefix, 'rs');
        const names = [k.meta, k.pushes, sessionIdKey(prefix, fence.sessionId), epochKey(prefix), runIdKey(prefix)];
        const copy = await Promise.all(names.map(async (n) => [n, await c1.dumpBuffer(n)] as const));
        await pushN(s1, 'rs', lost); // these reach the client, then Redis crashes and loses them
        const lastSeq = 3 + lost;
        const c2 = await crashAndRestart(t, r1, c1);
        for (const [n, v] of copy) if (v) await c2.restore(n, 0, v);
        const s2 = new RedisSessions(c2, { prefix, member: B, bufferMax: 8 });
        const boot = await s2.boot(); // on ready, as a member does
        assert.equal(boot.changed, true);
        assert.notEqual(boot.epoch, e1);
        assert.equal(await c2.hget(k.meta, FIELDS.seq), '3', 'Redis came back without the last pushes');

        const r = resumed(await s2.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq }));
        assert.equal(r.gap, true);
        assert.deepEqual(seqs(r.replay), []);
        assert.ok(r.pushSeq > lastSeq, `pushSeq ${r.pushSeq} is past every seq the client holds`);
        const p = await s2.push({ playerId: 'rs', route: 1, body: Buffer.from('new') });
        assert.ok(p.kind === 'ok' && p.seq > lastSeq, 'a new push never reuses a seq the client holds');
        const next = resumed(await s2.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: r.pushSeq }));
        assert.deepEqual([next.gap, next.replay.map((x) => x.body.toString())], [false, ['new']]);
      });
    }

    it('should start a new epoch when Redis restarted empty, and resume nothing', async (t) => {
      const r1 = await startRedis();
      t.after(() => r1.stop());
      const c1 = await connect(r1.url);
      t.after(() => c1.disconnect());
      const s1 = new RedisSessions(c1, { member: A, bufferMax: 8 });
      const e1 = (await s1.boot()).epoch;
      const { fence, token } = await login(s1, 'gone');
      await pushN(s1, 'gone', 2);
      const c2 = await crashAndRestart(t, r1, c1);
      const s2 = new RedisSessions(c2, { member: B, bufferMax: 8 });
      // Nobody booted this Redis yet: the script finds no epoch, boots, and runs again.
      assert.deepEqual(await s2.resume({ sessionId: fence.sessionId, resumeToken: token, lastSeq: 2 }), { kind: 'unknown', ended: null });
      const e2 = await c2.get(epochKey('gate:'));
      assert.ok(e2 !== null && e2 !== e1, 'a new epoch');
      assert.deepEqual(await s2.boot(), { epoch: e2, changed: false });
    });
  });

  it('should refuse a bad configuration at creation', () => {
    const base = { member: A, bufferMax: 4 };
    assert.throws(() => new RedisSessions(ra, { ...base, member: '' }), TypeError);
    assert.throws(() => new RedisSessions(ra, { ...base, bufferMax: 0 }), TypeError);
    assert.throws(() => new RedisSessions(ra, { ...base, bufferMax: 1.5 }), TypeError);
    assert.throws(() => new RedisSessions(ra, { ...base, bufferMaxBytes: -1 }), TypeError);
    assert.throws(() => new RedisSessions(ra, { ...base, pushIdsMax: 0 }), TypeError);
    assert.throws(() => new RedisSessions(ra, { ...base, replayPage: 0 }), TypeError);
    const prefixed = new Redis(server.url, { lazyConnect: true, keyPrefix: 'k:' });
    assert.throws(() => new RedisSessions(prefixed, base), TypeError);
    prefixed.disconnect();
  });
});

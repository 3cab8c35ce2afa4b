/**
 * Model-based test (fast-check `fc.commands`) of the cluster session store's core
 * (lib/cluster/redisSessions.ts) against the single node's semantics: the model is a
 * lib/session/pushBuffer.ts PushBuffer and a lib/session/pushIds.ts PushIds driven as lib/gate.ts drives them
 * (pushTo, ACK, resume), plus the client's lastSeq and which of two members holds the link. The
 * same commands run against a private redis-server; after every command the seqs, the duplicate
 * answers, the kept pushes (bytes and all), forgottenUpTo, the gap and the replay must agree, and
 * a member holding a stale generation must be fenced and change nothing. Each run uses random
 * bounds and starts from an empty Redis.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { FIELDS, sessionKeys } from '../lib/cluster/keys.js';
import { RedisSessions, type Fence } from '../lib/cluster/redisSessions.js';
import { PushBuffer, type KeptPush } from '../lib/session/pushBuffer.js';
import { PushIds } from '../lib/session/pushIds.js';
import { assertProperty } from './helpers/props.js';
import { startRedis, type RedisServer } from './helpers/redisServer.js';

/**
 * Runs (spec/helpers/props.ts: FC_RUNS asks for more, within a time budget). A run is some 60
 * script calls on a loopback Redis, tens of ms: the floor is the default's own count.
 */
const RUNS = { runs: 20, floor: 20 };
/** A resume asks for this many pushes at once: more than any bound here, so one page is all. */
const PAGE = 64;

type Member = 'a' | 'b';
const MEMBER_ID: Record<Member, string> = { a: 'gA~0000000a', b: 'gB~0000000b' };
const idOf = (m: Member | null): string | null => (m === null ? null : MEMBER_ID[m]);

interface Bounds {
  bufferMax: number;
  bufferMaxBytes: number;
  pushIdsMax: number;
}

interface Model {
  readonly buffer: PushBuffer;
  readonly ids: PushIds;
  pushSeq: number;
  /** The member whose link holds the session; null while detached. */
  attached: Member | null;
  /** The client's lastSeq: the highest push it holds. */
  seen: number;
}

interface Real {
  readonly redis: Redis;
  readonly prefix: string;
  readonly playerId: string;
  readonly stores: Record<Member, RedisSessions>;
  readonly token: string;
  /** The fence of the last login or resume, and the member it was given to. */
  fence: Fence;
  holder: Member;
  /** A fence that lost the session to a later resume, and its member. */
  stale: { fence: Fence; member: Member } | null;
}

type Cmd = fc.AsyncCommand<Model, Real>;

/** What the runs exercised, so a generator change that stops reaching a case shows. */
const seen = { commands: 0, longest: 0, gaps: 0, duplicates: 0, drops: 0, moves: 0, fenced: 0 };

/** What Redis holds for the session, decoded. */
async function snapshot(r: Real): Promise<{ meta: Record<string, string>; kept: KeptPush[]; ids: number }> {
  const k = sessionKeys(r.prefix, r.playerId);
  const [meta, list, ids] = await Promise.all([r.redis.hgetall(k.meta), r.redis.lrangeBuffer(k.pushes, 0, -1), r.redis.zcard(k.pushIds)]);
  const fgt = Number(meta[FIELDS.fgt]);
  return { meta, kept: list.map((el, i) => ({ seq: fgt + 1 + i, route: el.readUInt16BE(0), body: el.subarray(2) })), ids };
}

/** Redis holds what the model holds. */
async function assertState(m: Model, r: Real): Promise<void> {
  const { meta, kept, ids } = await snapshot(r);
  assert.equal(Number(meta[FIELDS.seq]), m.pushSeq, 'seq');
  assert.equal(Number(meta[FIELDS.fgt]), m.buffer.forgottenUpTo, 'forgottenUpTo');
  assert.equal(Number(meta[FIELDS.b]), m.buffer.bytes, 'bytes kept');
  assert.deepEqual(kept, m.buffer.after(-1), 'kept pushes');
  assert.equal(ids, m.ids.size, 'push ids remembered');
  assert.equal(meta[FIELDS.own], idOf(m.attached) ?? '', 'owner');
  assert.equal(meta[FIELDS.st], m.attached === null ? 'detached' : 'online', 'state');
  assert.equal(Number(meta[FIELDS.gen]), r.fence.gen, 'gen');
}

/** A push through either member (any gate takes push POSTs), with or without an id, as Gate.pushTo. */
class Push implements Cmd {
  constructor(
    readonly via: Member,
    readonly route: number,
    readonly body: Buffer,
    readonly id: string | undefined,
  ) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const got = await r.stores[this.via].push({ playerId: r.playerId, route: this.route, body: this.body, ...(this.id === undefined ? {} : { id: this.id }) });
    const first = this.id === undefined ? undefined : m.ids.seqOf(this.id);
    const owner = { owner: idOf(m.attached), state: m.attached === null ? 'detached' : 'online' };
    if (first !== undefined) {
      seen.duplicates++;
      assert.deepEqual(got, { kind: 'ok', seq: first, duplicate: true, dropped: 0, ...owner, notified: false });
    } else {
      const seq = ++m.pushSeq;
      if (this.id !== undefined) m.ids.remember(this.id, seq);
      const dropped = m.buffer.add({ seq, route: this.route, body: this.body });
      seen.drops += dropped;
      if (m.attached !== null) m.seen = seq; // delivered live
      assert.deepEqual(got, { kind: 'ok', seq, duplicate: false, dropped, ...owner, notified: false });
    }
    await assertState(m, r);
  }
  toString = (): string => `Push(${this.via}, ${this.route}, ${this.body.length}B${this.id === undefined ? '' : `, id ${this.id}`})`;
}

/** The attached client ACKs `back` before its lastSeq (negative: beyond it, taken as the newest). */
class Ack implements Cmd {
  constructor(readonly back: number) {}
  check = (m: Readonly<Model>): boolean => m.attached !== null;
  async run(m: Model, r: Real): Promise<void> {
    const seq = Math.max(0, m.seen - this.back);
    m.buffer.ack(Math.min(seq, m.pushSeq));
    assert.deepEqual(await r.stores[r.holder].ack(r.fence, seq), { kind: 'ok', forgottenUpTo: m.buffer.forgottenUpTo });
    await assertState(m, r);
  }
  toString = (): string => `Ack(last-${this.back})`;
}

/** The holder's link drops; detaching twice is fenced (the session has no owner). */
class Detach implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const got = await r.stores[r.holder].detach(r.fence);
    if (m.attached === null) assert.deepEqual(got, { kind: 'fenced', owner: null, gen: r.fence.gen });
    else assert.deepEqual(got, { kind: 'ok' });
    m.attached = null;
    await assertState(m, r);
  }
  toString = (): string => 'Detach';
}

/** The detached client loses its latest `back` pushes (a reinstall, a crash before saving). */
class Forget implements Cmd {
  constructor(readonly back: number) {}
  check = (m: Readonly<Model>): boolean => m.attached === null;
  run(m: Model): Promise<void> {
    m.seen = Math.max(0, m.seen - this.back);
    return Promise.resolve();
  }
  toString = (): string => `Forget(${this.back})`;
}

/**
 * The client resumes on `member` (the same one, or a move) from its lastSeq plus `over` (a
 * client claiming pushes never sent), as Gate.resume: upTo = min(lastSeq, pushSeq), gap from
 * the buffer, ACK up to upTo, replay the rest.
 */
class Resume implements Cmd {
  constructor(
    readonly member: Member,
    readonly over: number,
  ) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const lastSeq = m.seen + this.over;
    const upTo = Math.min(lastSeq, m.pushSeq);
    const gap = m.buffer.gapAfter(upTo);
    m.buffer.ack(upTo);
    const replay = m.buffer.after(upTo);
    const got = await r.stores[this.member].resume({ sessionId: r.fence.sessionId, resumeToken: r.token, lastSeq }, PAGE);
    assert.equal(got.kind, 'ok');
    if (got.kind !== 'ok') return;
    assert.deepEqual(
      { gap: got.gap, upTo: got.upTo, pushSeq: got.pushSeq, replay: got.replay, more: got.more, previous: got.previous },
      { gap, upTo, pushSeq: m.pushSeq, replay, more: false, previous: { member: idOf(m.attached), gen: r.fence.gen, state: m.attached === null ? 'detached' : 'online' } },
    );
    assert.deepEqual(got.fence, { ...r.fence, gen: r.fence.gen + 1 });
    if (gap) seen.gaps++;
    if (this.member !== r.holder) seen.moves++;
    r.stale = { fence: r.fence, member: r.holder };
    r.fence = got.fence;
    r.holder = this.member;
    m.attached = this.member;
    m.seen = replay.at(-1)?.seq ?? upTo;
    await assertState(m, r);
  }
  toString = (): string => `Resume(${this.member}, +${this.over})`;
}

/** The member that lost the session to a resume tries to change it with its old fence. */
class Stale implements Cmd {
  constructor(readonly op: 'ack' | 'detach' | 'end' | 'range') {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    if (r.stale === null) return;
    const before = await snapshot(r);
    const s = r.stores[r.stale.member];
    const f = r.stale.fence;
    const got = this.op === 'ack' ? await s.ack(f, m.pushSeq) : this.op === 'detach' ? await s.detach(f) : this.op === 'end' ? await s.end(f, 'logout') : await s.range(f, 0);
    assert.deepEqual(got, { kind: 'fenced', owner: idOf(m.attached), gen: r.fence.gen });
    assert.deepEqual(await snapshot(r), before, 'a fenced call changed nothing');
    seen.fenced++;
  }
  toString = (): string => `Stale(${this.op})`;
}

describe('RedisSessions against the single-node model (property)', () => {
  let server: RedisServer;
  let redis: Redis;
  let runs = 0;

  before(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
  });
  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  const member = fc.constantFrom<Member>('a', 'b');
  const pushArb = fc
    .record({ via: member, route: fc.integer({ min: 0, max: 0xffff }), body: fc.uint8Array({ maxLength: 10 }), id: fc.option(fc.constantFrom('x', 'y', 'z', 'w'), { nil: undefined }) })
    .map(({ via, route, body, id }) => new Push(via, route, Buffer.from(body), id));
  // Pushes twice over: every other case needs some pushes to act on.
  const commands: fc.Arbitrary<Cmd>[] = [
    pushArb,
    pushArb,
    fc.integer({ min: -2, max: 4 }).map((back) => new Ack(back)),
    fc.constant(new Detach()),
    fc.integer({ min: 1, max: 6 }).map((back) => new Forget(back)),
    fc.tuple(member, fc.integer({ min: 0, max: 2 })).map(([to, over]) => new Resume(to, over)),
    fc.constantFrom('ack' as const, 'detach' as const, 'end' as const, 'range' as const).map((op) => new Stale(op)),
  ];
  const bounds = fc.record({
    bufferMax: fc.integer({ min: 1, max: 5 }),
    bufferMaxBytes: fc.oneof(fc.constant(Infinity), fc.integer({ min: 0, max: 24 })),
    pushIdsMax: fc.integer({ min: 1, max: 4 }),
  });

  const push = (n: number, id?: string): Push => new Push('b', n, Buffer.from([n]), id);
  const pushes = (from: number, to: number): Push[] => Array.from({ length: to - from + 1 }, (_, i) => push(from + i));
  const roomy: Bounds = { bufferMax: 8, bufferMaxBytes: Infinity, pushIdsMax: 4 };
  // Pinned (issue 9's gap rule): ACK 6 of 8, the client falls back to 3 → gap, replay 7, 8;
  // back to 6 → no gap; everything ACKed, back to 0 → gap, nothing to replay, pushes go on.
  // A retried push id across a move, then the old member's stale calls.
  const pinned: [Bounds, Cmd[]][] = [
    [roomy, [...pushes(1, 6), new Ack(0), ...pushes(7, 8), new Detach(), new Forget(5), new Resume('b', 0)]],
    [roomy, [...pushes(1, 6), new Ack(0), ...pushes(7, 8), new Detach(), new Forget(2), new Resume('b', 0)]],
    [roomy, [...pushes(1, 2), new Ack(0), new Detach(), new Forget(2), new Resume('a', 0), push(3)]],
    [{ bufferMax: 2, bufferMaxBytes: 1, pushIdsMax: 1 }, [push(1, 'x'), push(2, 'x'), new Resume('b', 2), push(3, 'y'), push(4, 'x'), new Stale('ack'), new Stale('end')]],
    // Found by this property: an ACK that trims only empty bodies took 0 bytes off as Lua's -0.
    [{ bufferMax: 1, bufferMaxBytes: Infinity, pushIdsMax: 1 }, [new Push('a', 0, Buffer.alloc(0), undefined), new Ack(0)]],
  ];

  it('should agree with PushBuffer and PushIds on seqs, duplicates, kept pushes, gap and replay, and fence stale members', async (t) => {
    await assertProperty(
      t,
      fc.asyncProperty(bounds, fc.commands(commands, { maxCommands: 60, size: 'large' }), async (b, cmds) => {
        const prefix = `prop${++runs}:`;
        const stores = {
          a: new RedisSessions(redis, { prefix, member: MEMBER_ID.a, ...b }),
          b: new RedisSessions(redis, { prefix, member: MEMBER_ID.b, ...b }),
        };
        try {
          const token = `token-${runs}`;
          const login = await stores.a.login({ playerId: 'p', sessionId: randomUUID(), resumeToken: token });
          const real: Real = { redis, prefix, playerId: 'p', stores, token, fence: login.fence, holder: 'a', stale: null };
          const model: Model = { buffer: new PushBuffer(b.bufferMax, b.bufferMaxBytes), ids: new PushIds(b.pushIdsMax), pushSeq: 0, attached: 'a', seen: 0 };
          const list = [...cmds];
          seen.commands += list.length;
          seen.longest = Math.max(seen.longest, list.length);
          await fc.asyncModelRun(() => ({ model, real }), list);
        } finally {
          await redis.flushdb(); // the next run starts from an empty Redis (and boots its epoch)
        }
      }),
      { ...RUNS, examples: pinned },
    );
    t.diagnostic(`exercised: ${JSON.stringify(seen)}`);
    // The pinned examples alone reach each of these; random runs add to them.
    for (const k of ['gaps', 'duplicates', 'drops', 'moves', 'fenced'] as const) assert.ok(seen[k] > 0, `no run exercised ${k}`);
  });
});

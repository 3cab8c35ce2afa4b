/**
 * Model-based test (fast-check `fc.commands`) of sessions, resume and exactly-once requests,
 * driving a real in-process gate over real sockets against a fake backend. After every
 * command: each push reaches the client at most once and in seq order; without overflow every
 * push arrives exactly once; a resume replays exactly the kept pushes after its lastSeq, and
 * reports `gap` exactly when some push after that lastSeq is no longer kept, whether the bound
 * dropped it or an ACK trimmed it before the client lost its state (Forget); each
 * request seq runs upstream at most once and is answered at most once (exactly once when its
 * session survives); backend events follow online → (detached → resumed)* → offline.
 * The session idle clock is a virtual one (`idleScheduler`) that the Idle command moves.
 *
 * The same model runs over both session stores: a single gate (memory), and a cluster of two
 * in-process gates on one private redis-server (Redis), where pushes and kicks go to either
 * gate and a resume may Move the link to the other one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { VirtualTimeScheduler } from 'rxjs';
import { FrameType, frame, type Frame } from '../lib/frame.js';
import { api, startCluster, startGate, type Harness } from './helpers/gateHarness.js';
import type { FakeHandler } from './helpers/fakeBackend.js';
import { connectTcp, connectWs, json, type TestClient, type WelcomeBody } from './helpers/testClient.js';
import { assertProperty } from './helpers/props.js';
import { waitFor } from './helpers/wait.js';

/**
 * Runs per transport (spec/helpers/props.ts: FC_RUNS asks for more, within a time budget). Floor:
 * a tenth or less of what `npm run fuzz` completes in the budget on a busy 2-core machine (110 to
 * 260 runs in 30 s), and the default's 15.
 */
const RUNS = { runs: 15, floor: 15 };
/** The cluster's runs: fewer (two gates and Redis per command), same floor rule. */
const CLUSTER_RUNS = { runs: 8, floor: 8 };
const BUFFER_MAX = 4;
const IDLE_MS = 60_000;

interface Model {
  session: boolean;
  connected: boolean;
  pushSeq: number;
  /** The client's lastSeq: highest push seq it holds, with none missing below it since the last gap. */
  delivered: number;
  /** Seqs the gate keeps (unacked, at most BUFFER_MAX). */
  kept: number[];
  nextReq: number;
  /** Requests of the current session sent and not yet answered to the client. */
  pending: Set<number>;
  /** Requests not yet completed at the gate, in order (player concurrency 1: only the head runs). */
  queue: { seq: number; hold: boolean }[];
}

/** The real side: one player per run, a link at a time. */
class Real {
  client: TestClient | null = null;
  welcome: WelcomeBody | null = null;
  /**
   * Every session this run created, with the push seqs the client holds (received on its links,
   * less what it forgot) and the answers its links received. `floor`: the client's lastSeq as of
   * its last Forget, which it may hold without the push itself (it jumped there after a gap).
   */
  sessions = new Map<string, { pushes: number[]; floor: number; answers: Map<number, number> }>();
  /** The gate the client dials (a Move switches it). */
  at = 0;
  constructor(
    readonly gates: readonly Harness[],
    readonly clocks: readonly VirtualTimeScheduler[],
    readonly playerId: string,
    readonly transport: 'tcp' | 'ws',
    readonly release: Map<string, () => void>,
  ) {}

  /** Any gate answers for the whole system (a single gate, or every member of the cluster). */
  get h(): Harness {
    return this.gates[0]!;
  }

  /** The gate the `via` of a command picks. */
  gate(via: number): Harness {
    return this.gates[via % this.gates.length]!;
  }

  connect(): Promise<TestClient> {
    const g = this.gates[this.at]!;
    return this.transport === 'tcp' ? connectTcp(g.tcpPort) : connectWs(g.wsPort);
  }

  /** Requests in flight and queued, over every gate. */
  async load(): Promise<{ inflight: number; queued: number }> {
    const all = await Promise.all(this.gates.map(async (g) => (await api(g, 'GET', '/v1/stats')).body as { inflight: number; queued: number }));
    return { inflight: all.reduce((n, x) => n + x.inflight, 0), queued: all.reduce((n, x) => n + x.queued, 0) };
  }

  /** Attaches a fresh link's frames to the session's record as they arrive (observed on every check). */
  track(): void {
    const c = this.client!;
    const rec = this.sessions.get(this.welcome!.sessionId)!;
    const seen = new Set<Frame>();
    const scan = (): void => {
      for (const f of c.frames) {
        if (seen.has(f)) continue;
        seen.add(f);
        if (f.type === FrameType.PUSH) rec.pushes.push(f.seq);
        if (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR) rec.answers.set(f.seq, (rec.answers.get(f.seq) ?? 0) + 1);
      }
    };
    this.scan = scan;
  }

  scan: () => void = () => undefined;

  async player(): Promise<{ status: number; body: { state?: string; buffered?: number } }> {
    return api(this.h, 'GET', `/v1/players/${this.playerId}`);
  }

  requestId(seq: number): string {
    return `${this.welcome!.sessionId}.${seq}`;
  }

  check(m: Model): void {
    this.scan();
    for (const [sid, rec] of this.sessions) {
      for (let i = 1; i < rec.pushes.length; i++) assert.ok(rec.pushes[i]! > rec.pushes[i - 1]!, `session ${sid}: pushes out of order or twice: ${rec.pushes.join(',')}`);
      for (const [seq, n] of rec.answers) assert.ok(n <= 1, `session ${sid}: seq ${seq} answered ${n} times`);
    }
    const byId = new Map<string, number>();
    for (const c of this.h.backend.calls) {
      const id = c.headers['x-request-id'];
      if (typeof id === 'string' && id.includes('.')) byId.set(id, (byId.get(id) ?? 0) + 1);
    }
    for (const [id, n] of byId) assert.ok(n <= 1, `request ${id} ran upstream ${n} times`);
    if (m.session && m.connected) {
      const rec = this.sessions.get(this.welcome!.sessionId)!;
      assert.equal(Math.max(rec.pushes.at(-1) ?? 0, rec.floor), m.delivered, 'client holds every push up to delivered');
    }
  }
}

type Cmd = fc.AsyncCommand<Model, Real>;

const freshModel = (m: Model): void => {
  Object.assign(m, { session: true, connected: true, pushSeq: 0, delivered: 0, kept: [], pending: new Set(), queue: [] });
};

/**
 * Runs the player's queue forward as the gate does: quick requests complete at once, a held
 * one stops the queue at the backend. Waits for what the client (if connected) must receive.
 */
async function advance(m: Model, r: Real): Promise<void> {
  while (m.queue.length > 0) {
    const head = m.queue[0]!;
    const id = r.requestId(head.seq);
    if (head.hold) {
      await waitFor(`backend holds ${id}`, () => r.release.has(id));
      return;
    }
    m.queue.shift();
    if (m.connected) {
      const a = await r.client!.next((f) => f.type === FrameType.RESPONSE && f.seq === head.seq);
      assert.equal(a.body.toString(), `v${head.seq}`);
      m.pending.delete(head.seq);
    }
  }
  if (!m.connected) await waitFor('the gate has run the queue', async () => {
    const st = await r.load();
    return st.inflight === r.release.size && st.queued === 0;
  });
}

/** The session ended: the backend answers whatever it held of it (nobody will get those answers). */
async function letGo(m: Model, r: Real): Promise<void> {
  for (const [id, go] of r.release) {
    if (!r.sessions.has(id.slice(0, id.lastIndexOf('.')))) continue;
    go();
    r.release.delete(id);
  }
  await waitFor('nothing left in flight', async () => {
    const st = await r.load();
    return st.inflight === r.release.size && st.queued === 0;
  });
  Object.assign(m, { session: false, connected: false, pending: new Set(), queue: [] });
}

async function login(r: Real, body: object): Promise<WelcomeBody> {
  const c = await r.connect();
  const w = await c.hello({ token: r.playerId, ...body });
  r.client = c;
  r.welcome = w;
  if (!r.sessions.has(w.sessionId)) r.sessions.set(w.sessionId, { pushes: [], floor: 0, answers: new Map() });
  r.track();
  return w;
}

async function endedByGate(r: Real, code: string): Promise<void> {
  const c = r.client;
  if (c && !c.isClosed) {
    const bye = await c.next((f) => f.type === FrameType.BYE);
    assert.equal((json(bye) as { code: string }).code, code);
  }
  r.client = null;
}

class Login implements Cmd {
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const old = r.client;
    const w = await login(r, {});
    assert.equal(w.resumed, false);
    assert.equal(w.lastSeq, 0);
    if (old && m.connected) {
      const bye = await old.next((f) => f.type === FrameType.BYE);
      assert.equal((json(bye) as { code: string }).code, 'replaced');
    }
    if (m.session) await letGo(m, r);
    freshModel(m);
    r.check(m);
  }
  toString = (): string => 'Login';
}

class Push implements Cmd {
  constructor(
    readonly n: number,
    /** Which gate's API takes it (cluster: either). */
    readonly via = 0,
  ) {}
  check = (): boolean => true;
  async run(m: Model, r: Real): Promise<void> {
    const res = await api(r.gate(this.via), 'POST', '/v1/push', { playerId: r.playerId, route: 9, data: { n: this.n } });
    if (!m.session) {
      assert.equal(res.status, 404);
      return;
    }
    const seq = ++m.pushSeq;
    assert.deepEqual(res.body, { seq, status: m.connected ? 'sent' : 'buffered' });
    m.kept.push(seq);
    if (m.kept.length > BUFFER_MAX) m.kept.shift();
    if (m.connected) {
      await r.client!.next((f) => f.type === FrameType.PUSH && f.seq === seq);
      m.delivered = seq;
    }
    r.check(m);
  }
  toString = (): string => `Push(${this.n}${this.via ? ', other gate' : ''})`;
}

class Drop implements Cmd {
  check = (m: Readonly<Model>): boolean => m.session && m.connected;
  async run(m: Model, r: Real): Promise<void> {
    r.scan();
    await r.client!.destroy();
    r.client = null;
    await waitFor('session detached', async () => (await r.player()).body.state === 'detached');
    m.connected = false;
    r.check(m);
  }
  toString = (): string => 'Drop';
}

class Resume implements Cmd {
  /** `move`: the resume lands on the other gate of a cluster (a no-op on a single gate). */
  constructor(readonly move = false) {}
  // Always possible when not connected: a resume of an ended session is a fresh login.
  check = (m: Readonly<Model>): boolean => !m.connected;
  async run(m: Model, r: Real): Promise<void> {
    const before = r.welcome!;
    if (this.move) r.at = (r.at + 1) % r.gates.length;
    const lastSeq = m.delivered;
    const w = await login(r, { resume: { sessionId: before.sessionId, resumeToken: before.resumeToken, lastSeq } });
    if (!m.session) {
      assert.equal(w.resumed, false, 'a resume of an ended session is a fresh login');
      freshModel(m);
      r.check(m);
      return;
    }
    assert.equal(w.resumed, true);
    assert.equal(w.sessionId, before.sessionId);
    assert.equal(w.lastSeq, m.pushSeq);
    const gone = range(lastSeq + 1, m.pushSeq).filter((s) => !m.kept.includes(s));
    assert.equal(w.gap, gone.length > 0, `gap exactly when a push after lastSeq ${lastSeq} is no longer kept (gone: ${gone.join(',')})`);
    const replay = m.kept.filter((s) => s > lastSeq);
    for (const s of replay) await r.client!.next((f) => f.type === FrameType.PUSH && f.seq === s);
    const got = r.client!.frames.filter((f) => f.type === FrameType.PUSH).map((f) => f.seq);
    assert.deepEqual(got, replay, 'the replay is exactly the kept pushes after lastSeq');
    if (!w.gap) assert.deepEqual(replay, range(lastSeq + 1, m.pushSeq), 'without a gap every push after lastSeq arrives exactly once');
    m.kept = m.kept.filter((s) => s > lastSeq);
    // With every push after lastSeq gone, nothing is replayed: the client stays at lastSeq.
    m.delivered = replay.at(-1) ?? lastSeq;
    m.connected = true;
    // The client re-sends every unanswered request with its same seq; answers kept while detached come back now.
    const inQueue = new Set(m.queue.map((q) => q.seq));
    for (const seq of [...m.pending].sort((a, b) => a - b)) {
      r.client!.request(1, seq, Buffer.from(m.queue.find((q) => q.seq === seq)?.hold ? 'hold' : `v${seq}`));
      if (!inQueue.has(seq)) {
        const a = await r.client!.next((f) => (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR) && f.seq === seq);
        assert.equal(a.type, FrameType.RESPONSE, 'the stored answer comes back');
        m.pending.delete(seq);
      }
    }
    r.check(m);
  }
  toString = (): string => (this.move ? 'Resume(Move)' : 'Resume');
}

class Request implements Cmd {
  constructor(readonly hold: boolean) {}
  check = (m: Readonly<Model>): boolean => m.session && m.connected;
  async run(m: Model, r: Real): Promise<void> {
    const seq = m.nextReq++;
    r.client!.request(1, seq, Buffer.from(this.hold ? 'hold' : `v${seq}`));
    m.pending.add(seq);
    m.queue.push({ seq, hold: this.hold });
    if (m.queue.length === 1) await advance(m, r);
    r.check(m);
  }
  toString = (): string => `Request(${this.hold ? 'held' : 'quick'})`;
}

class Release implements Cmd {
  check = (m: Readonly<Model>): boolean => m.session && m.queue.length > 0 && m.queue[0]!.hold;
  async run(m: Model, r: Real): Promise<void> {
    const head = m.queue.shift()!;
    const id = r.requestId(head.seq);
    r.release.get(id)!();
    r.release.delete(id);
    if (m.connected) {
      await r.client!.next((f) => f.type === FrameType.RESPONSE && f.seq === head.seq);
      m.pending.delete(head.seq);
    } else await r.h.backend.waitForCall((c) => c.headers['x-request-id'] === id && c.status !== undefined, `answer to ${id}`);
    await advance(m, r);
    r.check(m);
  }
  toString = (): string => 'Release';
}

class Ack implements Cmd {
  check = (m: Readonly<Model>): boolean => m.session && m.connected;
  async run(m: Model, r: Real): Promise<void> {
    r.client!.send(frame(FrameType.ACK, m.delivered));
    m.kept = m.kept.filter((s) => s > m.delivered);
    await waitFor('ACK trims the buffer', async () => (await r.player()).body.buffered === m.kept.length);
    r.check(m);
  }
  toString = (): string => 'Ack';
}

/**
 * While detached, the client loses its local state back to seq k (a crash restoring an older
 * save): its lastSeq drops by `back`, possibly below what it ACKed, and it holds no push after k.
 */
class Forget implements Cmd {
  constructor(readonly back: number) {}
  check = (m: Readonly<Model>): boolean => m.session && !m.connected && m.delivered > 0;
  run(m: Model, r: Real): Promise<void> {
    const k = Math.max(0, m.delivered - this.back);
    const rec = r.sessions.get(r.welcome!.sessionId)!;
    rec.pushes = rec.pushes.filter((s) => s <= k);
    rec.floor = k;
    m.delivered = k;
    r.check(m);
    return Promise.resolve();
  }
  toString = (): string => `Forget(${this.back})`;
}

class Kick implements Cmd {
  constructor(readonly via = 0) {}
  check = (m: Readonly<Model>): boolean => m.session;
  async run(m: Model, r: Real): Promise<void> {
    const res = await api(r.gate(this.via), 'POST', '/v1/kick', { playerId: r.playerId });
    assert.equal(res.status, 200);
    if (m.connected) await endedByGate(r, 'kicked');
    await letGo(m, r);
    r.check(m);
  }
  toString = (): string => `Kick${this.via ? '(other gate)' : ''}`;
}

class Idle implements Cmd {
  check = (m: Readonly<Model>): boolean => m.session;
  async run(m: Model, r: Real): Promise<void> {
    // Every gate's idle clock: the one holding the session (or that it was detached from) ends it.
    for (const clock of r.clocks) {
      clock.maxFrames = clock.frame + IDLE_MS;
      clock.flush();
    }
    if (m.connected) await endedByGate(r, 'idle');
    await waitFor('session ended', async () => (await r.player()).status === 404);
    await letGo(m, r);
    r.check(m);
  }
  toString = (): string => 'Idle';
}

const range = (a: number, b: number): number[] => Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i);

/** The fake backend of every run: /connect names the token; a `hold` body waits for its release. */
const backendFor =
  (release: Map<string, () => void>): FakeHandler =>
  async (req) => {
    if (req.path === '/connect') return { status: 200, body: { playerId: (JSON.parse(req.body.toString()) as { token: string }).token } };
    if (req.path.startsWith('/rpc/')) {
      if (req.body.toString() === 'hold') {
        const id = String(req.headers['x-request-id']);
        await new Promise<void>((resolve) => release.set(id, resolve));
      }
      return { status: 200, body: req.body };
    }
    return { status: 204 };
  };

const GATE_CONFIG = { bufferMax: BUFFER_MAX, requestWindow: 64, idleTimeoutMs: IDLE_MS, eventsBackoffMs: 10, eventsBackoffMaxMs: 50 };

for (const store of ['memory', 'redis'] as const) describe(`sessions, resume and exactly-once (model-based, ${store} store)`, () => {
  let gates: Harness[] = [];
  let closeAll: () => Promise<void> = () => Promise.resolve();
  const clocks = [new VirtualTimeScheduler(), new VirtualTimeScheduler()];
  const release = new Map<string, () => void>();
  before(async () => {
    if (store === 'memory') {
      const h = await startGate(GATE_CONFIG, backendFor(release), { idleScheduler: clocks[0]! });
      gates = [h];
      closeAll = () => h.close();
    } else {
      const c = await startCluster(2, GATE_CONFIG, backendFor(release), (i) => ({ idleScheduler: clocks[i]! }));
      gates = c.gates;
      closeAll = () => c.close();
    }
  });
  after(async () => {
    for (const f of release.values()) f();
    await closeAll();
  });
  const h = (): Harness => gates[0]!;

  const commands = [
    fc.constant(new Login()),
    fc.tuple(fc.integer({ min: 1, max: 999 }), fc.nat(1)).map(([n, via]) => new Push(n, via)),
    fc.constant(new Drop()),
    fc.boolean().map((move) => new Resume(move)),
    fc.boolean().map((hold) => new Request(hold)),
    fc.constant(new Release()),
    fc.constant(new Ack()),
    fc.integer({ min: 1, max: 8 }).map((back) => new Forget(back)),
    fc.nat(1).map((via) => new Kick(via)),
    fc.constant(new Idle()),
  ];
  const pushes = (from: number, to: number): Cmd[] => range(from, to).map((n) => new Push(n));
  // Pinned (issue 9): ACK 6 of 8, lose state back to 3 → gap, replay 7, 8; back to 6 → no gap;
  // everything ACKed, back to 0 → gap with nothing to replay, then live pushes go on.
  const pinned: Cmd[][] = [
    // A fresh login while the old session's requests wait behind a held one: they are not run
    // (the session ended), and the new session's requests are not stuck behind them.
    [new Request(true), new Request(true), new Login(), new Request(false)],
    [...pushes(1, 6), new Ack(), ...pushes(7, 8), new Drop(), new Forget(5), new Resume()],
    [...pushes(1, 6), new Ack(), ...pushes(7, 8), new Drop(), new Forget(2), new Resume()],
    [...pushes(1, 2), new Ack(), new Drop(), new Forget(2), new Resume(), new Push(3)],
  ];
  let run = 0;
  let longest = 0;

  // The cluster runs over TCP only: the transports are the same code either way, and each run costs more.
  for (const transport of store === 'memory' ? (['tcp', 'ws'] as const) : (['tcp'] as const)) {
    it(`should keep every session invariant under random commands over ${transport}`, async (t) => {
      await assertProperty(
        t,
        fc.asyncProperty(fc.commands(commands, { maxCommands: 60, size: 'large' }), async (cmds) => {
          const r = new Real(gates, clocks, `model-${store}-${transport}-${++run}`, transport, release);
          const m: Model = { session: false, connected: false, pushSeq: 0, delivered: 0, kept: [], nextReq: 1, pending: new Set(), queue: [] };
          // Every run starts logged in; the commands take it from there.
          await new Login().run(m, r);
          const list = [...cmds];
          longest = Math.max(longest, list.length);
          try {
            await fc.asyncModelRun(() => ({ model: m, real: r }), cmds);
            // Settle: release what is held, resume if detached, and every surviving request is answered exactly once.
            if (m.session && !m.connected) await new Resume().run(m, r);
            while (m.session && m.queue.length > 0) await new Release().run(m, r);
            if (m.session) {
              r.check(m);
              const rec = r.sessions.get(r.welcome!.sessionId)!;
              for (let seq = 1; seq < m.nextReq; seq++) if (rec.answers.has(seq)) assert.equal(rec.answers.get(seq), 1);
              assert.equal(m.pending.size, 0, `unanswered: ${[...m.pending].join(',')}`);
            }
            if (r.client && !r.client.isClosed) await r.client.close();
            if (m.session) await api(h(), 'POST', '/v1/kick', { playerId: r.playerId });
            // Events for every session of this player: online → (detached → resumed)* → offline.
            const backend = h().backend;
            for (const sid of r.sessions.keys()) {
              await waitFor(`offline for ${sid}`, () => backend.events({ acceptedOnly: true }).some((e) => e.sessionId === sid && e.type === 'offline'));
              const all = backend.events({ acceptedOnly: true }).filter((e) => e.sessionId === sid).map((e) => e.type).join(',');
              assert.match(all, /^online(,detached,resumed)*(,detached)?,offline$/, `events of ${sid}: ${all}`);
            }
          } finally {
            if (r.client && !r.client.isClosed) await r.client.destroy();
          }
        }),
        { ...(store === 'memory' ? RUNS : CLUSTER_RUNS), examples: pinned.map((cmds): [Cmd[]] => [cmds]) },
      );
    });
  }

  it('should have covered command sequences', () => {
    assert.ok(longest > 0);
    process.stdout.write(`# model runs: ${run}, longest command sequence: ${longest}\n`);
  });
});

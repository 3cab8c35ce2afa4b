/**
 * The client SDK (lib/client): the browser-safe codec, the client's timers and backoff on a
 * scripted transport in virtual time, and the whole SDK against a real in-process gate over TCP
 * and WebSocket (the `ws` package): login, requests, notifies, pushes and ACKs, resume after a
 * lost link with exactly-once pushes and requests, gaps, refused resumes, kicks, replacement
 * and logout.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BehaviorSubject, Observable, Subject, filter, switchMap, take, throwError } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import type { GateConfig } from '../lib/config.js';
import {
  FrameReader,
  FrameType,
  GateClient,
  GateClosedError,
  GateProtocolError,
  GateRequestError,
  decodeFrame,
  decodeJson,
  decodeText,
  encodeFrame,
  frame,
  inflateRaw,
  tcpTransport,
  wsTransport,
  type ClientEvent,
  type ClientState,
  type GateClientOptions,
  type GateFrame,
  type Link,
  type Push,
  type Transport,
} from '../lib/client/node.js';
import { defaultHandler, type FakeHandler, type RecordedCall } from './helpers/fakeBackend.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { waitFor, waitForAsync, withTimeout } from './helpers/wait.js';

/** Bound on any single wait in this file, ms. */
const WAIT_MS = 3_000;
type Kind = 'tcp' | 'ws';
const KINDS: readonly Kind[] = ['tcp', 'ws'];
/** Demo-free routes: the fake backend echoes every /rpc body. */
const ECHO = 5;
const SLOW = 7;

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);

// ------------------------------------------------------------------------------------------------
// codec

describe('client codec', () => {
  const sample: GateFrame = { type: FrameType.PUSH, flags: 0, route: 0x1234, seq: 0xfffffffe, body: new TextEncoder().encode('héllo') };

  it('should round-trip a frame without and with the TCP length prefix', () => {
    const ws = encodeFrame(sample, false);
    assert.equal(ws.length, 8 + sample.body.length);
    assert.deepEqual(decodeFrame(ws), sample);
    const tcp = encodeFrame(sample, true);
    assert.equal(new DataView(tcp.buffer).getUint32(0), 8 + sample.body.length);
    assert.deepEqual(new FrameReader().push(tcp), [sample]);
  });

  it('should encode the worked example of docs/protocol.md byte for byte', () => {
    const f = frame(FrameType.REQUEST, 1, new TextEncoder().encode('{"room":"lobby"}'), 1001);
    const hex = Buffer.from(encodeFrame(f, true)).toString('hex');
    assert.equal(hex, '00000018' + '03' + '00' + '03e9' + '00000001' + Buffer.from('{"room":"lobby"}').toString('hex'));
    assert.equal(Buffer.from(encodeFrame(frame(FrameType.PING, 5), true)).toString('hex'), '000000080700000000000005');
  });

  it('should decode the same frames whatever way the TCP stream is split', () => {
    const frames: GateFrame[] = [sample, frame(FrameType.PING, 7), { ...sample, seq: 3, body: new Uint8Array(300).fill(9) }, frame(FrameType.PONG, 8)];
    const stream = Buffer.concat(frames.map((f) => encodeFrame(f, true)));
    for (let size = 1; size <= stream.length; size++) {
      const reader = new FrameReader();
      const got: GateFrame[] = [];
      for (let at = 0; at < stream.length; at += size) got.push(...reader.push(stream.subarray(at, at + size)));
      assert.deepEqual(got, frames, `chunk size ${size}`);
      assert.equal(reader.buffered, 0);
    }
  });

  it('should give frames bodies of their own, not views into the receive buffer', () => {
    const chunk = encodeFrame(frame(FrameType.PUSH, 1, bytes(1, 2, 3)), true);
    const [f] = new FrameReader().push(chunk);
    chunk.fill(0);
    assert.deepEqual(f!.body, bytes(1, 2, 3));
  });

  it('should refuse malformed input with a GateProtocolError code', () => {
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        assert.ok(e instanceof GateProtocolError, String(e));
        return e.code;
      }
      return 'no error';
    };
    assert.equal(code(() => decodeFrame(bytes(5, 0, 0))), 'FRAME_TOO_SHORT');
    assert.equal(code(() => decodeFrame(bytes(11, 0, 0, 0, 0, 0, 0, 0))), 'FRAME_TYPE');
    assert.equal(code(() => decodeFrame(bytes(5, 2, 0, 0, 0, 0, 0, 0))), 'FRAME_FLAGS');
    assert.equal(code(() => decodeFrame(new Uint8Array(8 + 11).fill(5, 0, 1), 10)), 'FRAME_TOO_LARGE');
    assert.equal(code(() => new FrameReader().push(bytes(0, 0, 0, 7))), 'FRAME_TOO_SHORT');
    // The length alone is refused before any of the body is buffered.
    assert.equal(code(() => new FrameReader(1024).push(bytes(0, 0, 0x10, 0))), 'FRAME_TOO_LARGE');
    assert.equal(code(() => decodeJson(bytes(0x7b))), 'BAD_JSON');
  });

  it('should stay broken after malformed input', () => {
    const reader = new FrameReader();
    assert.throws(() => reader.push(bytes(0, 0, 0, 1)), GateProtocolError);
    assert.throws(() => reader.push(encodeFrame(frame(FrameType.PING, 1), true)), GateProtocolError);
  });
});

// ------------------------------------------------------------------------------------------------
// the client on a scripted transport, in virtual time

/** A transport whose links the test drives: it sees every frame sent and injects frames. */
class ScriptedTransport implements Transport {
  /** Links opened, oldest first. */
  readonly links: ScriptedLink[] = [];
  /** Virtual times of each open(). */
  readonly opens: number[] = [];
  /** False: open() fails (a refused dial). */
  accept = true;
  constructor(private readonly now: () => number) {}
  open(): Observable<Link> {
    return new Observable<Link>((subscriber) => {
      this.opens.push(this.now());
      if (!this.accept) {
        subscriber.error(new Error('connection refused'));
        return;
      }
      const link = new ScriptedLink();
      this.links.push(link);
      subscriber.next(link);
      return () => link.close();
    });
  }
  get last(): ScriptedLink {
    const l = this.links.at(-1);
    assert.ok(l, 'no link was opened');
    return l;
  }
}

class ScriptedLink implements Link {
  readonly sent: GateFrame[] = [];
  private readonly inbound = new Subject<GateFrame>();
  readonly frames$ = this.inbound.asObservable();
  closed = false;
  send(f: GateFrame): boolean {
    if (this.closed) return false;
    this.sent.push(f);
    return true;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbound.complete();
  }
  abort(): void {
    this.close();
  }
  receive(f: GateFrame): void {
    this.inbound.next(f);
  }
  welcome(over: Record<string, unknown> = {}): void {
    const w = { playerId: 'p', sessionId: 's1', resumeToken: 'rt', gateId: 'g', heartbeatMs: 1000, resumed: false, gap: false, lastSeq: 0, ...over };
    this.receive(frame(FrameType.WELCOME, 0, new TextEncoder().encode(JSON.stringify(w))));
  }
  sentOf(type: number): GateFrame[] {
    return this.sent.filter((f) => f.type === type);
  }
}

function scripted(over: Partial<GateClientOptions> = {}): { ts: TestScheduler; transport: ScriptedTransport; client: GateClient; advanceTo: (t: number) => void } {
  const ts = new TestScheduler(assert.deepEqual);
  const transport = new ScriptedTransport(() => ts.now());
  const client = new GateClient({ transport, token: 'p', scheduler: ts, random: () => 0.5, reconnect: { baseMs: 100, maxMs: 400 }, ...over });
  const advanceTo = (t: number): void => {
    ts.maxFrames = t;
    ts.flush();
    ts.frame = t;
  };
  return { ts, transport, client, advanceTo };
}

describe('GateClient on a scripted transport', () => {
  it('should send HELLO with the token, then PING every heartbeatMs once welcomed', async () => {
    const { transport, client, advanceTo } = scripted();
    const welcome = client.connect();
    const link = transport.last;
    assert.deepEqual(decodeJson(link.sent[0]!.body), { token: 'p' });
    assert.equal(link.sent[0]!.type, FrameType.HELLO);
    link.welcome();
    assert.equal((await welcome).sessionId, 's1');
    assert.equal(client.currentState, 'online');
    // Frames keep the link alive; the client PINGs on its own clock.
    for (let t = 900; t <= 2900; t += 1000) {
      advanceTo(t);
      link.receive(frame(FrameType.PONG, 0));
    }
    assert.deepEqual(link.sentOf(FrameType.PING).map((f) => f.seq), [1, 2]);
    await client.close();
  });

  it('should answer a PING from the gate with a PONG of the same seq', async () => {
    const { transport, client } = scripted();
    const welcome = client.connect();
    transport.last.welcome();
    await welcome;
    transport.last.receive(frame(FrameType.PING, 77));
    assert.deepEqual(transport.last.sentOf(FrameType.PONG).map((f) => f.seq), [77]);
    await client.close();
  });

  it('should batch ACKs: at once after ackEvery pushes, else ackDelayMs after the first unacked', async () => {
    const { transport, client, advanceTo } = scripted({ ackEvery: 3, ackDelayMs: 100 });
    const welcome = client.connect();
    const link = transport.last;
    link.welcome();
    await welcome;
    const push = (seq: number): void => link.receive(frame(FrameType.PUSH, seq, bytes(seq), 9));
    push(1);
    assert.equal(link.sentOf(FrameType.ACK).length, 0);
    advanceTo(99);
    assert.equal(link.sentOf(FrameType.ACK).length, 0);
    advanceTo(100);
    assert.deepEqual(link.sentOf(FrameType.ACK).map((f) => f.seq), [1]);
    push(2);
    push(3);
    push(4);
    assert.deepEqual(link.sentOf(FrameType.ACK).map((f) => f.seq), [1, 4], 'three unacked pushes: ACK at once');
    advanceTo(400);
    assert.deepEqual(link.sentOf(FrameType.ACK).map((f) => f.seq), [1, 4], 'no ACK without new pushes');
    await client.close();
  });

  it('should drop a link silent for 3 heartbeats and back off with capped exponential delays and jitter', async () => {
    const { ts, transport, client, advanceTo } = scripted({ random: () => 0.5 });
    const states: ClientState[] = [];
    client.state$.subscribe((s) => states.push(s));
    const welcome = client.connect();
    transport.last.welcome();
    await welcome;
    transport.accept = false;
    advanceTo(3000); // silence: 3 × 1000 ms
    assert.equal(transport.last.closed, true);
    // Waits are equal-jittered: d/2 + 0.5·d/2 = 0.75·d, d = min(100·2^(n-1), 400).
    advanceTo(3000 + 75 + 150 + 300 + 300);
    assert.deepEqual(transport.opens, [0, 3075, 3225, 3525, 3825]);
    transport.accept = true;
    advanceTo(4125);
    assert.equal(transport.opens.at(-1), 4125);
    const link = transport.last;
    assert.deepEqual(decodeJson(link.sent[0]!.body), { token: 'p', resume: { sessionId: 's1', resumeToken: 'rt', lastSeq: 0 } });
    link.welcome({ resumed: true });
    assert.deepEqual(states, ['idle', 'connecting', 'online', 'detached', 'reconnecting', 'detached', 'reconnecting', 'detached', 'reconnecting', 'detached', 'reconnecting', 'detached', 'reconnecting', 'online']);
    // The backoff restarts after a WELCOME.
    link.close();
    advanceTo(ts.now() + 75);
    assert.equal(transport.opens.at(-1), 4125 + 75);
    await client.close();
  });

  it('should re-send unanswered requests with their seqs after a resume, and settle each once', async () => {
    const { transport, client, advanceTo } = scripted();
    const welcome = client.connect();
    transport.last.welcome();
    await welcome;
    const a = client.request(ECHO, 'a');
    const b = client.request(ECHO, 'b');
    transport.last.receive(frame(FrameType.RESPONSE, 1, bytes(1), ECHO));
    assert.deepEqual(await a, bytes(1));
    transport.last.abort();
    const c = client.request(ECHO, 'c'); // made while offline: queued
    advanceTo(75);
    const link = transport.last;
    link.welcome({ resumed: true });
    assert.deepEqual(link.sentOf(FrameType.REQUEST).map((f) => [f.seq, decodeText(f.body)]), [[2, 'b'], [3, 'c']]);
    link.receive(frame(FrameType.RESPONSE, 2, bytes(2), ECHO));
    link.receive(frame(FrameType.RESPONSE, 2, bytes(22), ECHO)); // a duplicate answer is ignored
    link.receive(frame(FrameType.ERROR, 3, new TextEncoder().encode('{"code":"UPSTREAM_STATUS","message":"no","status":409}')));
    assert.deepEqual(await b, bytes(2));
    await assert.rejects(c, (e: unknown) => e instanceof GateRequestError && e.code === 'UPSTREAM_STATUS' && e.status === 409);
    assert.equal(client.pendingCount, 0);
    await client.close();
  });

  it('should deliver replayed pushes once, and accept a jump after a gap', async () => {
    const { transport, client, advanceTo } = scripted();
    const pushes: number[] = [];
    let gaps = 0;
    client.pushes$.subscribe((p) => pushes.push(p.seq));
    client.gap$.subscribe(() => gaps++);
    const welcome = client.connect();
    transport.last.welcome();
    await welcome;
    for (const s of [1, 2]) transport.last.receive(frame(FrameType.PUSH, s));
    transport.last.abort();
    advanceTo(75);
    let link = transport.last;
    assert.equal(decodeJson<{ resume: { lastSeq: number } }>(link.sent[0]!.body).resume.lastSeq, 2);
    link.welcome({ resumed: true });
    for (const s of [2, 3, 3, 4]) link.receive(frame(FrameType.PUSH, s));
    link.abort();
    advanceTo(150);
    link = transport.last;
    link.welcome({ resumed: true, gap: true });
    for (const s of [9, 10, 4]) link.receive(frame(FrameType.PUSH, s));
    assert.deepEqual(pushes, [1, 2, 3, 4, 9, 10]);
    assert.equal(gaps, 1);
    await client.close();
  });

  it('should fail connect() at once when the first dial fails, and reject later requests CLOSED', async () => {
    const { transport, client } = scripted();
    transport.accept = false;
    await assert.rejects(client.connect(), (e: unknown) => e instanceof GateClosedError && e.code === 'connect_failed');
    assert.equal(client.currentState, 'closed');
    await assert.rejects(client.request(ECHO, 'x'), (e: unknown) => e instanceof GateRequestError && e.code === 'CLOSED');
  });

  it('should close after reconnect.maxAttempts failed attempts in a row', async () => {
    const { transport, client, advanceTo } = scripted({ reconnect: { baseMs: 100, maxMs: 400, maxAttempts: 2 } });
    const events: ClientEvent[] = [];
    client.events$.subscribe((e) => events.push(e));
    const welcome = client.connect();
    transport.last.welcome();
    await welcome;
    const pending = client.request(ECHO, 'x');
    transport.accept = false;
    transport.last.abort();
    advanceTo(10_000);
    assert.equal(transport.opens.length, 3);
    assert.equal(client.currentState, 'closed');
    const closed = events.find((e) => e.type === 'closed');
    assert.equal(closed?.type === 'closed' && closed.error.code, 'reconnect_failed');
    await assert.rejects(pending, (e: unknown) => e instanceof GateRequestError && e.code === 'CLOSED');
  });

  it('should refuse bad options when constructed', () => {
    const transport = new ScriptedTransport(() => 0);
    assert.throws(() => new GateClient({ transport, ackEvery: 0 }), TypeError);
    assert.throws(() => new GateClient({ transport, reconnect: { baseMs: 100, maxMs: 10 } }), TypeError);
    assert.throws(() => new GateClient({} as GateClientOptions), TypeError);
  });
});

// ------------------------------------------------------------------------------------------------
// against a real gate

/** Wraps a transport so the test can hold new dials (open() waits) and count them. */
function holdable(inner: Transport): Transport & { hold(): void; release(): void; readonly dials: number } {
  const open$ = new BehaviorSubject(true);
  let dials = 0;
  return {
    open: () =>
      open$.pipe(
        filter(Boolean),
        take(1),
        switchMap(() => {
          dials++;
          return inner.open();
        }),
      ),
    hold: () => open$.next(false),
    release: () => open$.next(true),
    get dials() {
      return dials;
    },
  };
}

interface Rig {
  h: Harness;
  transport: ReturnType<typeof holdable>;
  client: GateClient;
  pushes: Push[];
  states: ClientState[];
  events: ClientEvent[];
}

function makeTransport(h: Harness, kind: Kind): Transport {
  return kind === 'tcp' ? tcpTransport({ port: h.tcpPort }) : wsTransport(`ws://127.0.0.1:${h.wsPort}/`);
}

function rig(h: Harness, kind: Kind, playerId: string, over: Partial<GateClientOptions> = {}): Rig {
  const transport = holdable(makeTransport(h, kind));
  const client = new GateClient({ transport, token: playerId, reconnect: { baseMs: 5, maxMs: 20 }, ackDelayMs: 5, ...over });
  const r: Rig = { h, transport, client, pushes: [], states: [], events: [] };
  client.pushes$.subscribe((p) => r.pushes.push(p));
  client.state$.subscribe((s) => r.states.push(s));
  client.events$.subscribe((e) => r.events.push(e));
  return r;
}

async function withGate(over: Partial<GateConfig>, rpc: FakeHandler | undefined, fn: (h: Harness) => Promise<void>): Promise<void> {
  const handler: FakeHandler = (req) => (rpc && req.path.startsWith('/rpc/') ? rpc(req) : defaultHandler(req));
  const h = await startGate({ auth: 'none', shutdownGraceMs: 200, ...over }, handler);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

const push = async (h: Harness, playerId: string, data: unknown): Promise<{ seq: number; status: string }> => {
  const r = await api(h, 'POST', '/v1/push', { playerId, route: 100, data });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
};

const gateState = async (h: Harness, playerId: string): Promise<string | null> => {
  const r = await api(h, 'GET', `/v1/players/${playerId}`);
  return r.status === 200 ? (r.body.state as string) : null;
};

const until = (what: string, check: () => Promise<boolean>): Promise<void> => waitForAsync(what, check, WAIT_MS);

/** Polls the gate until the player's session is in `state` (null: no session). */
const untilGateSays = (h: Harness, playerId: string, state: string | null): Promise<void> =>
  until(`the gate to report ${playerId} as ${state}`, async () => (await gateState(h, playerId)) === state);

const untilState = (r: Rig, s: ClientState): Promise<unknown> =>
  waitFor(`client state ${s} (states so far: ${r.states.join(' → ')})`, () => r.client.currentState === s, WAIT_MS);

const rpcCalls = (h: Harness, route: number): RecordedCall[] => h.backend.calls.filter((c) => c.path === `/rpc/${route}`);

/** A promise a backend handler can wait on, released by the test. */
function latch(): { wait: Promise<void>; release: () => void } {
  let release!: () => void;
  const wait = new Promise<void>((r) => (release = r));
  return { wait, release };
}

for (const kind of KINDS) {
  describe(`GateClient against a real gate over ${kind}`, () => {
    it('should log in, answer requests, send notifies and close with BYE logout', () =>
      withGate({}, undefined, async (h) => {
        const r = rig(h, kind, 'alice');
        const w = await withTimeout(r.client.connect(), WAIT_MS, 'WELCOME');
        assert.equal(w.playerId, 'alice');
        assert.equal(w.resumed, false);
        assert.deepEqual(decodeJson(await r.client.request(ECHO, { hi: 1 })), { hi: 1 });
        assert.equal(decodeText(await r.client.request(ECHO, 'text')), 'text');
        assert.deepEqual(await r.client.request(ECHO, bytes(0, 255)), bytes(0, 255));
        assert.deepEqual(await r.client.requestJson(ECHO, { n: 2 }), { n: 2 });
        assert.equal(r.client.notify(9, { note: true }), true);
        const note = await h.backend.waitForCall((c) => c.path === '/rpc/9', 'the notify upstream', WAIT_MS);
        assert.equal(note.headers['x-request-id'], `${w.sessionId}.0`);
        // Each request its own, increasing seq.
        assert.deepEqual(rpcCalls(h, ECHO).map((c) => c.headers['x-request-id']), [1, 2, 3, 4].map((s) => `${w.sessionId}.${s}`));
        await r.client.close();
        assert.equal(r.client.currentState, 'closed');
        await untilGateSays(h, 'alice', null); // logout ends the session: no resume
        assert.deepEqual(r.states, ['idle', 'connecting', 'online', 'closed']);
      }));

    it('should reject with the gate ERROR code and status', () =>
      withGate({}, (req) => (req.path === '/rpc/4' ? { status: 409, body: { error: 'no' } } : defaultHandler(req)), async (h) => {
        const r = rig(h, kind, 'bob');
        await withTimeout(r.client.connect(), WAIT_MS, 'WELCOME');
        await assert.rejects(r.client.request(4, {}), (e: unknown) => e instanceof GateRequestError && e.code === 'UPSTREAM_STATUS' && e.status === 409);
        await r.client.close();
      }));

    it('should deliver pushes in order and ACK them so the gate lets them go', () =>
      withGate({}, undefined, async (h) => {
        const r = rig(h, kind, 'carol');
        await withTimeout(r.client.connect(), WAIT_MS, 'WELCOME');
        for (let i = 1; i <= 5; i++) await push(h, 'carol', { i });
        await waitFor('5 pushes', () => r.pushes.length === 5, WAIT_MS);
        assert.deepEqual(r.pushes.map((p) => [p.seq, p.route, decodeJson(p.body)]), [1, 2, 3, 4, 5].map((i) => [i, 100, { i }]));
        await until('the gate to drop ACKed pushes', async () => (await api(h, 'GET', '/v1/players/carol')).body.buffered === 0);
        await r.client.close();
      }));

    it('should resume after a lost link and deliver pushes sent while detached exactly once, in order', () =>
      withGate({}, undefined, async (h) => {
        const r = rig(h, kind, 'dave');
        const w = await withTimeout(r.client.connect(), WAIT_MS, 'WELCOME');
        await push(h, 'dave', { i: 1 });
        await push(h, 'dave', { i: 2 });
        await waitFor('2 pushes', () => r.pushes.length === 2, WAIT_MS);
        r.transport.hold();
        r.client.dropLink();
        await untilState(r, 'reconnecting');
        await untilGateSays(h, 'dave', 'detached');
        for (let i = 3; i <= 6; i++) assert.equal((await push(h, 'dave', { i })).status, 'buffered');
        r.transport.release();
        await untilState(r, 'online');
        await push(h, 'dave', { i: 7 });
        await waitFor('7 pushes', () => r.pushes.length >= 7, WAIT_MS);
        assert.deepEqual(r.pushes.map((p) => decodeJson(p.body)), [1, 2, 3, 4, 5, 6, 7].map((i) => ({ i })));
        assert.deepEqual(r.pushes.map((p) => p.seq), [1, 2, 3, 4, 5, 6, 7]);
        assert.deepEqual(r.states, ['idle', 'connecting', 'online', 'detached', 'reconnecting', 'online']);
        assert.equal(r.client.welcome?.sessionId, w.sessionId);
        assert.equal(r.client.welcome?.resumed, true);
        assert.deepEqual(decodeJson(await r.client.request(ECHO, { after: true })), { after: true });
        await r.client.close();
      }));

    it('should report a gap when the gate dropped pushes while detached, and take the pushes after it', () =>
      withGate({ bufferMax: 2 }, undefined, async (h) => {
        const r = rig(h, kind, 'erin');
        let gaps = 0;
        r.client.gap$.subscribe(() => gaps++);
        await withTimeout(r.client.connect(), WAIT_MS, 'WELCOME');
        r.transport.hold();
        r.client.dropLink();
        await untilGateSays(h, 'erin', 'detached');
        for (let i = 1; i <= 5; i++) await push(h, 'erin', { i });
        r.transport.release();
        await waitFor('the 2 kept pushes', () => r.pushes.length === 2, WAIT_MS);
        assert.equal(gaps, 1);
        assert.deepEqual(r.pushes.map((p) => p.seq), [4, 5]);
        await push(h, 'erin', { i: 6 });
        await waitFor('push 6', () => r.pushes.length === 3, WAIT_MS);
        assert.equal(r.pushes[2]!.seq, 6);
        await r.client.close();
      }));

    it('should reject sent requests SESSION_LOST when the resume is refused, and send the queued ones on the new session', () =>
      withGate({}, undefined, async (h) => {
        const gateOpen = latch();
        h.backend.setHandler((req) => (req.path === `/rpc/${SLOW}` ? gateOpen.wait.then(() => ({ status: 200, body: req.body })) : defaultHandler(req)));
        const r = rig(h, kind, 'frank');
        const w = await withTimeout(r.client.connect(), WAIT_MS, 'WELCOME');
        await push(h, 'frank', { old: 1 });
        await waitFor('the old push', () => r.pushes.length === 1, WAIT_MS);
        const slow = r.client.request(SLOW, 'slow');
        slow.catch(() => undefined);
        await h.backend.waitForCall((c) => c.path === `/rpc/${SLOW}`, 'the slow request upstream', WAIT_MS);
        r.transport.hold();
        r.client.dropLink();
        await untilGateSays(h, 'frank', 'detached');
        const queued = r.client.request(ECHO, 'queued');
        assert.equal((await api(h, 'POST', '/v1/kick', { playerId: 'frank' })).status, 200); // ends the detached session
        r.transport.release();
        await assert.rejects(withTimeout(slow, WAIT_MS, 'the slow request to settle'), (e: unknown) => e instanceof GateRequestError && e.code === 'SESSION_LOST');
        gateOpen.release(); // one player's requests run in order: the old one must finish first
        assert.equal(decodeText(await withTimeout(queued, WAIT_MS, 'the queued request')), 'queued');
        assert.notEqual(r.client.welcome?.sessionId, w.sessionId);
        assert.ok(r.events.some((e) => e.type === 'session_lost' && e.reason === 'refused'));
        await push(h, 'frank', { fresh: 1 });
        await waitFor('the first push of the new session', () => r.pushes.length === 2, WAIT_MS);
        assert.equal(r.pushes[1]!.seq, 1, 'push seqs restart with the session');
        assert.equal(rpcCalls(h, SLOW).length, 1, 'the lost request is never re-sent');
        await r.client.close();
      }));

    it('should close on /v1/kick, reject pending requests and not reconnect', () =>
      withGate({}, (req) => (req.path === `/rpc/${SLOW}` ? { hang: true } : defaultHandler(req)), async (h) => {
        const r = rig(h, kind, 'gina');
        await withTimeout(r.client.connect(), WAIT_MS, 'WELCOME');
        const pending = r.client.request(SLOW, 'x');
        const outcome = pending.then(
          () => 'resolved',
          (e: unknown) => e,
        );
        await h.backend.waitForCall((c) => c.path === `/rpc/${SLOW}`, 'the request upstream', WAIT_MS);
        assert.equal((await api(h, 'POST', '/v1/kick', { playerId: 'gina', reason: 'cheating' })).status, 200);
        const e = await withTimeout(outcome, WAIT_MS, 'the pending request');
        assert.ok(e instanceof GateRequestError && e.code === 'CLOSED', String(e));
        await untilState(r, 'closed');
        const closed = r.events.find((e) => e.type === 'closed');
        assert.ok(closed?.type === 'closed' && closed.error.code === 'kicked' && closed.error.reason === 'cheating', JSON.stringify(closed));
        assert.equal(r.transport.dials, 1);
        assert.equal(r.states.at(-1), 'closed');
      }));

    it('should close with code replaced when the player logs in elsewhere', () =>
      withGate({}, undefined, async (h) => {
        const a = rig(h, kind, 'hank');
        await withTimeout(a.client.connect(), WAIT_MS, 'first WELCOME');
        const b = rig(h, kind, 'hank');
        await withTimeout(b.client.connect(), WAIT_MS, 'second WELCOME');
        await untilState(a, 'closed');
        assert.ok(a.events.some((e) => e.type === 'closed' && e.error.code === 'replaced'));
        assert.equal(a.transport.dials, 1);
        await b.client.close();
      }));

    it('should resolve a request exactly once when its link drops while the backend works on it', () =>
      withGate({}, undefined, async (h) => {
        const gateOpen = latch();
        h.backend.setHandler((req) => (req.path === `/rpc/${SLOW}` ? gateOpen.wait.then(() => ({ status: 200, body: req.body })) : defaultHandler(req)));
        const r = rig(h, kind, 'ivy');
        await withTimeout(r.client.connect(), WAIT_MS, 'WELCOME');
        let settled = 0;
        const slow = r.client.request(SLOW, 'once').finally(() => settled++);
        await h.backend.waitForCall((c) => c.path === `/rpc/${SLOW}`, 'the slow request upstream', WAIT_MS);
        r.transport.hold();
        r.client.dropLink();
        await untilGateSays(h, 'ivy', 'detached');
        r.transport.release();
        await untilState(r, 'online');
        gateOpen.release();
        assert.equal(decodeText(await withTimeout(slow, WAIT_MS, 'the slow request')), 'once');
        // One player's requests run in order: once this answers, a duplicate of SLOW would have run.
        await r.client.request(ECHO, 'barrier');
        assert.equal(rpcCalls(h, SLOW).length, 1, `the re-sent request must not run again; calls: ${JSON.stringify(rpcCalls(h, SLOW).map((c) => c.headers['x-request-id']))}`);
        assert.equal(settled, 1);
        await r.client.close();
      }));

    it('should receive compressed pushes when given inflate', () =>
      withGate({}, undefined, async (h) => {
        const r = rig(h, kind, 'jay', { inflate: (b) => inflateRaw(b) });
        await withTimeout(r.client.connect(), WAIT_MS, 'WELCOME');
        const big = 'x'.repeat(5000);
        await push(h, 'jay', { big });
        await waitFor('the big push', () => r.pushes.length === 1, WAIT_MS);
        assert.deepEqual(decodeJson(r.pushes[0]!.body), { big });
        await r.client.close();
      }));
  });
}

describe('GateClient login failures', () => {
  it('should reject connect() with auth_failed and not retry', () =>
    withGate({ auth: 'upstream' }, undefined, async (h) => {
      h.backend.setHandler((req) => (req.path === '/connect' ? { status: 401 } : defaultHandler(req)));
      const r = rig(h, 'tcp', 'nobody');
      await assert.rejects(withTimeout(r.client.connect(), WAIT_MS, 'the refusal'), (e: unknown) => e instanceof GateClosedError && e.code === 'auth_failed');
      assert.equal(r.transport.dials, 1);
    }));

  it('should reject connect() with connect_failed when nothing listens', async () => {
    const h = await startGate({ auth: 'none' });
    const port = h.tcpPort;
    await h.close();
    const client = new GateClient({ transport: tcpTransport({ port }), token: 'x' });
    await assert.rejects(withTimeout(client.connect(), WAIT_MS, 'the dial failure'), (e: unknown) => e instanceof GateClosedError && e.code === 'connect_failed');
  });

  it('should close when the transport fails at once, and stay closed', async () => {
    const t: Transport = { open: () => throwError(() => new Error('boom')) };
    const client = new GateClient({ transport: t });
    await assert.rejects(client.connect(), GateClosedError);
    await client.close();
    assert.equal(client.currentState, 'closed');
    await assert.rejects(client.connect(), GateClosedError);
  });
});


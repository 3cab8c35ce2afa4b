/**
 * Framing and transport limits over real sockets (CONTRACT §2.1, §1 --max-frame and
 * --max-connections): every kind of malformed input ends only the offending link with BYE
 * protocol_error, the gate and other links carry on; connections past the limit are refused at
 * accept; a backend reply too big to send becomes an ERROR.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FrameType, HEADER_BYTES, encodeFrame, type Frame } from '../lib/frame.js';
import { defaultHandler, type FakeHandler } from './helpers/fakeBackend.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, connectWs, json, type ByeBody, type TestClient } from './helpers/testClient.js';
import { waitFor, withTimeout } from './helpers/wait.js';

type Transport = 'tcp' | 'ws';
/** Bound on any single wait in this file, ms. */
const WAIT_MS = 3_000;
/** --max-frame for these tests: small, so over-limit frames are cheap to build. */
const MAX_FRAME = 1024;

const open = (h: Harness, t: Transport): Promise<TestClient> => (t === 'tcp' ? connectTcp(h.tcpPort) : connectWs(h.wsPort));

/** The 8-byte header of §2.1. */
function header(type: number, flags = 0, route = 0, seq = 0): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b[0] = type;
  b[1] = flags;
  b.writeUInt16BE(route, 2);
  b.writeUInt32BE(seq, 4);
  return b;
}

/** A TCP length prefix saying `len` (which may lie about what follows). */
function prefix(len: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(len >>> 0, 0);
  return b;
}

/** The unprefixed bytes of a frame: one WS message, or (with `prefix`) a TCP frame. */
const raw = (type: number, flags: number, body: Buffer = Buffer.alloc(0)): Buffer => Buffer.concat([header(type, flags, 0, 1), body]);
const tcpRaw = (type: number, flags: number, body: Buffer = Buffer.alloc(0)): Buffer => Buffer.concat([prefix(HEADER_BYTES + body.length), raw(type, flags, body)]);

/** The link gets BYE protocol_error and is closed. */
async function expectProtocolError(c: TestClient): Promise<void> {
  const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
  assert.equal((json(bye) as ByeBody).code, 'protocol_error');
  await withTimeout(c.closed, WAIT_MS, 'the gate to close the link after BYE protocol_error');
}

/** A REQUEST round trip on `c` (already logged in) works. */
async function roundTrip(c: TestClient, seq: number): Promise<void> {
  c.request(1, seq, { ping: seq });
  const f = await c.next((x) => x.seq === seq && (x.type === FrameType.RESPONSE || x.type === FrameType.ERROR), WAIT_MS);
  assert.equal(f.type, FrameType.RESPONSE, `request #${seq} should get a RESPONSE`);
  assert.deepEqual(json(f), { ping: seq });
}

/** Malformed inputs per transport: a name and the bytes one `sendRaw` carries. */
const MALFORMED: Record<Transport, readonly { what: string; bytes: () => Buffer }[]> = {
  tcp: [
    { what: 'a length prefix whose body is over --max-frame', bytes: () => tcpRaw(FrameType.REQUEST, 0, Buffer.alloc(MAX_FRAME + 1)) },
    { what: 'a far larger length prefix with its body', bytes: () => tcpRaw(FrameType.REQUEST, 0, Buffer.alloc(MAX_FRAME * 8)) },
    { what: 'a length prefix of 0xFFFFFFFF alone', bytes: () => prefix(0xffffffff) },
    { what: 'a length under 8', bytes: () => Buffer.concat([prefix(7), Buffer.alloc(7)]) },
    { what: 'a length of 0', bytes: () => prefix(0) },
    { what: 'frame type 0', bytes: () => tcpRaw(0, 0) },
    { what: 'frame type 11', bytes: () => tcpRaw(11, 0) },
    { what: 'frame type 255', bytes: () => tcpRaw(255, 0) },
    { what: 'reserved flag bit 1', bytes: () => tcpRaw(FrameType.PING, 0x02) },
    { what: 'reserved flag bit 7', bytes: () => tcpRaw(FrameType.PING, 0x80) },
    { what: 'a gate-to-client frame type (WELCOME)', bytes: () => tcpRaw(FrameType.WELCOME, 0, Buffer.from('{}')) },
  ],
  ws: [
    { what: 'a message whose body is over --max-frame', bytes: () => raw(FrameType.REQUEST, 0, Buffer.alloc(MAX_FRAME + 1)) },
    { what: 'a message whose body is 8x --max-frame', bytes: () => raw(FrameType.REQUEST, 0, Buffer.alloc(MAX_FRAME * 8)) },
    { what: 'a message under 8 bytes', bytes: () => Buffer.from([FrameType.PING, 0, 0, 0, 0]) },
    { what: 'an empty message', bytes: () => Buffer.alloc(0) },
    { what: 'frame type 0', bytes: () => raw(0, 0) },
    { what: 'frame type 11', bytes: () => raw(11, 0) },
    { what: 'reserved flag bit 1', bytes: () => raw(FrameType.PING, 0x02) },
    { what: 'reserved flag bit 7', bytes: () => raw(FrameType.PING, 0x80) },
    { what: 'a gate-to-client frame type (WELCOME)', bytes: () => raw(FrameType.WELCOME, 0, Buffer.from('{}')) },
  ],
};

for (const t of ['tcp', 'ws'] as const) {
  describe(`malformed input over ${t}`, () => {
    let h: Harness;
    /** A client logged in before any bad input, which must keep working throughout. */
    let bystander: TestClient;
    let seq = 0; // bystander's request seqs

    before(async () => {
      h = await startGate({ auth: 'none', maxFrame: MAX_FRAME });
      bystander = await open(h, t === 'tcp' ? 'ws' : 'tcp');
      await bystander.hello({ token: 'bystander' }, WAIT_MS);
    });
    after(() => h.close());

    for (const { what, bytes } of MALFORMED[t]) {
      it(`should answer ${what} with BYE protocol_error, before HELLO and after`, async () => {
        const early = await open(h, t);
        early.sendRaw(bytes());
        await expectProtocolError(early);

        const late = await open(h, t);
        await late.hello({ token: `late-${seq}` }, WAIT_MS);
        late.sendRaw(bytes());
        await expectProtocolError(late);

        await roundTrip(bystander, ++seq);
        const next = await open(h, t);
        await next.hello({ token: `next-${seq}` }, WAIT_MS);
        await roundTrip(next, 1);
        await next.close();
      });
    }

    if (t === 'ws') {
      it('should close the link on a message far over --max-frame and carry on', async () => {
        const c = await open(h, 'ws');
        await c.hello({ token: 'flooder' }, WAIT_MS);
        c.sendRaw(raw(FrameType.REQUEST, 0, Buffer.alloc(1024 * 1024)));
        // Past --max-frame + 64 KiB, ws itself ends the link (close 1009) before buffering it all.
        const closed = await withTimeout(c.closed, WAIT_MS, 'the gate to close a link sending 1 MiB');
        const bye = c.frames.find((f) => f.type === FrameType.BYE);
        if (bye) assert.equal((json(bye) as ByeBody).code, 'protocol_error');
        else assert.equal(closed.code, 1009);
        await roundTrip(bystander, ++seq);
      });

      it('should answer a text message with BYE protocol_error', async () => {
        const c = await open(h, 'ws');
        await c.hello({ token: 'texter' }, WAIT_MS);
        c.sendText(JSON.stringify({ type: 'REQUEST' }));
        await expectProtocolError(c);
        await roundTrip(bystander, ++seq);
      });

      it('should accept a body of exactly --max-frame', async () => {
        const c = await open(h, 'ws');
        await c.hello({ token: 'exact-ws' }, WAIT_MS);
        c.request(1, 1, Buffer.alloc(MAX_FRAME, 0x61));
        const f = await c.next((x) => x.seq === 1, WAIT_MS);
        assert.equal(f.type, FrameType.RESPONSE);
        assert.equal(f.body.length, MAX_FRAME);
        await c.close();
      });
    } else {
      it('should accept a body of exactly --max-frame', async () => {
        const c = await open(h, 'tcp');
        await c.hello({ token: 'exact-tcp' }, WAIT_MS);
        c.request(1, 1, Buffer.alloc(MAX_FRAME, 0x61));
        const f = await c.next((x) => x.seq === 1, WAIT_MS);
        assert.equal(f.type, FrameType.RESPONSE);
        assert.equal(f.body.length, MAX_FRAME);
        await c.close();
      });

      it('should decode frames split across writes and several frames in one write', async () => {
        const c = await open(h, 'tcp');
        const frames: Frame[] = [
          { type: FrameType.HELLO, flags: 0, route: 0, seq: 0, body: Buffer.from(JSON.stringify({ token: 'splitter' })) },
          { type: FrameType.REQUEST, flags: 0, route: 3, seq: 1, body: Buffer.from(JSON.stringify({ ping: 1 })) },
          { type: FrameType.PING, flags: 0, route: 0, seq: 77, body: Buffer.alloc(0) },
          { type: FrameType.REQUEST, flags: 0, route: 3, seq: 2, body: Buffer.from(JSON.stringify({ ping: 2 })) },
        ];
        // The HELLO one byte at a time. The rest waits for WELCOME: a REQUEST sent before it is
        // UNAUTHORIZED (§2.1), even when pipelined behind the HELLO.
        const hello = encodeFrame(frames[0]!, true);
        for (let i = 0; i < hello.length; i++) c.sendRaw(hello.subarray(i, i + 1));
        const welcome = await c.next((f) => f.type === FrameType.WELCOME, WAIT_MS);
        assert.equal((json(welcome) as { playerId: string }).playerId, 'splitter');
        // Three frames in one buffer, written in pieces that cut through prefixes, headers and bodies.
        const rest = Buffer.concat(frames.slice(1).map((f) => encodeFrame(f, true)));
        for (const [from, to] of [[0, 2], [2, 9], [9, 30], [30, rest.length]] as const) c.sendRaw(rest.subarray(from, to));
        assert.equal((await c.next((f) => f.type === FrameType.PONG, WAIT_MS)).seq, 77);
        for (const s of [1, 2]) {
          const f = await c.next((x) => x.type === FrameType.RESPONSE && x.seq === s, WAIT_MS);
          assert.equal(f.route, 3);
          assert.deepEqual(json(f), { ping: s });
        }
        await c.close();
      });
    }
  });
}

describe('--max-connections', () => {
  it('should close a third TCP connection at accept and refuse a third WS upgrade', async () => {
    const h = await startGate({ auth: 'none', maxConnections: 2 });
    try {
      const a = await open(h, 'tcp');
      const b = await open(h, 'ws');
      await a.hello({ token: 'a' }, WAIT_MS);
      await b.hello({ token: 'b' }, WAIT_MS);
      assert.equal(h.gate.gate.stats().connections, 2);

      const third = await connectTcp(h.tcpPort);
      await withTimeout(third.closed, WAIT_MS, 'the gate to close a TCP connection past --max-connections');
      assert.equal(third.frames.length, 0, 'a refused connection gets no frames');
      await assert.rejects(connectWs(h.wsPort), 'a WS upgrade past --max-connections is refused');
      assert.ok(h.gate.gate.stats().refused >= 2, 'refusals are counted');

      // The admitted links are unharmed.
      await roundTrip(a, 1);
      await roundTrip(b, 1);

      // A freed slot is reusable.
      await a.close();
      await waitFor('the gate to count the closed link', () => h.gate.gate.stats().connections === 1, WAIT_MS);
      const c = await open(h, 'ws');
      await c.hello({ token: 'c' }, WAIT_MS);
      await roundTrip(c, 1);
      const stats = await api(h, 'GET', '/v1/stats');
      assert.equal(stats.body.connections, 2);
      await b.close();
      await c.close();
    } finally {
      await h.close();
    }
  });
});

describe('backend replies and --max-frame', () => {
  const big: FakeHandler = (req) => {
    if (!req.path.startsWith('/rpc/')) return defaultHandler(req);
    const { n } = JSON.parse(req.body.toString('utf8')) as { n: number };
    return { status: 200, body: Buffer.alloc(n, 0x62) };
  };

  for (const t of ['tcp', 'ws'] as const) {
    it(`should answer ERROR, not crash, when the backend reply is bigger than --max-frame (${t})`, async () => {
      const h = await startGate({ auth: 'none', maxFrame: MAX_FRAME }, big);
      try {
        const c = await open(h, t);
        await c.hello({ token: 'greedy' }, WAIT_MS);
        c.request(1, 1, { n: MAX_FRAME * 4 });
        const e = await c.next((f) => f.seq === 1, WAIT_MS);
        assert.equal(e.type, FrameType.ERROR, `expected ERROR, got type ${e.type}`);
        const body = json(e) as { code: string; status?: number };
        assert.equal(body.code, 'UPSTREAM_STATUS');
        assert.equal(body.status, 502, 'a reply the gate cannot forward is reported as a bad gateway');
        // The link and the gate carry on; a reply of exactly --max-frame is fine.
        c.request(1, 2, { n: MAX_FRAME });
        const ok = await c.next((f) => f.seq === 2, WAIT_MS);
        assert.equal(ok.type, FrameType.RESPONSE);
        assert.equal(ok.body.length, MAX_FRAME);
        assert.equal(c.isClosed, false);
        await c.close();
      } finally {
        await h.close();
      }
    });
  }
});

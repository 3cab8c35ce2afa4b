/**
 * Fuzzing the inbound edge (CONTRACT §2.1, §2.2): whatever bytes a client sends, the decoder never
 * throws anything but a typed GatewayError, and a live gate ends only that client's link (BYE
 * protocol_error or a plain close) or keeps it usable, while a "canary" client logged in at the
 * start keeps getting RESPONSEs and nothing escapes as an unhandled rejection or exception.
 *
 * `npm run fuzz` asks each property for FC_RUNS=5000 runs within its time budget; the default (50)
 * keeps the file well under 30 s. fast-check prints the seed and the shrunk counterexample on
 * failure; replay one by adding `seed` and `path` to the property's options.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import fc from 'fast-check';
import { assertProperty } from './helpers/props.js';
import { GatewayError, type GatewayErrorCode } from '../lib/errors.js';
import { FLAG_DEFLATE, FrameType, HEADER_BYTES, PREFIX_BYTES, encodeFrame, parseFrame, type Frame } from '../lib/frame.js';
import { FrameDecoder } from '../lib/frameDecoder.js';
import { inboundBody, parseHello } from '../lib/wire.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, connectWs, describeFrame, json, type ByeBody, type TestClient } from './helpers/testClient.js';
import { withTimeout } from './helpers/wait.js';

/**
 * Runs (spec/helpers/props.ts: FC_RUNS sets them, within a time budget): the parsers, being cheap,
 * ask for 4× as many as the live gate. The default floor of 100 holds for both: on a busy 2-core
 * machine the parsers run 20 000 in about 2 s, the live gate 5000 in 8 to 27 s.
 */
const PARSER_RUNS = { runs: 200, scale: 4 };
const LIVE_RUNS = { runs: 50 };
/** --max-frame of the live gate: small, so "too large" and deflate bombs are cheap to build. */
const MAX_FRAME = 1024;
/** ws `maxPayload` the gate sets (lib/streams/listeners.ts): past it ws itself closes with 1009. */
const WS_MAX_PAYLOAD = MAX_FRAME + HEADER_BYTES + 64 * 1024;
/** Bound on any single wait on the live gate, ms. */
const WAIT_MS = 3_000;
/** The seq of the PING sent after each case's bytes: a PONG with it proves the link still works. */
const PROBE_SEQ = 0x7e57_0001;
/** Frame types only the gate may send (a client sending one is a protocol error). */
const GATE_ONLY = new Set<number>([FrameType.WELCOME, FrameType.RESPONSE, FrameType.PUSH, FrameType.ERROR]);
const FRAME_ERRORS = new Set<GatewayErrorCode>(['GW_ERR_FRAME_TOO_SHORT', 'GW_ERR_FRAME_TOO_LARGE', 'GW_ERR_FRAME_TYPE', 'GW_ERR_FRAME_FLAGS']);

// ---- arbitraries --------------------------------------------------------------------------------

const bytesArb = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u));
const json$ = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** HELLO bodies: mostly plausible JSON (some logging in, some refused), sometimes junk. */
const helloBodyArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.record({ token: fc.constantFrom('fuzz-a', 'fuzz-b', 'fuzz-c', '', 'x'.repeat(200)) }).map(json$),
  fc.record({ token: fc.oneof(fc.integer(), fc.constant(null), fc.string({ maxLength: 8 })), compress: fc.oneof(fc.boolean(), fc.string({ maxLength: 3 })) }, { requiredKeys: [] }).map(json$),
  fc.record({ token: fc.constant('fuzz-r'), resume: fc.record({ sessionId: fc.string({ maxLength: 8 }), resumeToken: fc.string({ maxLength: 8 }), lastSeq: fc.oneof(fc.integer(), fc.double()) }, { requiredKeys: [] }) }).map(json$),
  fc.jsonValue({ maxDepth: 2 }).map(json$),
  bytesArb(40),
);

/** Client BYE bodies: a logout, another code, or junk. */
const byeBodyArb: fc.Arbitrary<Buffer> = fc.oneof(fc.constant(json$({ code: 'logout' })), fc.record({ code: fc.string({ maxLength: 6 }) }).map(json$), bytesArb(16));

/** Mostly the client's own frame types, sometimes a gate-only type; bodies fitting MAX_FRAME. */
const frameArb: fc.Arbitrary<Frame> = fc
  .oneof(
    { weight: 6, arbitrary: fc.constantFrom<number>(FrameType.REQUEST, FrameType.ACK, FrameType.PING, FrameType.PONG) },
    { weight: 1, arbitrary: fc.constantFrom<number>(FrameType.HELLO, FrameType.BYE) },
    { weight: 1, arbitrary: fc.constantFrom<number>(...GATE_ONLY) },
  )
  .chain((type) =>
    fc.record({
      type: fc.constant(type),
      flags: fc.constantFrom(0, 0, 0, FLAG_DEFLATE),
      route: fc.integer({ min: 0, max: 0xffff }),
      seq: fc.integer({ min: 0, max: 0xffff_ffff }),
      body: type === FrameType.HELLO ? helloBodyArb : type === FrameType.BYE ? byeBodyArb : bytesArb(64),
    }),
  );

/** Damage done to a valid frame: the header fields §2.1 says are protocol errors, and byte-level noise. */
type Mutation =
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Buffer }
  | { kind: 'hugeLength'; frame: number; len: number }
  | { kind: 'shortLength'; frame: number; len: number }
  | { kind: 'reservedFlags'; frame: number; bits: number }
  | { kind: 'unknownType'; frame: number; type: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: bytesArb(12) }),
  fc.record({ kind: fc.constant('hugeLength' as const), frame: fc.nat(), len: fc.oneof(fc.constant(0xffff_ffff), fc.integer({ min: HEADER_BYTES + MAX_FRAME + 1, max: 0xffff_ffff })) }),
  fc.record({ kind: fc.constant('shortLength' as const), frame: fc.nat(), len: fc.integer({ min: 0, max: HEADER_BYTES - 1 }) }),
  fc.record({ kind: fc.constant('reservedFlags' as const), frame: fc.nat(), bits: fc.integer({ min: 2, max: 255 }) }),
  fc.record({ kind: fc.constant('unknownType' as const), frame: fc.nat(), type: fc.oneof(fc.constant(0), fc.integer({ min: FrameType.BYE + 1, max: 255 })) }),
);

/**
 * Encodes `frames` (with the TCP prefix when `prefixed`) and applies `mutations` in order: header
 * mutations to the frame at `frame % count`, byte mutations at `at % length`. Length mutations
 * need a prefix and are skipped without one.
 */
function mutate(frames: readonly Frame[], mutations: readonly Mutation[], prefixed: boolean): Buffer {
  const parts = frames.map((f) => encodeFrame(f, prefixed));
  const pre = prefixed ? PREFIX_BYTES : 0;
  let bytes: Buffer | null = null; // set once a byte-level mutation has joined the parts
  for (const m of mutations) {
    if (m.kind === 'flip' || m.kind === 'truncate' || m.kind === 'insert') {
      const b: Buffer = bytes ?? Buffer.concat(parts);
      if (m.kind === 'flip') {
        if (b.length > 0) b[m.at % b.length]! ^= m.xor;
        bytes = b;
      } else if (m.kind === 'truncate') bytes = b.subarray(0, m.at % (b.length + 1));
      else {
        const at = m.at % (b.length + 1);
        bytes = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
      }
      continue;
    }
    if (bytes !== null || parts.length === 0) continue; // header mutations address whole frames
    const p = parts[m.frame % parts.length]!;
    if (m.kind === 'hugeLength' || m.kind === 'shortLength') {
      if (prefixed) p.writeUInt32BE(m.len, 0);
    } else if (m.kind === 'reservedFlags') p[pre + 1] = m.bits;
    else p[pre] = m.type;
  }
  return bytes ?? Buffer.concat(parts);
}

/** A TCP byte stream: random bytes, or valid frames with some mutations. */
const tcpStreamArb: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 1, arbitrary: bytesArb(300) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.array(frameArb, { maxLength: 6 }), fc.array(mutationArb, { maxLength: 3 }))
      .map(([frames, ms]) => mutate(frames, ms, true)),
  },
);

/** One WebSocket message of a fuzz case. */
type WsMessage = { text: string } | { binary: Buffer };

const wsMessageArb: fc.Arbitrary<WsMessage> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(frameArb, fc.array(mutationArb, { maxLength: 2 })).map(([f, ms]) => ({ binary: mutate([f], ms, false) })) },
  { weight: 2, arbitrary: bytesArb(40).map((binary) => ({ binary })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((text) => ({ text })) },
  // Over --max-frame but under ws' maxPayload (the frame parser judges it), and far past maxPayload (ws does).
  { weight: 1, arbitrary: fc.constantFrom(MAX_FRAME + 1, WS_MAX_PAYLOAD + 1).map((n) => ({ binary: encodeFrame({ type: FrameType.REQUEST, flags: 0, route: 1, seq: 1, body: Buffer.alloc(n) }, false) })) },
);

// ---- the oracle ---------------------------------------------------------------------------------

/** What the gate does with one decoded unit of input. */
type Unit = { frame: Frame } | { error: GatewayErrorCode | 'ws_1009' };

/** Whole-stream reference decoder (as in frames.prop.spec.ts): frames, then the error or the partial tail. */
function modelDecode(stream: Buffer, maxFrame: number): { units: Unit[]; rest: number } {
  const units: Unit[] = [];
  let p = 0;
  for (;;) {
    const rem = stream.length - p;
    if (rem < PREFIX_BYTES) return { units, rest: rem };
    const len = stream.readUInt32BE(p);
    if (len < HEADER_BYTES) return { units: [...units, { error: 'GW_ERR_FRAME_TOO_SHORT' }], rest: 0 };
    if (len - HEADER_BYTES > maxFrame) return { units: [...units, { error: 'GW_ERR_FRAME_TOO_LARGE' }], rest: 0 };
    if (rem < PREFIX_BYTES + HEADER_BYTES) return { units, rest: rem };
    const type = stream[p + 4]!;
    const flags = stream[p + 5]!;
    if (type < FrameType.HELLO || type > FrameType.BYE) return { units: [...units, { error: 'GW_ERR_FRAME_TYPE' }], rest: 0 };
    if ((flags & ~FLAG_DEFLATE) !== 0) return { units: [...units, { error: 'GW_ERR_FRAME_FLAGS' }], rest: 0 };
    if (rem < PREFIX_BYTES + len) return { units, rest: rem };
    units.push({ frame: { type, flags, route: stream.readUInt16BE(p + 6), seq: stream.readUInt32BE(p + 8), body: stream.subarray(p + 12, p + PREFIX_BYTES + len) } });
    p += PREFIX_BYTES + len;
  }
}

/**
 * Zero bytes that complete a partial last frame, so that the probe PING which follows starts on a
 * frame boundary (otherwise it would only extend the partial frame and never be answered).
 */
function completion(stream: Buffer): Buffer {
  let pad = Buffer.alloc(0);
  for (let i = 0; i < 3; i++) {
    const d = modelDecode(Buffer.concat([stream, pad]), MAX_FRAME);
    if (d.rest === 0 || d.units.some((u) => 'error' in u)) break;
    const tail = Buffer.concat([stream, pad]).subarray(-d.rest);
    const need = d.rest < PREFIX_BYTES ? PREFIX_BYTES - d.rest : PREFIX_BYTES + tail.readUInt32BE(0) - d.rest;
    pad = Buffer.concat([pad, Buffer.alloc(need)]);
  }
  return pad;
}

/** The units a WS case turns into: one per message (ws' own limit, then text, then the frame parser). */
function wsUnits(messages: readonly WsMessage[]): Unit[] {
  return messages.map((m): Unit => {
    if ('text' in m) return Buffer.byteLength(m.text) > WS_MAX_PAYLOAD ? { error: 'ws_1009' } : { error: 'GW_ERR_FRAME_TEXT' };
    if (m.binary.length > WS_MAX_PAYLOAD) return { error: 'ws_1009' };
    try {
      return { frame: parseFrame(m.binary, MAX_FRAME) };
    } catch (e) {
      assert.ok(e instanceof GatewayError, `parseFrame threw a non-GatewayError: ${String(e)}`);
      return { error: e.code };
    }
  });
}

/**
 * What must happen, as far as it follows from the bytes alone. Until a HELLO that parses (login is
 * asynchronous: WELCOME, auth_failed, …), the gate's reaction is determined: the first malformed
 * unit, gate-only frame type or HELLO that does not parse ends the link with BYE protocol_error; a
 * client BYE closes it quietly; ws' own limit closes it with 1009 and no BYE; otherwise the probe
 * is answered. After a HELLO that parses, any of those outcomes (or auth_failed) is acceptable.
 */
type Expect = 'protocol_error' | 'quiet_close' | 'ws_close' | 'pong' | 'any';

function expected(units: readonly Unit[]): Expect {
  for (const u of units) {
    if ('error' in u) return u.error === 'ws_1009' ? 'ws_close' : 'protocol_error';
    const f = u.frame;
    if (GATE_ONLY.has(f.type)) return 'protocol_error';
    if (f.type === FrameType.BYE) return 'quiet_close';
    if (f.type === FrameType.HELLO) {
      try {
        parseHello(f.body);
      } catch (e) {
        assert.ok(e instanceof GatewayError && e.code === 'GW_ERR_HELLO_MALFORMED', `parseHello threw ${String(e)}`);
        return 'protocol_error';
      }
      return 'any';
    }
    if (f.type === FrameType.PING && f.seq === PROBE_SEQ) return 'pong';
  }
  return 'pong';
}

const isProbePong = (f: Frame): boolean => f.type === FrameType.PONG && f.seq === PROBE_SEQ;

/** Waits for the probe's PONG or the close, then checks the outcome against `want`. */
async function judge(c: TestClient, want: Expect, what: string): Promise<void> {
  // `next` fails as soon as the link closes (or after WAIT_MS), so one wait covers both outcomes.
  const outcome = await c.next(isProbePong, WAIT_MS).then(
    () => 'pong' as const,
    () => (c.isClosed ? ('closed' as const) : ('no pong' as const)),
  );
  const byes = c.frames.filter((f) => f.type === FrameType.BYE).map((f) => (json(f) as ByeBody).code);
  const seen = c.frames.map(describeFrame).join('; ') || 'none';
  const ctx = `${what}: expected ${want}, got ${outcome}; BYEs ${JSON.stringify(byes)}; frames: ${seen}`;
  assert.notEqual(outcome, 'no pong', `the link neither answered the probe nor closed within ${WAIT_MS}ms (${ctx})`);
  switch (want) {
    case 'pong':
      assert.equal(outcome, 'pong', ctx);
      assert.deepEqual(byes, [], ctx);
      return;
    case 'protocol_error':
      assert.equal(outcome, 'closed', ctx);
      assert.deepEqual(byes, ['protocol_error'], ctx);
      return;
    case 'quiet_close':
    case 'ws_close':
      assert.equal(outcome, 'closed', ctx);
      assert.deepEqual(byes, [], ctx);
      return;
    case 'any':
      // A PONG may come just before an auth_failed BYE (login settles after the probe is answered).
      for (const b of byes) assert.ok(b === 'protocol_error' || b === 'auth_failed', ctx);
  }
}

// ---- decoder properties (no sockets) ------------------------------------------------------------

/** Feeds `stream` in pieces cut at `cuts`; returns what a socket handler would see. */
function feed(stream: Buffer, cuts: readonly number[], maxFrame: number): { frames: Frame[]; error: GatewayError | null; held: number } {
  const d = new FrameDecoder(maxFrame);
  const frames: Frame[] = [];
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const bounds = [0, ...points, stream.length];
  let error: GatewayError | null = null;
  for (let i = 0; i + 1 < bounds.length; i++) {
    const r = d.push(Buffer.from(stream.subarray(bounds[i], bounds[i + 1])), (f) => frames.push({ ...f, body: Buffer.from(f.body) }));
    if (r !== null) {
      assert.ok(r instanceof GatewayError && FRAME_ERRORS.has(r.code), `push returned ${String(r)}`);
      if (error) assert.equal(r, error, 'a failed decoder keeps returning the same error');
      error = r;
    } else {
      assert.equal(error, null, 'a failed decoder never recovers');
      assert.ok(d.bufferedBytes < PREFIX_BYTES + HEADER_BYTES + maxFrame, `holds ${d.bufferedBytes} bytes, more than one frame`);
    }
  }
  return { frames, error, held: d.bufferedBytes };
}

const plain = (f: Frame): string => `${f.type}/${f.flags}/${f.route}/${f.seq}/${f.body.toString('hex')}`;

describe('fuzz: decoder and wire parsers', () => {
  it('should decode random bytes, in any chunking, to frames and at most one typed GatewayError', async (t) => {
    await assertProperty(
      t,
      fc.property(bytesArb(600), fc.array(fc.nat(), { maxLength: 20 }), fc.integer({ min: 0, max: 300 }), (stream, cuts, maxFrame) => {
        const got = feed(stream, cuts, maxFrame);
        const want = modelDecode(stream, maxFrame);
        assert.deepEqual(got.frames.map(plain), want.units.flatMap((u) => ('frame' in u ? [plain(u.frame)] : [])));
        const err = want.units.find((u): u is { error: GatewayErrorCode } => 'error' in u);
        assert.equal(got.error?.code ?? null, err?.error ?? null);
        if (!err) assert.equal(got.held, want.rest);
      }),
      { ...PARSER_RUNS, includeErrorInReport: true },
    );
  });

  it('should decode mutated valid streams: every frame before the damage intact, then a typed error or more frames', async (t) => {
    const arb = fc.tuple(fc.array(frameArb, { minLength: 1, maxLength: 8 }), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 10 }));
    await assertProperty(
      t,
      fc.property(arb, ([frames, mutations, cuts]) => {
        const stream = mutate(frames, mutations, true);
        const got = feed(stream, cuts, MAX_FRAME);
        // The longest untouched prefix of whole frames decodes exactly as sent.
        const clean = encodeAllPrefixed(frames);
        let intact = 0;
        for (let off = 0; intact < frames.length; intact++) {
          const end = off + PREFIX_BYTES + HEADER_BYTES + frames[intact]!.body.length;
          if (end > stream.length || !stream.subarray(off, end).equals(clean.subarray(off, end))) break;
          off = end;
        }
        assert.deepEqual(got.frames.slice(0, intact).map(plain), frames.slice(0, intact).map(plain));
      }),
      { ...PARSER_RUNS, includeErrorInReport: true },
    );
  });

  it('should parse any WS message to a frame or a typed GatewayError', async (t) => {
    await assertProperty(
      t,
      fc.property(fc.oneof(bytesArb(100), wsMessageArb.map((m) => ('binary' in m ? m.binary : Buffer.from(m.text)))), (msg) => {
        try {
          const f = parseFrame(msg, MAX_FRAME);
          assert.equal(f.body.length, msg.length - HEADER_BYTES);
        } catch (e) {
          assert.ok(e instanceof GatewayError && FRAME_ERRORS.has(e.code), `parseFrame threw ${String(e)}`);
        }
      }),
      { ...PARSER_RUNS, includeErrorInReport: true },
    );
  });

  it('should parse any HELLO body to a Hello or GW_ERR_HELLO_MALFORMED', async (t) => {
    await assertProperty(
      t,
      fc.property(fc.oneof(helloBodyArb, bytesArb(64), fc.jsonValue().map(json$)), (body) => {
        try {
          const h = parseHello(body);
          assert.equal(typeof h.compress, 'boolean');
          if (h.token !== undefined) assert.equal(typeof h.token, 'string');
        } catch (e) {
          assert.ok(e instanceof GatewayError && e.code === 'GW_ERR_HELLO_MALFORMED', `parseHello threw ${String(e)}`);
        }
      }),
      { ...PARSER_RUNS, includeErrorInReport: true },
    );
  });

  it('should inflate any compressed body to at most --max-frame bytes or a typed GatewayError', async (t) => {
    await assertProperty(
      t,
      fc.property(compressedBodyArb, fc.integer({ min: 64, max: MAX_FRAME }), (body, maxFrame) => {
        try {
          assert.ok(inboundBody({ type: FrameType.REQUEST, flags: FLAG_DEFLATE, route: 1, seq: 1, body }, maxFrame).length <= maxFrame);
        } catch (e) {
          assert.ok(e instanceof GatewayError && (e.code === 'GW_ERR_FRAME_INFLATE' || e.code === 'GW_ERR_FRAME_TOO_LARGE'), `inboundBody threw ${String(e)}`);
        }
      }),
      { ...PARSER_RUNS, includeErrorInReport: true },
    );
  });
});

const encodeAllPrefixed = (frames: readonly Frame[]): Buffer => Buffer.concat(frames.map((f) => encodeFrame(f, true)));

/** Raw-DEFLATE bodies: valid, bombs inflating far past MAX_FRAME, truncated, and junk. */
const compressedBodyArb: fc.Arbitrary<Buffer> = fc.oneof(
  bytesArb(200).map((b) => deflateRawSync(b)),
  fc.integer({ min: MAX_FRAME - 2, max: MAX_FRAME * 64 }).map((n) => deflateRawSync(Buffer.alloc(n, 0x61))),
  fc.tuple(bytesArb(200), fc.nat()).map(([b, cut]) => {
    const z = deflateRawSync(b);
    return z.subarray(0, cut % (z.length + 1));
  }),
  bytesArb(64),
);

// ---- the live gate ------------------------------------------------------------------------------

describe('fuzz: a live gate', () => {
  let h: Harness;
  let canary: TestClient;
  let canarySeq = 0; // the canary's last request seq
  let cases = 0; // fuzz cases run so far, for unique player ids
  const escaped: string[] = []; // unhandled rejections and uncaught exceptions seen during the run
  const onRejection = (e: unknown): void => void escaped.push(`unhandledRejection: ${String(e)}`);
  const onException = (e: unknown): void => void escaped.push(`uncaughtException: ${String(e)}`);

  before(async () => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
    h = await startGate({ auth: 'none', maxFrame: MAX_FRAME });
    canary = await connectTcp(h.tcpPort, '127.0.0.1', { autoPong: true });
    await canary.hello({ token: `canary-${process.pid}-${Date.now()}` });
  });

  after(async () => {
    await canary?.destroy();
    await h?.close();
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    assert.deepEqual(escaped, [], 'nothing escaped as an unhandled rejection or uncaught exception');
  });

  /** The canary still gets a RESPONSE: the gate serves everyone else. */
  async function canaryAnswers(after: string): Promise<void> {
    const seq = ++canarySeq;
    canary.request(1, seq, { canary: seq });
    const f = await canary.next((x) => x.seq === seq && (x.type === FrameType.RESPONSE || x.type === FrameType.ERROR), WAIT_MS).catch((e: Error) => {
      throw new Error(`the canary got no answer after ${after}: ${e.message}`);
    });
    assert.equal(f.type, FrameType.RESPONSE, `canary after ${after}: ${describeFrame(f)}`);
  }

  /** After the property: only the canary is connected, and nothing escaped. */
  async function settled(): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    let last: unknown;
    for (;;) {
      last = (await api(h, 'GET', '/v1/stats')).body;
      if ((last as { connections?: number }).connections === 1) break;
      if (Date.now() > deadline) assert.fail(`timed out after ${WAIT_MS}ms waiting for only the canary to be connected; last /v1/stats: ${JSON.stringify(last)}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(escaped, []);
  }

  it('should end or keep each fuzzed TCP link correctly and keep serving the canary', async (t) => {
    await assertProperty(
      t,
      fc.asyncProperty(tcpStreamArb, async (fuzz) => {
        cases++;
        const pad = completion(fuzz);
        const probe = encodeFrame({ type: FrameType.PING, flags: 0, route: 0, seq: PROBE_SEQ, body: Buffer.alloc(0) }, true);
        const all = Buffer.concat([fuzz, pad, probe]);
        const want = expected(modelDecode(all, MAX_FRAME).units);
        const c = await connectTcp(h.tcpPort);
        try {
          c.sendRaw(all);
          await judge(c, want, `tcp ${fuzz.length}B ${fuzz.subarray(0, 48).toString('hex')}`);
        } finally {
          await c.destroy();
        }
        await canaryAnswers(`tcp case ${cases}`);
      }),
      {
        ...LIVE_RUNS,
        examples: [
          [Buffer.from([0xff, 0xff, 0xff, 0xff])],
          [Buffer.from([0, 0, 0, 0])],
          [Buffer.from([0, 0, 0, 8, FrameType.PING, 0, 0, 0, 0, 0])],
          [encodeFrame({ type: FrameType.HELLO, flags: 0, route: 0, seq: 0, body: json$({ token: 'fuzz-a' }) }, true)],
        ],
      },
    );
    await settled();
  });

  it('should end or keep each fuzzed WS link correctly and keep serving the canary', async (t) => {
    await assertProperty(
      t,
      fc.asyncProperty(fc.array(wsMessageArb, { maxLength: 5 }), async (messages) => {
        cases++;
        const probe: WsMessage = { binary: encodeFrame({ type: FrameType.PING, flags: 0, route: 0, seq: PROBE_SEQ, body: Buffer.alloc(0) }, false) };
        const want = expected(wsUnits([...messages, probe]));
        const c = await connectWs(h.wsPort);
        try {
          for (const m of [...messages, probe]) {
            if ('text' in m) c.sendText(m.text);
            else c.sendRaw(m.binary);
          }
          const what = messages.map((m) => ('text' in m ? `text(${m.text.length})` : `bin(${m.binary.subarray(0, 24).toString('hex')}${m.binary.length > 24 ? `…${m.binary.length}B` : ''})`)).join(' ');
          await judge(c, want, `ws [${what}]`);
        } finally {
          await c.destroy();
        }
        await canaryAnswers(`ws case ${cases}`);
      }),
      { ...LIVE_RUNS, includeErrorInReport: true, examples: [[[{ text: '' }]], [[{ binary: Buffer.alloc(0) }]], [[{ binary: Buffer.alloc(WS_MAX_PAYLOAD + 1) }]]] },
    );
    await settled();
  });

  it('should answer compressed REQUESTs of a logged-in client, or end only its link on a bad or oversized body', async (t) => {
    await assertProperty(
      t,
      fc.asyncProperty(fc.constantFrom<'tcp' | 'ws'>('tcp', 'ws'), fc.array(compressedBodyArb, { minLength: 1, maxLength: 4 }), async (transport, bodies) => {
        const n = ++cases;
        const c = transport === 'tcp' ? await connectTcp(h.tcpPort) : await connectWs(h.wsPort);
        try {
          await c.hello({ token: `z-${n}` }, WAIT_MS);
          bodies.forEach((body, i) => c.send({ type: FrameType.REQUEST, flags: FLAG_DEFLATE, route: 1, seq: i + 1, body }));
          const inflated = bodies.map((body) => {
            try {
              return inflateRawSync(body, { maxOutputLength: MAX_FRAME });
            } catch {
              return null;
            }
          });
          const bad = inflated.indexOf(null);
          if (bad >= 0) {
            // Requests before the bad one were admitted, but the link may close before their answers.
            const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
            assert.equal((json(bye) as ByeBody).code, 'protocol_error', `${transport} request #${bad + 1} of ${bodies.length} does not inflate within --max-frame`);
            await withTimeout(c.closed, WAIT_MS, 'the gate to close the link after BYE protocol_error');
          }
          for (const [i, want] of inflated.entries()) {
            if (want === null) break;
            const what = `${transport} request #${i + 1} (${bodies[i]!.length}B deflated, ${want.length}B inflated)`;
            const f = bad >= 0 ? c.frames.find((x) => x.seq === i + 1 && x.type !== FrameType.BYE) : await c.next((x) => x.seq === i + 1 && (x.type === FrameType.RESPONSE || x.type === FrameType.ERROR), WAIT_MS);
            if (f === undefined) continue; // cut off by the close (only when a later body was bad)
            assert.equal(f.type, FrameType.RESPONSE, `${what}: ${describeFrame(f)}`);
            assert.ok(f.body.equals(want), `${what}: the backend saw the inflated body`);
          }
          if (!c.isClosed) c.send({ type: FrameType.BYE, flags: 0, route: 0, seq: 0, body: json$({ code: 'logout' }) });
          await withTimeout(c.closed, WAIT_MS, 'the gate to close the link after logout');
        } finally {
          await c.destroy();
        }
        await canaryAnswers(`compressed case ${n}`);
      }),
      { ...LIVE_RUNS, includeErrorInReport: true },
    );
    await settled();
    const stats = await api(h, 'GET', '/v1/stats');
    assert.equal(stats.body.sessions >= 1, true, 'the canary session is alive');
  });
});

/**
 * Properties of the frame codec (lib/frame.ts) and the incremental TCP decoder (lib/frameDecoder.ts),
 * CONTRACT §2.1. fast-check prints the seed and the shrunk counterexample on failure; replay one by
 * adding `seed` and `path` to the property's options.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertProperty } from './helpers/props.js';
import { GatewayError, type GatewayErrorCode } from '../lib/errors.js';
import { FLAG_DEFLATE, FrameType, HEADER_BYTES, PREFIX_BYTES, encodeFrame, parseFrame, type Frame } from '../lib/frame.js';
import { FrameDecoder } from '../lib/frameDecoder.js';

/** Runs of each property (spec/helpers/props.ts: FC_RUNS asks for more, within a time budget). */
const RUNS = { runs: 100 };
/** The largest --max-frame the properties pick: small, so "too large" is easy to reach. */
const MAX_FRAME_CAP = 300;

// ---- arbitraries --------------------------------------------------------------------------------

const maxFrameArb = fc.integer({ min: 0, max: MAX_FRAME_CAP });

/** A frame the gate accepts under `maxFrame`. */
const frameArb = (maxFrame: number): fc.Arbitrary<Frame> =>
  fc.record({
    type: fc.integer({ min: FrameType.HELLO, max: FrameType.BYE }),
    flags: fc.constantFrom(0, FLAG_DEFLATE),
    route: fc.integer({ min: 0, max: 0xffff }),
    seq: fc.integer({ min: 0, max: 0xffff_ffff }),
    body: fc.uint8Array({ maxLength: maxFrame }).map((u) => Buffer.from(u)),
  });

/** `maxFrame` and frames valid under it. */
const framesArb = (maxLength: number): fc.Arbitrary<{ maxFrame: number; frames: Frame[] }> =>
  maxFrameArb.chain((maxFrame) => fc.record({ maxFrame: fc.constant(maxFrame), frames: fc.array(frameArb(maxFrame), { maxLength }) }));

/** Cut positions, taken modulo the stream length + 1 (so any split, including empty chunks, can occur). */
const cutsArb = fc.array(fc.nat({ max: 1_000_000 }), { maxLength: 30 });

const bodyOf = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u));

// ---- helpers ------------------------------------------------------------------------------------

interface Chunk {
  /** Start offset of the chunk in the whole stream. */
  readonly start: number;
  readonly bytes: Buffer;
}

/**
 * Splits `stream` at `cuts` into chunks that each own a distinct ArrayBuffer (at a small, varying
 * byteOffset), so "is this body a view of that chunk?" can be answered by identity.
 */
function split(stream: Buffer, cuts: readonly number[]): Chunk[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const bounds = [0, ...points, stream.length];
  const out: Chunk[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const start = bounds[i]!;
    const end = bounds[i + 1]!;
    const pad = i % 3;
    const bytes = Buffer.from(new ArrayBuffer(pad + end - start), pad, end - start);
    stream.copy(bytes, 0, start, end);
    out.push({ start, bytes });
  }
  return out;
}

/** A comparable, printable form of a frame. */
const plain = (f: Frame): { type: number; flags: number; route: number; seq: number; body: string } => ({
  type: f.type,
  flags: f.flags,
  route: f.route,
  seq: f.seq,
  body: f.body.toString('hex'),
});

const encodeAll = (frames: readonly Frame[]): Buffer => Buffer.concat(frames.map((f) => encodeFrame(f, true)));

/** An 8-byte header plus length prefix with arbitrary (possibly invalid) field values. */
function rawPrefixed(len: number, type: number, flags: number, route: number, seq: number, body: Buffer): Buffer {
  const head = Buffer.alloc(PREFIX_BYTES + HEADER_BYTES);
  head.writeUInt32BE(len, 0);
  head[4] = type;
  head[5] = flags;
  head.writeUInt16BE(route, 6);
  head.writeUInt32BE(seq, 8);
  return Buffer.concat([head, body]);
}

interface Decoded {
  frames: Frame[];
  /** The error returned by each push, in push order. */
  results: (GatewayError | null)[];
}

/** Pushes every chunk, copying each emitted frame at once (views are only valid for the current push). */
function decodeChunks(maxFrame: number, chunks: readonly Chunk[]): Decoded {
  const d = new FrameDecoder(maxFrame);
  const frames: Frame[] = [];
  const results = chunks.map((c) =>
    d.push(c.bytes, (f) => frames.push({ ...f, body: Buffer.from(f.body) })),
  );
  return { frames, results };
}

/**
 * Reference model: decodes the whole stream at once, judging each frame as soon as the bytes to judge
 * it are there (the prefix for its length, the header for type and flags).
 */
function model(stream: Buffer, maxFrame: number): { frames: Frame[]; error: GatewayErrorCode | null } {
  const frames: Frame[] = [];
  let p = 0;
  for (;;) {
    const rem = stream.length - p;
    if (rem < PREFIX_BYTES) return { frames, error: null };
    const len = stream.readUInt32BE(p);
    if (len < HEADER_BYTES) return { frames, error: 'GW_ERR_FRAME_TOO_SHORT' };
    if (len - HEADER_BYTES > maxFrame) return { frames, error: 'GW_ERR_FRAME_TOO_LARGE' };
    if (rem < PREFIX_BYTES + HEADER_BYTES) return { frames, error: null };
    const type = stream[p + 4]!;
    const flags = stream[p + 5]!;
    if (type < FrameType.HELLO || type > FrameType.BYE) return { frames, error: 'GW_ERR_FRAME_TYPE' };
    if ((flags & ~FLAG_DEFLATE) !== 0) return { frames, error: 'GW_ERR_FRAME_FLAGS' };
    if (rem < PREFIX_BYTES + len) return { frames, error: null };
    frames.push({
      type,
      flags,
      route: stream.readUInt16BE(p + 6),
      seq: stream.readUInt32BE(p + 8),
      body: stream.subarray(p + 12, p + PREFIX_BYTES + len),
    });
    p += PREFIX_BYTES + len;
  }
}

const isCode = (e: unknown, code: GatewayErrorCode): boolean => e instanceof GatewayError && e.code === code;

// ---- properties ---------------------------------------------------------------------------------

describe('frame codec', () => {
  it('should round-trip any valid frame through encodeFrame/parseFrame (unprefixed)', async (t) => {
    await assertProperty(
      t,
      fc.property(
        maxFrameArb.chain((m) => fc.tuple(fc.constant(m), frameArb(m))),
        ([maxFrame, f]) => {
          const bytes = encodeFrame(f, false);
          assert.equal(bytes.length, HEADER_BYTES + f.body.length);
          assert.deepEqual(plain(parseFrame(bytes, maxFrame)), plain(f));
        },
      ),
      RUNS,
    );
  });

  it('should prefix a frame with its u32 length and otherwise encode it the same', async (t) => {
    await assertProperty(
      t,
      fc.property(frameArb(MAX_FRAME_CAP), (f) => {
        const pre = encodeFrame(f, true);
        assert.equal(pre.readUInt32BE(0), HEADER_BYTES + f.body.length);
        assert.deepEqual(pre.subarray(PREFIX_BYTES), encodeFrame(f, false));
      }),
      RUNS,
    );
  });

  it('should make parseFrame throw only GatewayErrors with the right code on malformed messages', async (t) => {
    const malformed = maxFrameArb.chain((maxFrame) =>
      fc.oneof(
        fc.record({
          code: fc.constant<GatewayErrorCode>('GW_ERR_FRAME_TOO_SHORT'),
          bytes: bodyOf(HEADER_BYTES - 1),
        }),
        fc.record({
          code: fc.constant<GatewayErrorCode>('GW_ERR_FRAME_TOO_LARGE'),
          bytes: fc
            .tuple(frameArb(maxFrame), fc.integer({ min: 1, max: 64 }))
            .map(([f, extra]) => encodeFrame({ ...f, body: Buffer.alloc(maxFrame + extra, 7) }, false)),
        }),
        fc.record({
          code: fc.constant<GatewayErrorCode>('GW_ERR_FRAME_TYPE'),
          bytes: fc
            .tuple(frameArb(maxFrame), fc.oneof(fc.constant(0), fc.integer({ min: FrameType.BYE + 1, max: 255 })))
            .map(([f, type]) => encodeFrame({ ...f, type }, false)),
        }),
        fc.record({
          code: fc.constant<GatewayErrorCode>('GW_ERR_FRAME_FLAGS'),
          bytes: fc
            .tuple(frameArb(maxFrame), fc.integer({ min: 2, max: 255 }))
            .map(([f, flags]) => encodeFrame({ ...f, flags }, false)),
        }),
      ).map((m) => ({ ...m, maxFrame })),
    );
    await assertProperty(
      t,
      fc.property(malformed, ({ code, bytes, maxFrame }) => {
        assert.throws(() => parseFrame(bytes, maxFrame), (e) => isCode(e, code));
      }),
      RUNS,
    );
  });
});

describe('FrameDecoder', () => {
  it('should decode valid frames split at arbitrary points to exactly the frames sent, in order', async (t) => {
    await assertProperty(
      t,
      fc.property(framesArb(20), cutsArb, ({ maxFrame, frames }, cuts) => {
        const { frames: got, results } = decodeChunks(maxFrame, split(encodeAll(frames), cuts));
        assert.deepEqual(results.filter((r) => r !== null), []);
        assert.deepEqual(got.map(plain), frames.map(plain));
      }),
      RUNS,
    );
  });

  it('should return a frame lying within one chunk as a view of that chunk, and copy only split frames', async (t) => {
    await assertProperty(
      t,
      fc.property(framesArb(12), cutsArb, ({ maxFrame, frames }, cuts) => {
        const chunks = split(encodeAll(frames), cuts);
        // Where each frame starts and ends in the stream (prefix included).
        const spans = frames.reduce<{ start: number; end: number }[]>((acc, f) => {
          const start = acc.at(-1)?.end ?? 0;
          return [...acc, { start, end: start + PREFIX_BYTES + HEADER_BYTES + f.body.length }];
        }, []);
        const d = new FrameDecoder(maxFrame);
        let n = 0; // frames emitted so far
        for (const c of chunks) {
          const err = d.push(c.bytes, (f) => {
            const span = spans[n++]!;
            const inOne = span.start >= c.start && span.end <= c.start + c.bytes.length;
            if (inOne) {
              assert.equal(f.body.buffer, c.bytes.buffer, `frame ${n - 1} lies in one chunk but was copied`);
              assert.equal(f.body.byteOffset, c.bytes.byteOffset + span.start + PREFIX_BYTES + HEADER_BYTES - c.start);
            } else {
              assert.ok(
                chunks.every((k) => k.bytes.buffer !== f.body.buffer),
                `frame ${n - 1} spans chunks but aliases one of them`,
              );
            }
          });
          assert.equal(err, null);
        }
        assert.equal(n, frames.length);
      }),
      RUNS,
    );
  });

  it('should reject malformed frames with the right code as soon as they can be judged, after emitting the frames before them, without throwing', async (t) => {
    type Bad = { code: GatewayErrorCode; bytes: Buffer; judgeAfter: number };
    const badArb = (maxFrame: number): fc.Arbitrary<Bad> =>
      fc.oneof(
        fc
          .tuple(fc.integer({ min: 0, max: HEADER_BYTES - 1 }), fc.integer({ min: 0, max: 255 }), bodyOf(16))
          .map(([len, type, rest]) => ({
            code: 'GW_ERR_FRAME_TOO_SHORT' as const,
            bytes: rawPrefixed(len, type, 0, 0, 0, rest),
            judgeAfter: PREFIX_BYTES,
          })),
        fc
          .tuple(
            fc.oneof(
              fc.integer({ min: HEADER_BYTES + maxFrame + 1, max: HEADER_BYTES + maxFrame + 64 }),
              fc.integer({ min: HEADER_BYTES + maxFrame + 1, max: 0xffff_ffff }),
            ),
            frameArb(maxFrame),
            bodyOf(16),
          )
          .map(([len, f, rest]) => ({
            code: 'GW_ERR_FRAME_TOO_LARGE' as const,
            bytes: rawPrefixed(len, f.type, f.flags, f.route, f.seq, rest),
            judgeAfter: PREFIX_BYTES,
          })),
        fc
          .tuple(frameArb(maxFrame), fc.oneof(fc.constant(0), fc.integer({ min: FrameType.BYE + 1, max: 255 })))
          .map(([f, type]) => ({
            code: 'GW_ERR_FRAME_TYPE' as const,
            bytes: encodeFrame({ ...f, type }, true),
            judgeAfter: PREFIX_BYTES + HEADER_BYTES,
          })),
        fc
          .tuple(frameArb(maxFrame), fc.integer({ min: 2, max: 255 }))
          .map(([f, flags]) => ({
            code: 'GW_ERR_FRAME_FLAGS' as const,
            bytes: encodeFrame({ ...f, flags }, true),
            judgeAfter: PREFIX_BYTES + HEADER_BYTES,
          })),
      );
    const caseArb = framesArb(8).chain(({ maxFrame, frames }) =>
      fc.record({
        maxFrame: fc.constant(maxFrame),
        frames: fc.constant(frames),
        bad: badArb(maxFrame),
        // Whatever follows the bad frame (valid frames or garbage) must never be decoded.
        after: fc.oneof(fc.array(frameArb(maxFrame), { maxLength: 3 }).map(encodeAll), bodyOf(40)),
        cuts: cutsArb,
      }),
    );
    await assertProperty(
      t,
      fc.property(caseArb, ({ maxFrame, frames, bad, after, cuts }) => {
        const good = encodeAll(frames);
        const chunks = split(Buffer.concat([good, bad.bytes, after]), cuts);
        const judgeAt = good.length + bad.judgeAfter; // stream bytes needed before the error can be known
        const { frames: got, results } = decodeChunks(maxFrame, chunks);
        assert.deepEqual(got.map(plain), frames.map(plain));
        chunks.forEach((c, i) => {
          const r = results[i];
          if (c.start + c.bytes.length < judgeAt) assert.equal(r, null, `push ${i} ended before the error could be judged`);
          else assert.ok(r && isCode(r, bad.code), `push ${i}: expected ${bad.code}, got ${r?.code ?? 'null'}`);
        });
        // Once failed, the decoder stays failed, with the same error, and emits nothing more.
        const d = new FrameDecoder(maxFrame);
        const first = chunks.map((c) => d.push(c.bytes, () => {})).find((r) => r !== null);
        let more = 0;
        assert.equal(d.push(encodeFrame(frames[0] ?? { type: 7, flags: 0, route: 0, seq: 1, body: Buffer.alloc(0) }, true), () => more++), first);
        assert.equal(more, 0);
      }),
      RUNS,
    );
  });

  it('should reject a huge length prefix as soon as its 4 bytes arrive, without buffering the body', async (t) => {
    const caseArb = framesArb(4).chain(({ maxFrame, frames }) =>
      fc.record({
        maxFrame: fc.constant(maxFrame),
        frames: fc.constant(frames),
        len: fc.oneof(fc.constant(0xffff_ffff), fc.integer({ min: HEADER_BYTES + maxFrame + 1, max: 0xffff_ffff })),
        cuts: cutsArb,
      }),
    );
    await assertProperty(
      t,
      fc.property(caseArb, ({ maxFrame, frames, len, cuts }) => {
        const prefix = Buffer.alloc(PREFIX_BYTES);
        prefix.writeUInt32BE(len, 0);
        const stream = Buffer.concat([encodeAll(frames), prefix]);
        const chunks = split(stream, cuts);
        const d = new FrameDecoder(maxFrame);
        let n = 0;
        const results = chunks.map((c) => d.push(c.bytes, () => n++));
        assert.equal(n, frames.length);
        // Only the push that completes the prefix (the last non-empty one) fails.
        const lastFull = chunks.map((c) => c.bytes.length > 0).lastIndexOf(true);
        results.forEach((r, i) => {
          if (i < lastFull) assert.equal(r, null);
          else assert.ok(r && isCode(r, 'GW_ERR_FRAME_TOO_LARGE'), `push ${i} should fail with GW_ERR_FRAME_TOO_LARGE`);
        });
        assert.equal(d.bufferedBytes, PREFIX_BYTES);
        // A flood of body bytes after the failure is not held.
        assert.equal(d.push(Buffer.alloc(64 * 1024), () => n++), results.at(-1));
        assert.equal(d.bufferedBytes, PREFIX_BYTES);
        assert.equal(n, frames.length);
      }),
      RUNS,
    );
  });

  it('should never throw on arbitrary bytes, and agree with a whole-stream reference decoder', async (t) => {
    // Pieces that make streams more interesting than uniform noise: valid frames, short or huge
    // prefixes, bad headers and raw garbage, concatenated then split anywhere.
    const pieceArb = (maxFrame: number): fc.Arbitrary<Buffer> =>
      fc.oneof(
        { arbitrary: frameArb(maxFrame).map((f) => encodeFrame(f, true)), weight: 4 },
        { arbitrary: bodyOf(24), weight: 2 },
        {
          arbitrary: fc
            .tuple(fc.nat({ max: maxFrame + 20 }), fc.nat({ max: 255 }), fc.nat({ max: 255 }), bodyOf(maxFrame + 20))
            .map(([bodyLen, type, flags, body]) => rawPrefixed(HEADER_BYTES + bodyLen, type, flags, 1, 2, body)),
          weight: 1,
        },
      );
    const caseArb = maxFrameArb.chain((maxFrame) =>
      fc.record({ maxFrame: fc.constant(maxFrame), pieces: fc.array(pieceArb(maxFrame), { maxLength: 10 }), cuts: cutsArb }),
    );
    await assertProperty(
      t,
      fc.property(caseArb, ({ maxFrame, pieces, cuts }) => {
        const stream = Buffer.concat(pieces);
        const { frames: got, results } = decodeChunks(maxFrame, split(stream, cuts));
        const want = model(stream, maxFrame);
        assert.deepEqual(got.map(plain), want.frames.map(plain));
        const firstErr = results.findIndex((r) => r !== null);
        if (want.error === null) assert.equal(firstErr, -1);
        else {
          assert.ok(firstErr >= 0, `expected ${want.error}`);
          assert.equal(results[firstErr]!.code, want.error);
          // Sticky: every later push answers with the same error.
          assert.ok(results.slice(firstErr).every((r) => r === results[firstErr]));
        }
      }),
      RUNS,
    );
  });

  it('should never throw on uniformly random chunks', async (t) => {
    await assertProperty(
      t,
      fc.property(maxFrameArb, fc.array(bodyOf(64), { maxLength: 20 }), (maxFrame, chunks) => {
        const d = new FrameDecoder(maxFrame);
        for (const c of chunks) {
          const r = d.push(c, (f) => {
            assert.ok(f.type >= FrameType.HELLO && f.type <= FrameType.BYE);
            assert.ok(f.body.length <= maxFrame);
          });
          assert.ok(r === null || r instanceof GatewayError);
        }
      }),
      RUNS,
    );
  });
});

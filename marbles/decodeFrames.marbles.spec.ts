/**
 * Marble tests for lib/ops/decodeFrames.ts. Marble values are real length-prefixed encodings
 * (lib/frame.ts `encodeFrame(f, true)`), cut at arbitrary byte offsets.
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Observable, mergeMap, of, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { FLAG_DEFLATE, FrameType, encodeFrame, frame, type Frame } from '../lib/frame.js';
import { decodeFrames } from '../lib/ops/decodeFrames.js';
import { gwError, observableMatcher } from './helpers/observableMatcher.js';

const f1 = frame(FrameType.HELLO, 1, Buffer.from('{"v":1}'));
const f2 = frame(FrameType.REQUEST, 2, Buffer.from('hello world'), 7);
const f3 = frame(FrameType.PING, 3);
const f4 = frame(FrameType.ACK, 0xffff_ffff, Buffer.from([0, 1, 2, 255]), 0xffff, FLAG_DEFLATE);
const enc = (f: Frame): Buffer => encodeFrame(f, true);
const bytes = Buffer.concat([enc(f1), enc(f2), enc(f3)]);
/** `buf` cut at the given offsets, as marble values `a`, `b`, `c`, … */
const cut = (buf: Buffer, ...at: number[]): Record<string, Buffer> =>
  Object.fromEntries([0, ...at].map((from, i) => [String.fromCharCode(97 + i), buf.subarray(from, at[i] ?? buf.length)]));
const expectedFrames = { 1: f1, 2: f2, 3: f3, 4: f4 };

/** A length prefix, then a header with the given type and flags, then `bodyLen` zero bytes. */
const raw = (len: number, type: number = FrameType.PING, flags = 0, bodyLen = 0): Buffer => {
  const b = Buffer.alloc(12 + bodyLen);
  b.writeUInt32BE(len, 0);
  b[4] = type;
  b[5] = flags;
  return b;
};

/** @test {decodeFrames} */
describe('decodeFrames', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
  });

  it('should decode frames from chunks split anywhere (doc marble)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      // a + b hold frame 1 (split inside the header); c holds frames 2 and 3. The group (23)
      // spans 4 frames of marble time, so the source completes at 12 for `|` to follow it.
      const chunks = cold(' -a---b--c---|', cut(bytes, 6, enc(f1).length));
      const chunksSubs = '  ^-----------!';
      const expected = '    -----1--(23)|';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected, expectedFrames);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should decode a frame split inside its length prefix and inside its body', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = enc(f1).length;
      // cuts: inside f1's prefix, inside f2's body, inside f3's prefix
      const chunks = cold(' a-b-c-d-|', cut(bytes, 2, e1 + 15, e1 + enc(f2).length + 1));
      const chunksSubs = '  ^-------!';
      const expected = '    --1-2-3-|';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected, expectedFrames);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should decode a stream fed one byte per frame', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const one = enc(f4);
      const values: Record<string, Buffer> = {};
      let marble = '';
      for (let i = 0; i < one.length; i++) {
        const k = String.fromCharCode(97 + i); // a, b, c, …
        values[k] = one.subarray(i, i + 1);
        marble += k;
      }
      const chunks = cold(marble + '|', values);
      const chunksSubs = '^' + '-'.repeat(one.length - 1) + '!';
      const expected = '-'.repeat(one.length - 1) + '4|';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected, expectedFrames);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should ignore empty chunks', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const chunks = cold(' -e-a-e|', { e: Buffer.alloc(0), a: enc(f3) });
      const chunksSubs = '  ^-----!';
      const expected = '    ---3--|';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected, expectedFrames);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should error with GW_ERR_FRAME_TYPE after the frames before it', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const a = Buffer.concat([enc(f1), raw(8, 0)]);
      const chunks = cold(' -a--b-|', { a, b: enc(f2) });
      const chunksSubs = '  ^!     ';
      const expected = '    -(1#)  ';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected, expectedFrames, gwError('GW_ERR_FRAME_TYPE'));
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should error with GW_ERR_FRAME_FLAGS on a reserved flag in a later chunk', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const chunks = cold(' -a--b--c|', { a: enc(f1), b: enc(f2), c: raw(8, FrameType.PING, 0x02) });
      const chunksSubs = '  ^------! ';
      const expected = '    -1--2--# ';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected, expectedFrames, gwError('GW_ERR_FRAME_FLAGS'));
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should error with GW_ERR_FRAME_TOO_SHORT on a length prefix under 8, before the header arrives', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const short = Buffer.alloc(4);
      short.writeUInt32BE(7, 0);
      const chunks = cold(' a-b---|', { a: enc(f3), b: short });
      const chunksSubs = '  ^-!    ';
      const expected = '    3-#    ';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected, expectedFrames, gwError('GW_ERR_FRAME_TOO_SHORT'));
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should error with GW_ERR_FRAME_TOO_LARGE on a length prefix over maxFrame, before the body arrives', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const huge = Buffer.alloc(4);
      huge.writeUInt32BE(8 + 65, 0);
      const chunks = cold(' -a-b-c-|', { a: enc(f2), b: huge, c: Buffer.alloc(65) });
      const chunksSubs = '  ^--!    ';
      const expected = '    -2-#    ';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected, expectedFrames, gwError('GW_ERR_FRAME_TOO_LARGE'));
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should accept a body of exactly maxFrame bytes', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const big = frame(FrameType.PUSH, 9, Buffer.alloc(16, 7));
      const chunks = cold(' a-b|', cut(enc(big), 10));
      const chunksSubs = '  ^--!';
      const expected = '    --x|';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 16 }))).toBe(expected, { x: big });
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should stay silent on a source that never emits (never)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const chunks = cold<Buffer>(' -');
      const chunksSubs = '          ^';
      const expected = '            -';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should complete when the source is empty', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const chunks = cold<Buffer>(' |');
      const chunksSubs = '          (^!)';
      const expected = '            |';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should complete without a frame when the source ends mid-frame', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const chunks = cold(' -a-|', { a: enc(f2).subarray(0, 13) });
      const chunksSubs = '  ^--!';
      const expected = '    ---|';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should pass through a source error after the frames before it', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const chunks = cold(' -a-#', { a: enc(f1) }, new Error('ECONNRESET'));
      const chunksSubs = '  ^--!';
      const expected = '    -1-#';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 }))).toBe(expected, expectedFrames, new Error('ECONNRESET'));
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should allow unsubscribing a never-ending source explicitly', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const chunks = cold(' -a-b-c-a-', { a: enc(f1), b: enc(f2), c: enc(f3) });
      const unsub = '       ------!   ';
      const chunksSubs = '  ^-----!   ';
      const expected = '    -1-2-3    ';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 })), unsub).toBe(expected, expectedFrames);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should drop a partial frame on early disposal', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const chunks = cold(' -a---b|', cut(enc(f2), 9));
      const unsub = '       ---!    ';
      const chunksSubs = '  ^--!    ';
      const expected = '    ---     ';
      expectObservable(chunks.pipe(decodeFrames({ maxFrame: 64 })), unsub).toBe(expected);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should keep a decoder per subscription', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const chunks = cold(' a-b|', cut(enc(f1), 5));
      const decoded = chunks.pipe(decodeFrames({ maxFrame: 64 }));
      expectObservable(decoded).toBe('--1|', expectedFrames);
      expectObservable(decoded).toBe('--1|', expectedFrames);
      expectSubscriptions(chunks.subscriptions).toBe(['^--!', '^--!']);
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const chunks = hot(' -a-^-b-c-a-|', { a: enc(f1), b: enc(f2), c: enc(f3) });
      const unsub = '         ----!      ';
      const chunksSubs = '    ^---!      ';
      const expected = '      --2-       ';
      const result = chunks.pipe(
        mergeMap((x) => of(x)),
        decodeFrames({ maxFrame: 64 }),
        mergeMap((x) => of(x)),
      );
      expectObservable(result, unsub).toBe(expected, expectedFrames);
      expectSubscriptions(chunks.subscriptions).toBe(chunksSubs);
    });
  });

  it('should stop listening to a synchronous observable when unsubscribed', () => {
    const sideEffects: number[] = [];
    const synchronousObservable = new Observable<Buffer>((subscriber) => {
      // This will check to see if the subscriber was closed on each loop
      // when the unsubscribe hits (from the `take`), it should be closed
      for (let i = 0; !subscriber.closed && i < 10; i++) {
        sideEffects.push(i);
        subscriber.next(enc(frame(FrameType.PING, i)));
      }
    });
    synchronousObservable.pipe(decodeFrames({ maxFrame: 64 }), take(3)).subscribe(() => {});
    assert.deepEqual(sideEffects, [0, 1, 2]);
  });

  it('should throw a TypeError at creation for a bad maxFrame', () => {
    for (const maxFrame of [0, -1, Number.NaN]) {
      assert.throws(() => decodeFrames({ maxFrame }), TypeError, `maxFrame = ${maxFrame}`);
    }
  });
});

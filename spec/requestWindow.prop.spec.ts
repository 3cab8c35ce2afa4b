import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { assertProperty } from './helpers/props.js';
import { FrameType, frame } from '../lib/frame.js';
import { RequestWindow } from '../lib/session/requestWindow.js';

/** Runs of each property (spec/helpers/props.ts: FC_RUNS asks for more, within a time budget). */
const RUNS = { runs: 100 };

describe('RequestWindow', () => {
  it('should run each seq at most once and answer repeats from memory (model check)', async (t) => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('req' as const), seq: fc.integer({ min: 1, max: 60 }) }),
      fc.record({ k: fc.constant('done' as const), pick: fc.nat() }),
    );
    await assertProperty(
      t,
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(op, { maxLength: 200, size: 'max' }), (size, ops) => {
        const w = new RequestWindow(size);
        // Model: admitted seqs in order, with their answer (null while running).
        const admitted: { seq: number; answer: string | null }[] = [];
        const ran = new Set<number>();
        for (const o of ops) {
          if (o.k === 'req') {
            const v = w.admit(o.seq);
            const inWindow = admitted.slice(-size).find((e) => e.seq === o.seq);
            const highest = admitted.length ? admitted[admitted.length - 1]!.seq : 0;
            if (inWindow) {
              if (inWindow.answer === null) assert.equal(v.kind, 'running');
              else {
                assert.equal(v.kind, 'done');
                assert.equal(v.kind === 'done' && v.answer.body.toString(), inWindow.answer);
              }
            } else if (o.seq <= highest) assert.equal(v.kind, 'stale');
            else {
              assert.equal(v.kind, 'new');
              assert.ok(!ran.has(o.seq), `seq ${o.seq} ran twice`);
              ran.add(o.seq);
              admitted.push({ seq: o.seq, answer: null });
            }
          } else {
            const running = admitted.filter((e) => e.answer === null);
            if (running.length === 0) continue;
            const e = running[o.pick % running.length]!;
            e.answer = `answer-${e.seq}`;
            w.complete(e.seq, frame(FrameType.RESPONSE, e.seq, Buffer.from(e.answer)));
          }
          assert.ok(w.length <= size);
        }
      }),
      RUNS,
    );
  });

  it('should match a model under byte bounds, forgets and answers of any size (arena compaction)', async (t) => {
    type Entry = { seq: number; state: 'running' | 'done' | 'notrun'; answer: Buffer | null };
    const op = fc.oneof(
      // Mostly the next seqs, often a re-send of a recent one.
      fc.record({ k: fc.constant('req' as const), delta: fc.integer({ min: -10, max: 3 }) }),
      fc.record({ k: fc.constant('done' as const), pick: fc.nat(), bytes: fc.integer({ min: 0, max: 300 }), error: fc.boolean(), route: fc.integer({ min: 0, max: 65535 }) }),
      fc.record({ k: fc.constant('forget' as const), pick: fc.nat() }),
    );
    await assertProperty(
      t,
      fc.property(fc.integer({ min: 1, max: 8 }), fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 1500 })), fc.array(op, { minLength: 20, maxLength: 250, size: 'max' }), (size, maxBytes, ops) => {
        const w = new RequestWindow(size, maxBytes);
        const model: Entry[] = [];
        let highest = 0;
        let bytes = 0;
        const answers = new Map<number, { type: number; route: number }>();
        const evict = (): void => {
          const e = model.shift()!;
          if (e.state === 'done') bytes -= e.answer!.length;
        };
        for (const o of ops) {
          if (o.k === 'req') {
            const seq = Math.max(1, highest + o.delta);
            const v = w.admit(seq);
            const e = model.find((x) => x.seq === seq);
            if (e?.state === 'notrun') {
              assert.equal(v.kind, 'new');
              e.state = 'running';
            } else if (e?.state === 'running') assert.equal(v.kind, 'running');
            else if (e?.state === 'done') {
              assert.equal(v.kind, 'done');
              if (v.kind === 'done') {
                assert.deepEqual(v.answer.body, e.answer);
                assert.equal(v.answer.seq, seq);
                assert.equal(v.answer.type, answers.get(seq)!.type);
                assert.equal(v.answer.route, answers.get(seq)!.route);
              }
            } else if (seq <= highest) assert.equal(v.kind, 'stale');
            else {
              assert.equal(v.kind, 'new');
              highest = seq;
              model.push({ seq: seq, state: 'running', answer: null });
              if (model.length > size) evict();
            }
          } else {
            const running = model.filter((x) => x.state === 'running');
            if (running.length === 0) continue;
            const e = running[o.pick % running.length]!;
            if (o.k === 'forget') {
              w.forget(e.seq);
              e.state = 'notrun';
              continue;
            }
            // Lengths spread over 0–300 (not fast-check's small-biased arrays) so the arena fills and compacts.
            const body = Buffer.alloc(o.bytes, e.seq & 0xff);
            if (o.bytes > 0) body[0] = o.bytes & 0xff;
            const type = o.error ? FrameType.ERROR : FrameType.RESPONSE;
            w.complete(e.seq, frame(type, e.seq, body, o.route));
            answers.set(e.seq, { type, route: o.route });
            e.state = 'done';
            e.answer = Buffer.from(body); // the window must have copied it
            body.fill(0xee); // a caller reusing its buffer must not change what the window keeps
            bytes += body.length;
            while (bytes > maxBytes && model.length > 1) evict();
          }
          assert.equal(w.length, model.length);
        }
      }),
      RUNS,
    );
  });

  it('should refuse a size below 1 at creation', () => {
    assert.throws(() => new RequestWindow(0), TypeError);
  });
});

describe('RequestWindow byte bound (--request-window-bytes)', () => {
  it('should let the oldest answers go once the kept answers pass the byte bound', () => {
    const w = new RequestWindow(128, 1000);
    const answer = (seq: number, bytes: number) => frame(FrameType.RESPONSE, seq, Buffer.alloc(bytes));
    for (const seq of [1, 2, 3]) assert.equal(w.admit(seq).kind, 'new');
    w.complete(1, answer(1, 400));
    w.complete(2, answer(2, 400));
    assert.equal(w.admit(1).kind, 'done');
    w.complete(3, answer(3, 400)); // 1200 > 1000: seq 1 leaves
    assert.equal(w.admit(1).kind, 'stale');
    assert.equal(w.admit(2).kind, 'done');
    assert.equal(w.admit(3).kind, 'done');
    assert.equal(w.length, 2);
  });
});

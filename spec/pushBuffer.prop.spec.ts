/**
 * Model-based test of lib/session/pushBuffer.ts (fast-check `fc.commands`, §2.4 replay buffer). The model
 * is the plain list of kept seqs, the highest ACK, the seqs dropped by overflow and every seq ever
 * added; every command checks the real buffer against it. fast-check prints the seed and the shrunk command list on
 * failure; replay one with `fc.assert(..., { seed, path })`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { assertProperty } from './helpers/props.js';
import { PushBuffer } from '../lib/session/pushBuffer.js';

/** Runs of each property (spec/helpers/props.ts: FC_RUNS asks for more, within a time budget). */
const RUNS = { runs: 100 };

interface Model {
  readonly max: number;
  /** Seqs kept, oldest first. */
  kept: number[];
  /** Highest seq ACKed. */
  acked: number;
  /** Seqs dropped by overflow (never by ACK). */
  overflowed: number[];
  /** Seq of the last push added (0 = none yet). */
  lastSeq: number;
  /** Every seq added, in order. */
  added: number[];
}
type Cmd = fc.Command<Model, PushBuffer>;

/** Invariants checked after every command. */
function assertState(m: Model, r: PushBuffer): void {
  assert.ok(r.size <= m.max, `size ${r.size} over max ${m.max}`);
  assert.equal(r.size, m.kept.length);
  assert.deepEqual(
    r.after(-1).map((p) => p.seq),
    m.kept,
  );
  assert.equal(r.acked, m.acked);
  assert.equal(r.forgottenUpTo, m.added.filter((s) => !m.kept.includes(s)).at(-1) ?? 0);
  assert.equal(r.dropped, m.overflowed.length);
}

/** Adds the push `step` seqs after the last one (seqs only grow; gaps allowed). */
class AddCommand implements Cmd {
  constructor(readonly step: number) {}
  check = (): boolean => true;
  run(m: Model, r: PushBuffer): void {
    const seq = m.lastSeq + this.step;
    m.lastSeq = seq;
    m.added.push(seq);
    m.kept.push(seq);
    let overflow = false;
    if (m.kept.length > m.max) {
      m.overflowed.push(m.kept.shift()!);
      overflow = true;
    }
    const body = Buffer.from([seq & 0xff]);
    assert.equal(r.add({ seq, route: seq % 7, body }), overflow ? 1 : 0, 'add() reports how many it dropped');
    assertState(m, r);
  }
  toString = (): string => `Add(+${this.step})`;
}

/** ACKs `back` seqs before the last one (a stale ACK when that is not above the current one). */
class AckCommand implements Cmd {
  constructor(readonly back: number) {}
  check = (m: Readonly<Model>): boolean => m.lastSeq > 0;
  run(m: Model, r: PushBuffer): void {
    const seq = Math.max(0, m.lastSeq - this.back);
    if (seq > m.acked) {
      m.acked = seq;
      m.kept = m.kept.filter((s) => s > seq);
    }
    r.ack(seq);
    assertState(m, r);
  }
  toString = (): string => `Ack(last-${this.back})`;
}

/**
 * A resume from `lastSeq` = last − back (below the ACK when the client lost state, above the
 * last seq when back < 0): what is replayed, and whether a gap is reported.
 */
class ResumeCheckCommand implements Cmd {
  constructor(readonly back: number) {}
  check = (): boolean => true;
  run(m: Model, r: PushBuffer): void {
    const lastSeq = m.lastSeq - this.back;
    assert.deepEqual(
      r.after(lastSeq).map((p) => p.seq),
      m.kept.filter((s) => s > lastSeq),
      `after(${lastSeq})`,
    );
    for (const p of r.after(lastSeq)) assert.deepEqual(p.body, Buffer.from([p.seq & 0xff]));
    // The rule: a gap exactly when some push after lastSeq is no longer kept, whatever removed it.
    const missing = m.added.some((s) => s > lastSeq && !m.kept.includes(s));
    assert.equal(r.gapAfter(lastSeq), missing, `gapAfter(${lastSeq})`);
    assertState(m, r);
  }
  toString = (): string => `Check(last-${this.back})`;
}

const commands = fc.commands(
  [
    fc.integer({ min: 1, max: 3 }).map((n) => new AddCommand(n)),
    fc.integer({ min: 0, max: 12 }).map((n) => new AckCommand(n)),
    fc.integer({ min: -2, max: 20 }).map((n) => new ResumeCheckCommand(n)),
  ],
  { maxCommands: 300, size: 'max' },
);

describe('PushBuffer (model-based)', () => {
  it('should agree with the model on size, replay and gap for any Add/Ack/Check sequence', async (t) => {
    await assertProperty(
      t,
      fc.property(fc.integer({ min: 1, max: 40 }), commands, (max, cmds) => {
        fc.modelRun(() => ({ model: { max, kept: [], acked: 0, overflowed: [], lastSeq: 0, added: [] }, real: new PushBuffer(max) }), cmds);
      }),
      RUNS,
    );
  });

  it('should keep its invariants across compaction with a long run of adds and acks', async (t) => {
    // Many adds with a small max push `head` well past the compaction threshold (32).
    await assertProperty(
      t,
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 100, maxLength: 400 }), (max, acks) => {
        const real = new PushBuffer(max);
        const model: Model = { max, kept: [], acked: 0, overflowed: [], lastSeq: 0, added: [] };
        for (const back of acks) {
          new AddCommand(1).run(model, real);
          if (back > 0) new AckCommand(back).run(model, real);
        }
      }),
      RUNS,
    );
  });

  it('should report a gap for pushes forgotten after an ACK when the client resumes below it', () => {
    const b = new PushBuffer(100);
    for (let seq = 1; seq <= 8; seq++) b.add({ seq, route: 1, body: Buffer.alloc(1) });
    b.ack(6);
    assert.equal(b.gapAfter(3), true, 'pushes 4..6 are gone');
    assert.deepEqual(b.after(3).map((p) => p.seq), [7, 8]);
    assert.equal(b.gapAfter(6), false);
    assert.equal(b.gapAfter(8), false);
    assert.equal(b.gapAfter(20), false, 'a lastSeq past the newest push misses nothing');
  });

  it('should report no gap for a session that has had no pushes', () => {
    const b = new PushBuffer(3);
    assert.equal(b.gapAfter(0), false);
    assert.equal(b.gapAfter(5), false);
  });

  it('should report a gap once every push is ACKed and the client resumes from before them', () => {
    const b = new PushBuffer(3);
    b.add({ seq: 1, route: 1, body: Buffer.alloc(1) });
    b.add({ seq: 2, route: 1, body: Buffer.alloc(1) });
    b.ack(2);
    assert.equal(b.size, 0);
    assert.equal(b.gapAfter(0), true, 'nothing to replay, yet 1 and 2 are missing');
    assert.equal(b.gapAfter(2), false);
  });

  it('should throw a TypeError for a bad max', () => {
    for (const max of [0, -1, Number.NaN]) assert.throws(() => new PushBuffer(max), TypeError, `max = ${max}`);
  });
});

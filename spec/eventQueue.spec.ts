/**
 * The backend event queue (lib/streams/events.ts) on a virtual clock: batching with a linger,
 * order, the bound, and retries. A post resolves when the test says so, so every step is counted,
 * never timed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualTimeScheduler } from 'rxjs';
import type { BackendEvent } from '../lib/streams/backend.js';
import { EventQueue } from '../lib/streams/events.js';

const ev = (n: number): BackendEvent => ({ type: 'online', playerId: `p${n}`, sessionId: `s${n}`, gateId: 'g', at: n });

function setup(o: { lingerMs: number; batchMax?: number; queueMax?: number; fail?: number }) {
  const clock = new VirtualTimeScheduler(undefined, Infinity);
  const posts: { at: number; batch: number[] }[] = [];
  let failures = o.fail ?? 0;
  const q = new EventQueue(
    (batch) => {
      posts.push({ at: clock.now(), batch: batch.map((e) => e.at) });
      return failures-- > 0 ? Promise.reject(new Error('backend down')) : Promise.resolve();
    },
    { batchMax: o.batchMax ?? 100, queueMax: o.queueMax ?? 1_000, lingerMs: o.lingerMs, baseBackoffMs: 100, maxBackoffMs: 100, scheduler: clock },
    () => undefined,
  );
  const sub = q.drain$.subscribe();
  /** Runs the clock to `t` ms, letting each post's promise settle between timer steps. */
  const until = async (t: number): Promise<void> => {
    for (let i = 0; i < 1_000; i++) {
      await new Promise((r) => setImmediate(r));
      const next = clock.actions[0];
      if (!next || next.delay > t) break;
      clock.maxFrames = next.delay;
      clock.flush();
    }
    clock.maxFrames = Math.max(clock.maxFrames, t);
    clock.frame = Math.max(clock.frame, t);
    await new Promise((r) => setImmediate(r));
  };
  return { q, posts, until, clock, sub };
}

describe('EventQueue', () => {
  it('should send the events of one linger in one POST, in order', async () => {
    const { q, posts, until, sub } = setup({ lingerMs: 20 });
    q.enqueue(ev(1));
    await until(5);
    q.enqueue(ev(2));
    q.enqueue(ev(3));
    assert.equal(posts.length, 0, 'nothing posted before the linger ends');
    await until(20);
    assert.deepEqual(posts, [{ at: 20, batch: [1, 2, 3] }]);
    assert.equal(q.length, 0);
    sub.unsubscribe();
  });

  it('should keep a steady trickle to one POST per linger, and post a full batch at once', async () => {
    const { q, posts, until, sub } = setup({ lingerMs: 20, batchMax: 4 });
    for (let t = 0; t < 60; t += 5) {
      await until(t);
      q.enqueue(ev(t));
    }
    await until(200);
    assert.ok(posts.length <= 4, `12 events over 60 ms went in ${posts.length} POSTs: ${JSON.stringify(posts)}`);
    assert.deepEqual(posts.flatMap((p) => p.batch), Array.from({ length: 12 }, (_, i) => i * 5), 'every event once, in order');
    const full = setup({ lingerMs: 20, batchMax: 4 });
    for (let i = 0; i < 4; i++) full.q.enqueue(ev(i));
    await full.until(0);
    assert.deepEqual(full.posts, [{ at: 0, batch: [0, 1, 2, 3] }], 'a full batch does not linger');
    full.sub.unsubscribe();
    sub.unsubscribe();
  });

  it('should post at once with no linger, retry a failed batch, and drop the oldest past queueMax', async () => {
    const { q, posts, until, sub } = setup({ lingerMs: 0, queueMax: 3, fail: 1 });
    q.enqueue(ev(1));
    await until(0);
    assert.deepEqual(posts, [{ at: 0, batch: [1] }], 'at once');
    q.enqueue(ev(2));
    q.enqueue(ev(3));
    q.enqueue(ev(4)); // the queue holds 1 (being retried), 2, 3: 1 goes
    assert.equal(q.dropped, 1);
    await until(500);
    assert.deepEqual(posts.slice(1).flatMap((p) => p.batch), [2, 3, 4], 'the retry carries what is left, in order');
    assert.equal(q.length, 0);
    sub.unsubscribe();
  });
});

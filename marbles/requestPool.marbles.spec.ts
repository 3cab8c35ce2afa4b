/**
 * Marble tests for lib/ops/requestPool.ts: admission control, per-player groups and the global
 * worker pool. Each job's work is its own cold observable (`---(A|)` answers job a with 'A' after
 * 3 frames), so every work source gets `expectSubscriptions`.
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Observable, mergeMap, of, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { requestPool, type RequestPoolConfig } from '../lib/ops/requestPool.js';
import { workerPool } from '../lib/ops/workerPool.js';
import { observableMatcher } from './helpers/observableMatcher.js';

interface Job {
  readonly id: string;
  readonly player: string;
}
/** Jobs a, b, c, d belong to player 1; x, y to player 2. */
const job = (id: string): Job => ({ id, player: 'abcd'.includes(id) ? 'p1' : 'p2' });
const jobs = { a: job('a'), b: job('b'), c: job('c'), d: job('d'), x: job('x'), y: job('y') };

/** @test {requestPool} */
describe('requestPool', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
  });
  /** Config over per-job work sources; workers, queueMax, playerConcurrency overridable. */
  const cfg = (
    work: Record<string, Observable<string>>,
    over: Partial<RequestPoolConfig<Job, string>> & { workers?: number } = {},
  ): RequestPoolConfig<Job, string> => {
    const { workers = 4, ...rest } = over;
    return {
      key: (j) => j.player,
      work: (j) => work[j.id]!,
      reject: (j) => `R:${j.id}`,
      fail: (j) => `F:${j.id}`,
      pool: workerPool({ concurrency: workers }),
      playerConcurrency: 1,
      queueMax: 10,
      lingerMs: 5,
      scheduler: testScheduler,
      ...rest,
    };
  };

  it('should keep per-player order with playerConcurrency 1', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const w = { a: cold('---(A|)'), b: cold('---(B|)'), c: cold('---(C|)') };
      const source = cold(' abc|', jobs);
      const sourceSubs = '  ^--!';
      const expected = '    ---A--B--(C|)';
      expectObservable(source.pipe(requestPool(cfg(w)))).toBe(expected);
      expectSubscriptions(source.subscriptions).toBe(sourceSubs);
      expectSubscriptions(w.a.subscriptions).toBe('^--!');
      expectSubscriptions(w.b.subscriptions).toBe('---^--!');
      expectSubscriptions(w.c.subscriptions).toBe('------^--!');
    });
  });

  it('should run two players in parallel with workers 2 (doc marble)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      // a, b: player 1; x: player 2. b waits for a (same player); x runs beside a.
      const w = { a: cold('---(A|)'), b: cold('---(B|)'), x: cold('---(X|)') };
      const source = cold(' -a-b-x-|', jobs);
      const sourceSubs = '  ^------!';
      const expected = '    ----A--B(X|)';
      expectObservable(source.pipe(requestPool(cfg(w, { workers: 2 })))).toBe(expected);
      expectSubscriptions(source.subscriptions).toBe(sourceSubs);
      expectSubscriptions(w.a.subscriptions).toBe('-^--!');
      expectSubscriptions(w.b.subscriptions).toBe('----^--!');
      expectSubscriptions(w.x.subscriptions).toBe('-----^--!');
    });
  });

  it('should cap work across players with workers 1', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const w = { a: cold('---(A|)'), x: cold('---(X|)'), y: cold('---(Y|)') };
      const source = cold(' axy|', jobs);
      const sourceSubs = '  ^--!';
      const expected = '    ---A--X--(Y|)';
      expectObservable(source.pipe(requestPool(cfg(w, { workers: 1 })))).toBe(expected);
      expectSubscriptions(source.subscriptions).toBe(sourceSubs);
      expectSubscriptions(w.a.subscriptions).toBe('^--!');
      expectSubscriptions(w.x.subscriptions).toBe('---^--!');
      expectSubscriptions(w.y.subscriptions).toBe('------^--!');
    });
  });

  it('should run up to playerConcurrency jobs of one player at once', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const w = { a: cold('---(A|)'), b: cold('-(B|)'), c: cold('-(C|)') };
      const source = cold(' abc|', jobs);
      const expected = '    --B(AC|)';
      expectObservable(source.pipe(requestPool(cfg(w, { playerConcurrency: 2 })))).toBe(expected);
      expectSubscriptions(source.subscriptions).toBe('^--!');
      expectSubscriptions(w.a.subscriptions).toBe('^--!');
      expectSubscriptions(w.b.subscriptions).toBe('-^!');
      expectSubscriptions(w.c.subscriptions).toBe('--^!');
    });
  });

  it('should reject past queueMax at once, never queue the rejected job, and admit again once drained', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const depth: [number, number][] = [];
      const onDepth = (n: number): void => void depth.push([testScheduler.now(), n]);
      const w = { a: cold('---(A|)'), b: cold('---(B|)'), c: cold('---(C|)'), d: cold('---(D|)') };
      const source = cold(' abc----d|', jobs);
      const sourceSubs = '  ^-------!';
      // a runs; b is queued (1 = queueMax); c is refused at once; d comes after the queue drained
      const expected = '    --rA--B---(D|)';
      expectObservable(source.pipe(requestPool(cfg(w, { workers: 1, queueMax: 1, onDepth })))).toBe(expected, { r: 'R:c', A: 'A', B: 'B', D: 'D' });
      expectSubscriptions(source.subscriptions).toBe(sourceSubs);
      expectSubscriptions(w.a.subscriptions).toBe('^--!');
      expectSubscriptions(w.b.subscriptions).toBe('---^--!');
      expectSubscriptions(w.c.subscriptions).toBe([]);
      expectSubscriptions(w.d.subscriptions).toBe('-------^--!');
      testScheduler.flush();
      assert.deepEqual(depth, [
        [0, 1],
        [1, 2],
        [3, 1],
        [6, 0],
        [7, 1],
        [10, 0],
      ]);
    });
  });

  it('should answer with fail when work errors, and keep going', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const w = { a: cold('--#', undefined, new Error('502')), b: cold('---(B|)'), x: cold('-(X|)') };
      const source = cold(' ab--x|', jobs);
      const sourceSubs = '  ^----!';
      const expected = '    --f--(BX|)';
      expectObservable(source.pipe(requestPool(cfg(w)))).toBe(expected, { f: 'F:a', B: 'B', X: 'X' });
      expectSubscriptions(source.subscriptions).toBe(sourceSubs);
      expectSubscriptions(w.a.subscriptions).toBe('^-!');
      expectSubscriptions(w.b.subscriptions).toBe('--^--!');
      expectSubscriptions(w.x.subscriptions).toBe('----^!');
    });
  });

  it('should answer with fail when work throws instead of returning an observable', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const w = { b: cold('-(B|)') };
      const source = cold(' ab|', jobs);
      const expected = '    a-(B|)';
      const config = cfg(w);
      const work = (j: Job): Observable<string> => {
        if (j.id === 'a') throw new Error('bad request');
        return w.b;
      };
      expectObservable(source.pipe(requestPool({ ...config, work }))).toBe(expected, { a: 'F:a', B: 'B' });
      expectSubscriptions(source.subscriptions).toBe('^-!');
      expectSubscriptions(w.b.subscriptions).toBe('-^!');
    });
  });

  it('should stay silent on a source that never emits (never)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<Job>(' -');
      expectObservable(source.pipe(requestPool(cfg({})))).toBe('-');
      expectSubscriptions(source.subscriptions).toBe('^');
    });
  });

  it('should complete when the source is empty', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<Job>(' |');
      expectObservable(source.pipe(requestPool(cfg({})))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('should error and cancel work in flight on a source error', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const depth: number[] = [];
      const w = { a: cold('---(A|)'), x: cold('-(X|)') };
      const source = cold(' ax#', jobs, new Error('socket reset'));
      const config = cfg(w, { onDepth: (n) => void depth.push(n) });
      expectObservable(source.pipe(requestPool(config))).toBe('--#', undefined, new Error('socket reset'));
      expectSubscriptions(source.subscriptions).toBe('^-!');
      expectSubscriptions(w.a.subscriptions).toBe('^-!');
      expectSubscriptions(w.x.subscriptions).toBe('-^!');
      testScheduler.flush();
      assert.deepEqual([config.pool.busy, config.pool.waiting], [0, 0]);
      assert.deepEqual(depth.at(-1), 0);
    });
  });

  it('should allow unsubscribing a never-ending source explicitly', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const w = { a: cold('---(A|)'), b: cold('---(B|)') };
      const source = cold(' a-b------', jobs);
      const unsub = '       ----!    ';
      const config = cfg(w);
      expectObservable(source.pipe(requestPool(config)), unsub).toBe('---A');
      expectSubscriptions(source.subscriptions).toBe('^---!');
      expectSubscriptions(w.a.subscriptions).toBe('^--!');
      expectSubscriptions(w.b.subscriptions).toBe('---^!');
      testScheduler.flush();
      assert.deepEqual([config.pool.busy, config.pool.waiting], [0, 0]);
    });
  });

  it('should never start a job that was waiting for a worker on early disposal', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const w = { a: cold('---(A|)'), x: cold('---(X|)') };
      const source = cold(' ax-----', jobs);
      const unsub = '       --!     ';
      const config = cfg(w, { workers: 1 });
      expectObservable(source.pipe(requestPool(config)), unsub).toBe('--');
      expectSubscriptions(source.subscriptions).toBe('^-!');
      expectSubscriptions(w.a.subscriptions).toBe('^-!');
      expectSubscriptions(w.x.subscriptions).toBe([]);
      testScheduler.flush();
      assert.deepEqual([config.pool.busy, config.pool.waiting], [0, 0]);
    });
  });

  it('should error when key throws', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const w = { a: cold('---(A|)') };
      const source = cold(' a-x|', jobs);
      const config = cfg(w);
      const key = (j: Job): string => {
        if (j.id === 'x') throw new Error('no player');
        return j.player;
      };
      expectObservable(source.pipe(requestPool({ ...config, key }))).toBe('--#', undefined, new Error('no player'));
      expectSubscriptions(source.subscriptions).toBe('^-!');
      expectSubscriptions(w.a.subscriptions).toBe('^-!');
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const w = { a: cold('-(A|)'), b: cold('-(B|)'), x: cold('---(X|)') };
      const source = hot(' -c-^a-b-x---|', jobs);
      const unsub = '         ------!    ';
      const sourceSubs = '    ^-----!    ';
      const expected = '      --A-B-     ';
      const result = source.pipe(
        mergeMap((j) => of(j)),
        requestPool(cfg(w)),
        mergeMap((r) => of(r)),
      );
      expectObservable(result, unsub).toBe(expected);
      expectSubscriptions(source.subscriptions).toBe(sourceSubs);
      expectSubscriptions(w.a.subscriptions).toBe('-^!');
      expectSubscriptions(w.b.subscriptions).toBe('---^!');
      expectSubscriptions(w.x.subscriptions).toBe('-----^!');
    });
  });

  it('should stop listening to a synchronous observable when unsubscribed', () => {
    const sideEffects: number[] = [];
    const synchronousObservable = new Observable<Job>((subscriber) => {
      // This will check to see if the subscriber was closed on each loop
      // when the unsubscribe hits (from the `take`), it should be closed
      for (let i = 0; !subscriber.closed && i < 10; i++) {
        sideEffects.push(i);
        subscriber.next({ id: String(i), player: `p${i % 2}` });
      }
    });
    const config = cfg({});
    synchronousObservable.pipe(requestPool({ ...config, work: (j) => of(j.id) }), take(3)).subscribe(() => {});
    assert.deepEqual(sideEffects, [0, 1, 2]);
    assert.deepEqual([config.pool.busy, config.pool.waiting], [0, 0]);
  });

  describe('limits$ (a config reload)', () => {
    /** Jobs w, x, y, z of four players. */
    const four = { w: { id: 'w', player: 'w' }, x: { id: 'x', player: 'x' }, y: { id: 'y', player: 'y' }, z: { id: 'z', player: 'z' } };
    const limits = (workers: number, playerConcurrency = 1, queueMax = 10) => ({ workers, playerConcurrency, queueMax });

    it('should start waiting jobs at once when the pool grows from 1 to 4 workers (doc marble)', () => {
      testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
        const w = { w: cold('----------(W|)'), x: cold('----------(X|)'), y: cold('----------(Y|)'), z: cold('----------(Z|)') };
        const limits$ = cold('a----b', { a: limits(1), b: limits(4) });
        const source = cold(' -wxyz|', four);
        const expected = '    -----------W---(XYZ|)';
        const config = cfg(w, { workers: 1, limits$ });
        expectObservable(source.pipe(requestPool(config))).toBe(expected);
        expectSubscriptions(w.w.subscriptions).toBe('-^---------!');
        expectSubscriptions(w.x.subscriptions).toBe('-----^---------!');
        expectSubscriptions(w.y.subscriptions).toBe('-----^---------!');
        expectSubscriptions(w.z.subscriptions).toBe('-----^---------!');
      });
    });

    it('should start no job while busy is over a lowered worker count, and stop none', () => {
      testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
        const w = { w: cold('----------(W|)'), x: cold('----------(X|)'), y: cold('----------(Y|)'), z: cold('----------(Z|)') };
        const limits$ = cold('a--b', { a: limits(4), b: limits(1) });
        const source = cold(' -wxyz|', four);
        // w and x run on; y starts only when both have finished (busy under 1), z after y.
        const expected = '    -----------WX---------Y---------(Z|)';
        expectObservable(source.pipe(requestPool(cfg(w, { workers: 4, limits$ })))).toBe(expected);
        expectSubscriptions(w.w.subscriptions).toBe('-^---------!');
        expectSubscriptions(w.x.subscriptions).toBe('--^---------!');
        expectSubscriptions(w.y.subscriptions).toBe('------------^---------!');
        expectSubscriptions(w.z.subscriptions).toBe('----------------------^---------!');
      });
    });

    it("should run a busy player's waiting jobs when its concurrency is raised", () => {
      testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
        const w = { a: cold('----------(A|)'), b: cold('----------(B|)'), c: cold('----------(C|)') };
        const limits$ = cold('a----b', { a: limits(4, 1), b: limits(4, 3) });
        const source = cold(' -abc-|', jobs);
        const expected = '    -----------A---(BC|)';
        expectObservable(source.pipe(requestPool(cfg(w, { limits$ })))).toBe(expected);
        expectSubscriptions(w.a.subscriptions).toBe('-^---------!');
        expectSubscriptions(w.b.subscriptions).toBe('-----^---------!');
        expectSubscriptions(w.c.subscriptions).toBe('-----^---------!');
      });
    });

    it('should admit by a lowered queueMax from the change on', () => {
      testScheduler.run(({ cold, expectObservable }) => {
        const w = { w: cold('-----(W|)'), x: cold('-----(X|)'), y: cold('-----(Y|)') };
        const limits$ = cold('a--b', { a: limits(1, 1, 10), b: limits(1, 1, 0) });
        // x waits for the one worker under queueMax 10; y comes after queueMax became 0: refused.
        const source = cold(' -xwy|', four);
        const expected = '    ---r--X----(W|)';
        expectObservable(source.pipe(requestPool(cfg(w, { workers: 1, limits$ })))).toBe(expected, { r: 'R:y', X: 'X', W: 'W' });
      });
    });

    it('should throw on bad limits and leave the pool as it was', () => {
      const pool = workerPool({ concurrency: 2 });
      assert.throws(() => pool.resize(0), TypeError);
      assert.equal(pool.concurrency, 2);
    });
  });

  it('should throw a TypeError at creation for bad config', () => {
    const bad: Partial<RequestPoolConfig<Job, string>>[] = [
      { playerConcurrency: 0 },
      { playerConcurrency: Number.NaN },
      { queueMax: -1 },
      { queueMax: Number.NaN },
      { lingerMs: -1 },
      { lingerMs: Number.NaN },
    ];
    for (const over of bad) assert.throws(() => requestPool(cfg({}, over)), TypeError, JSON.stringify(over));
  });
});

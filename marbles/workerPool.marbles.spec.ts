/**
 * Marble tests for lib/ops/workerPool.ts (`pool.lease()`): a counting semaphore across streams.
 * Each `expectObservable(x.pipe(pool.lease()))` subscribes at frame 0 in call order (or at the
 * `^` of its subscription marble), which is the arrival order the pool sees.
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Observable, map, mergeMap, of, take, tap } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { workerPool } from '../lib/ops/workerPool.js';
import { observableMatcher } from './helpers/observableMatcher.js';

/** @test {workerPool} */
describe('workerPool', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
  });

  it('should subscribe a second source only when the first completes (concurrency 1)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' --a--|');
      const aSubs = '  ^----!';
      const b = cold('      -b|');
      const bSubs = '  -----^-!';
      expectObservable(a.pipe(pool.lease())).toBe('--a--|');
      expectObservable(b.pipe(pool.lease())).toBe('------b|');
      expectSubscriptions(a.subscriptions).toBe(aSubs);
      expectSubscriptions(b.subscriptions).toBe(bSubs);
    });
  });

  it('should release the worker when the holder errors', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' --#', undefined, new Error('upstream'));
      const aSubs = '  ^-!';
      const b = cold('    -b|');
      const bSubs = '  --^-!';
      expectObservable(a.pipe(pool.lease())).toBe('--#', undefined, new Error('upstream'));
      expectObservable(b.pipe(pool.lease())).toBe('---b|');
      expectSubscriptions(a.subscriptions).toBe(aSubs);
      expectSubscriptions(b.subscriptions).toBe(bSubs);
    });
  });

  it('should release the worker when the holder is unsubscribed', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' -a-a-a-a-');
      const aUnsub = ' ---!     ';
      const aSubs = '  ^--!     ';
      const b = cold('     -b|  ');
      const bSubs = '  ---^-!   ';
      expectObservable(a.pipe(pool.lease()), aUnsub).toBe('-a-');
      expectObservable(b.pipe(pool.lease())).toBe('----b|');
      expectSubscriptions(a.subscriptions).toBe(aSubs);
      expectSubscriptions(b.subscriptions).toBe(bSubs);
    });
  });

  it('should never subscribe a cancelled waiter, and its cancellation should free no slot', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' -----|');
      const aSubs = '  ^----!';
      const b = cold(' -b|');
      const bUnsub = ' --!';
      const c = cold('      -c|');
      const cSubs = '  -----^-!';
      expectObservable(a.pipe(pool.lease())).toBe('-----|');
      expectObservable(b.pipe(pool.lease()), bUnsub).toBe('--');
      expectObservable(c.pipe(pool.lease())).toBe('------c|');
      expectSubscriptions(a.subscriptions).toBe(aSubs);
      expectSubscriptions(b.subscriptions).toBe([]);
      expectSubscriptions(c.subscriptions).toBe(cSubs);
    });
  });

  it('should tear a source down before its worker goes to the next waiter', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      let live = 0; // sources subscribed and not yet completed, errored or torn down
      let maxLive = 0; // most live sources at once
      const done = (): void => void live--;
      const tracked = <T>(src: Observable<T>): Observable<T> =>
        src.pipe(tap({ subscribe: () => void (maxLive = Math.max(maxLive, ++live)), complete: done, error: done, unsubscribe: done }));
      const a = cold(' --|');
      const b = cold('   --------');
      const c = cold('     -c|');
      expectObservable(tracked(a).pipe(pool.lease())).toBe('--|');
      expectObservable(tracked(b).pipe(pool.lease()), '----!').toBe('----');
      expectObservable(tracked(c).pipe(pool.lease())).toBe('-----c|');
      expectSubscriptions(a.subscriptions).toBe('^-!');
      expectSubscriptions(b.subscriptions).toBe('--^-!');
      expectSubscriptions(c.subscriptions).toBe('----^-!');
      testScheduler.flush();
      assert.equal(maxLive, 1);
      assert.equal(live, 0);
    });
  });

  it('should report busy and waiting counts', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 2 });
      const a = cold(' ---|');
      const b = cold(' -----|');
      const c = cold('    --|');
      const d = cold('      --|');
      expectObservable(a.pipe(pool.lease())).toBe('---|');
      expectObservable(b.pipe(pool.lease())).toBe('-----|');
      expectObservable(c.pipe(pool.lease())).toBe('-----|');
      expectObservable(d.pipe(pool.lease())).toBe('-------|');
      // sampled between events: busy/waiting
      const probe = cold(' -x--x-x-x|').pipe(map(() => `${pool.busy}/${pool.waiting}`));
      expectObservable(probe).toBe('-a--b-c-d|', { a: '2/2', b: '2/1', c: '1/0', d: '0/0' });
      expectSubscriptions(a.subscriptions).toBe('^--!');
      expectSubscriptions(b.subscriptions).toBe('^----!');
      expectSubscriptions(c.subscriptions).toBe('---^-!');
      expectSubscriptions(d.subscriptions).toBe('-----^-!');
    });
  });

  it('should hand workers to waiters in arrival (FIFO) order', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' ----|');
      const b = cold(' -|');
      const c = cold(' -|');
      const d = cold(' -|');
      expectObservable(a.pipe(pool.lease())).toBe('----|');
      expectObservable(c.pipe(pool.lease()), '---^').toBe('-------|');
      expectObservable(d.pipe(pool.lease()), '-^').toBe('-----|');
      expectObservable(b.pipe(pool.lease()), '--^').toBe('------|');
      expectSubscriptions(a.subscriptions).toBe('^---!');
      expectSubscriptions(d.subscriptions).toBe('----^!');
      expectSubscriptions(b.subscriptions).toBe('-----^!');
      expectSubscriptions(c.subscriptions).toBe('------^!');
    });
  });

  it('should run up to concurrency sources at once (values)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 2 });
      const a = cold(' -a-a|');
      const b = cold(' --b|');
      expectObservable(a.pipe(pool.lease())).toBe('-a-a|');
      expectObservable(b.pipe(pool.lease())).toBe('--b|');
      expectSubscriptions(a.subscriptions).toBe('^---!');
      expectSubscriptions(b.subscriptions).toBe('^--!');
    });
  });

  it('should hold the worker for a source that never ends (never)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' -');
      const b = cold(' -b|');
      expectObservable(a.pipe(pool.lease())).toBe('-');
      expectObservable(b.pipe(pool.lease())).toBe('-');
      expectSubscriptions(a.subscriptions).toBe('^');
      expectSubscriptions(b.subscriptions).toBe([]);
    });
  });

  it('should complete an empty source and release at once (empty)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' |');
      const b = cold(' -b|');
      expectObservable(a.pipe(pool.lease())).toBe('|');
      expectObservable(b.pipe(pool.lease())).toBe('-b|');
      expectSubscriptions(a.subscriptions).toBe('(^!)');
      expectSubscriptions(b.subscriptions).toBe('^-!');
    });
  });

  it('should release a worker held by a synchronous source before the next lease', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const b = cold(' -b|');
      expectObservable(of(1, 2).pipe(pool.lease())).toBe('(xy|)', { x: 1, y: 2 });
      expectObservable(b.pipe(pool.lease())).toBe('-b|');
      expectSubscriptions(b.subscriptions).toBe('^-!');
    });
  });

  it('should pass through a source error', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' -a-#');
      expectObservable(a.pipe(pool.lease())).toBe('-a-#');
      expectSubscriptions(a.subscriptions).toBe('^--!');
      testScheduler.schedule(() => assert.equal(pool.busy, 0), 4);
    });
  });

  it('should allow unsubscribing a never-ending source explicitly', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' -a-b-c-d-');
      const unsub = '  -----!   ';
      const aSubs = '  ^----!   ';
      expectObservable(a.pipe(pool.lease()), unsub).toBe('-a-b-');
      expectSubscriptions(a.subscriptions).toBe(aSubs);
      testScheduler.schedule(() => assert.deepEqual([pool.busy, pool.waiting], [0, 0]), 6);
    });
  });

  it('should not subscribe a waiter disposed early, even when it was next in line', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = cold(' ---|');
      const b = cold(' -b|');
      expectObservable(a.pipe(pool.lease())).toBe('---|');
      expectObservable(b.pipe(pool.lease()), '---!').toBe('---');
      expectSubscriptions(a.subscriptions).toBe('^--!');
      expectSubscriptions(b.subscriptions).toBe([]);
      testScheduler.schedule(() => assert.deepEqual([pool.busy, pool.waiting], [0, 0]), 4);
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ hot, cold, expectObservable, expectSubscriptions }) => {
      const pool = workerPool({ concurrency: 1 });
      const a = hot(' -1-^-a-b-c-d-|');
      const unsub = '    -----!      ';
      const aSubs = '    ^----!      ';
      const b = cold('        -b|    ');
      const bSubs = '    -----^-!    ';
      const result = a.pipe(
        mergeMap((x) => of(x)),
        pool.lease(),
        mergeMap((x) => of(x)),
      );
      expectObservable(result, unsub).toBe('--a-b');
      expectObservable(b.pipe(pool.lease())).toBe('------b|');
      expectSubscriptions(a.subscriptions).toBe(aSubs);
      expectSubscriptions(b.subscriptions).toBe(bSubs);
    });
  });

  it('should stop listening to a synchronous observable when unsubscribed', () => {
    const pool = workerPool({ concurrency: 1 });
    const sideEffects: number[] = [];
    const synchronousObservable = new Observable<number>((subscriber) => {
      // This will check to see if the subscriber was closed on each loop
      // when the unsubscribe hits (from the `take`), it should be closed
      for (let i = 0; !subscriber.closed && i < 10; i++) {
        sideEffects.push(i);
        subscriber.next(i);
      }
    });
    synchronousObservable.pipe(pool.lease(), take(3)).subscribe(() => {});
    assert.deepEqual(sideEffects, [0, 1, 2]);
    assert.deepEqual([pool.busy, pool.waiting], [0, 0]);
  });

  it('should throw a TypeError at creation for a bad concurrency', () => {
    for (const concurrency of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => workerPool({ concurrency }), TypeError, `concurrency = ${concurrency}`);
    }
  });
});

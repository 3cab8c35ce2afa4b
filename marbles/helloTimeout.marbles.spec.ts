/**
 * Marble tests for lib/ops/helloTimeout.ts. Expected marbles are hand-derived from the RxJS 7.8
 * `timeout({ first })` source: one timer from subscription, cleared by the first value and never
 * restarted (no `each`).
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Observable, mergeMap, of, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { helloTimeout } from '../lib/ops/helloTimeout.js';
import { gwError, observableMatcher } from './helpers/observableMatcher.js';

/** @test {helloTimeout} */
describe('helloTimeout', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
  });

  it('should pass a first value that comes in time and not time later gaps', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' --h-------x-|');
      const framesSubs = '  ^-----------!';
      const expected = '    --h-------x-|';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 4, scheduler: testScheduler }))).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should error with GW_ERR_HELLO_TIMEOUT when the first value is late', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' ------h--x--|');
      const framesSubs = '  ^---!        ';
      const expected = '    ----#        ';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 4, scheduler: testScheduler }))).toBe(
        expected,
        undefined,
        gwError('GW_ERR_HELLO_TIMEOUT'),
      );
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should count helloMs from subscription to a hot source', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const frames = hot(' -h-^----h--|');
      const framesSubs = '    ^--!      ';
      const expected = '      ---#      ';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 3, scheduler: testScheduler }))).toBe(
        expected,
        undefined,
        gwError('GW_ERR_HELLO_TIMEOUT'),
      );
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should time out a source that never emits (never)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' -');
      const framesSubs = '  ^---!';
      const expected = '    ----#';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 4, scheduler: testScheduler }))).toBe(
        expected,
        undefined,
        gwError('GW_ERR_HELLO_TIMEOUT'),
      );
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should complete when the source is empty', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' |');
      const framesSubs = '  (^!)';
      const expected = '    |';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 4, scheduler: testScheduler }))).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should pass every value once the first is in time', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' h-a--------b---c|');
      const framesSubs = '  ^---------------!';
      const expected = '    h-a--------b---c|';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 1, scheduler: testScheduler }))).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should pass through a source error before the first value', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' --#', undefined, new Error('boom'));
      const framesSubs = '  ^-!';
      const expected = '    --#';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 4, scheduler: testScheduler }))).toBe(expected, undefined, new Error('boom'));
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should pass through a source error after the first value', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' -h--------#', undefined, new Error('boom'));
      const framesSubs = '  ^---------!';
      const expected = '    -h--------#';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 4, scheduler: testScheduler }))).toBe(expected, undefined, new Error('boom'));
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should allow unsubscribing a never-ending source explicitly', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' -h-a-b-c-d-');
      const unsub = '       ------!    ';
      const framesSubs = '  ^-----!    ';
      const expected = '    -h-a-b-    ';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 2, scheduler: testScheduler })), unsub).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should not fire the timer after early disposal', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' --------h-');
      const unsub = '       --!       ';
      const framesSubs = '  ^-!       ';
      const expected = '    ---       ';
      expectObservable(frames.pipe(helloTimeout({ helloMs: 4, scheduler: testScheduler })), unsub).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const frames = hot(' -x-^-h-a-b-c-|');
      const unsub = '         ------!     ';
      const framesSubs = '    ^-----!     ';
      const expected = '      --h-a-      ';
      const result = frames.pipe(
        mergeMap((x) => of(x)),
        helloTimeout({ helloMs: 3, scheduler: testScheduler }),
        mergeMap((x) => of(x)),
      );
      expectObservable(result, unsub).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should stop listening to a synchronous observable when unsubscribed', () => {
    const sideEffects: number[] = [];
    const synchronousObservable = new Observable<number>((subscriber) => {
      // This will check to see if the subscriber was closed on each loop
      // when the unsubscribe hits (from the `take`), it should be closed
      for (let i = 0; !subscriber.closed && i < 10; i++) {
        sideEffects.push(i);
        subscriber.next(i);
      }
    });
    synchronousObservable.pipe(helloTimeout({ helloMs: 10, scheduler: testScheduler }), take(3)).subscribe(() => {});
    assert.deepEqual(sideEffects, [0, 1, 2]);
  });

  it('should throw a TypeError at creation for a bad helloMs', () => {
    for (const helloMs of [0, -5, Number.NaN]) {
      assert.throws(() => helloTimeout({ helloMs }), TypeError, `helloMs = ${helloMs}`);
    }
  });
});

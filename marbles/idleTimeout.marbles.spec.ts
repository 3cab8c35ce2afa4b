/**
 * Marble tests for lib/ops/idleTimeout.ts. Expected marbles are hand-derived from the RxJS 7.8
 * `timeout({ each })` source: the timer starts at subscription and restarts on every value.
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Observable, mergeMap, of, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { idleTimeout } from '../lib/ops/idleTimeout.js';
import { gwError, observableMatcher } from './helpers/observableMatcher.js';

/** @test {idleTimeout} */
describe('idleTimeout', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
  });

  it('should error with GW_ERR_IDLE_TIMEOUT after idleMs of silence', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' -a--b-------c--|');
      const framesSubs = '  ^-------!       ';
      const expected = '    -a--b---#       ';
      expectObservable(frames.pipe(idleTimeout({ idleMs: 4, scheduler: testScheduler }))).toBe(
        expected,
        undefined,
        gwError('GW_ERR_IDLE_TIMEOUT'),
      );
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should error with a custom code such as GW_ERR_HEARTBEAT_TIMEOUT', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const pings = hot(' --^-p--p-----p--|');
      const pingsSubs = '   ^--------!      ';
      const expected = '    --p--p---#      ';
      expectObservable(pings.pipe(idleTimeout({ idleMs: 4, code: 'GW_ERR_HEARTBEAT_TIMEOUT', scheduler: testScheduler }))).toBe(
        expected,
        undefined,
        gwError('GW_ERR_HEARTBEAT_TIMEOUT'),
      );
      expectSubscriptions(pings.subscriptions).toBe(pingsSubs);
    });
  });

  it('should restart the timer on each value', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' --a--b--c--d--|');
      const framesSubs = '  ^-------------!';
      const expected = '    --a--b--c--d--|';
      expectObservable(frames.pipe(idleTimeout({ idleMs: 3, scheduler: testScheduler }))).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should time out a source that never emits (never)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' -');
      const framesSubs = '  ^--!';
      const expected = '    ---#';
      expectObservable(frames.pipe(idleTimeout({ idleMs: 3, scheduler: testScheduler }))).toBe(
        expected,
        undefined,
        gwError('GW_ERR_IDLE_TIMEOUT'),
      );
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should complete when the source is empty', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' |');
      const framesSubs = '  (^!)';
      const expected = '    |';
      expectObservable(frames.pipe(idleTimeout({ idleMs: 3, scheduler: testScheduler }))).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should pass values through when none is late', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' a----b---(cd)|', { a: 1, b: 2, c: 3, d: 4 });
      const framesSubs = '  ^------------!';
      const expected = '    a----b---(cd)|';
      expectObservable(frames.pipe(idleTimeout({ idleMs: 5, scheduler: testScheduler }))).toBe(expected, { a: 1, b: 2, c: 3, d: 4 });
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should pass through a source error that comes in time', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' --a--#', undefined, new Error('boom'));
      const framesSubs = '  ^----!';
      const expected = '    --a--#';
      expectObservable(frames.pipe(idleTimeout({ idleMs: 5, scheduler: testScheduler }))).toBe(expected, undefined, new Error('boom'));
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should allow unsubscribing a never-ending source explicitly', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' -a-b-c-d-e-f-');
      const unsub = '       -------!     ';
      const framesSubs = '  ^------!     ';
      const expected = '    -a-b-c-      ';
      expectObservable(frames.pipe(idleTimeout({ idleMs: 5, scheduler: testScheduler })), unsub).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should not fire the timer after early disposal', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold(' --a---------');
      const unsub = '       ----!       ';
      const framesSubs = '  ^---!       ';
      const expected = '    --a-        ';
      expectObservable(frames.pipe(idleTimeout({ idleMs: 3, scheduler: testScheduler })), unsub).toBe(expected);
      expectSubscriptions(frames.subscriptions).toBe(framesSubs);
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const frames = hot(' -1-^-a-b-c-d-e-|');
      const unsub = '          ------!       ';
      const framesSubs = '      ^-----!       ';
      const expected = '        --a-b-       ';
      const result = frames.pipe(
        mergeMap((x) => of(x)),
        idleTimeout({ idleMs: 3, scheduler: testScheduler }),
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
    synchronousObservable.pipe(idleTimeout({ idleMs: 10, scheduler: testScheduler }), take(3)).subscribe(() => {});
    assert.deepEqual(sideEffects, [0, 1, 2]);
  });

  it('should throw a TypeError at creation for a bad idleMs', () => {
    for (const idleMs of [0, -1, Number.NaN]) {
      assert.throws(() => idleTimeout({ idleMs }), TypeError, `idleMs = ${idleMs}`);
    }
  });
});

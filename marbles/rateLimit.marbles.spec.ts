/**
 * Marble tests for lib/ops/rateLimit.ts. In TestScheduler.run() one frame is 1 ms, so
 * `perSecond: 1000 / 3` adds one token every 3 frames.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { Observable, of, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { rateLimit } from '../lib/ops/rateLimit.js';
import { gwError, observableMatcher } from './helpers/observableMatcher.js';

/** @test {rateLimit} */
describe('rateLimit', () => {
  let testScheduler: TestScheduler;
  let limited: string[];
  const cfg = (over: Partial<Parameters<typeof rateLimit<string>>[0]> = {}) => ({
    perSecond: 1000 / 3,
    burst: 1,
    strikes: 2,
    applies: (v: string) => v !== 'p',
    onLimited: (v: string) => limited.push(`${v}@${testScheduler.now()}`),
    scheduler: testScheduler,
    ...over,
  });
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
    limited = [];
  });

  it('should pass values within the rate and hand the rest to onLimited', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-aab--c-ddd|');
      const subs = '       ^----------!';
      const expected = '   -a----c--d-|';
      expectObservable(source.pipe(rateLimit(cfg()))).toBe(expected);
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
    assert.deepEqual(limited, ['a@2', 'b@3', 'd@8', 'd@10']);
  });

  it('should error with GW_ERR_RATE_ABUSE past `strikes` refusals in a row', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-aaaa--a|');
      const subs = '       ^---!    ';
      const expected = '   -a--#    ';
      expectObservable(source.pipe(rateLimit(cfg({ perSecond: 100 })))).toBe(expected, undefined, gwError('GW_ERR_RATE_ABUSE'));
      expectSubscriptions(source.subscriptions).toBe(subs);
    });
    assert.deepEqual(limited, ['a@2', 'a@3']);
  });

  it('should let values it does not apply to through untouched', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('-appppa|');
      expectObservable(source.pipe(rateLimit(cfg({ perSecond: 100, strikes: 0 })))).toBe('-apppp#', undefined, gwError('GW_ERR_RATE_ABUSE'));
    });
  });

  it('should refill up to burst after a quiet spell', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('---------aaa|');
      expectObservable(source.pipe(rateLimit(cfg({ burst: 3 })))).toBe('---------aaa|');
    });
  });

  it('should mirror an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('|');
      expectObservable(source.pipe(rateLimit(cfg()))).toBe('|');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
    });
  });

  it('should never emit for a never source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-');
      expectObservable(source.pipe(rateLimit(cfg()))).toBe('-');
      expectSubscriptions(source.subscriptions).toBe('^');
    });
  });

  it('should pass a source error through', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-#', undefined, new Error('boom'));
      expectObservable(source.pipe(rateLimit(cfg()))).toBe('-a-#', undefined, new Error('boom'));
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('should unsubscribe from a never-ending source when the result is unsubscribed', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const source = hot('--a-----b--c--');
      const unsub = '     -------!      ';
      expectObservable(source.pipe(rateLimit(cfg())), unsub).toBe('--a-----');
      expectSubscriptions(source.subscriptions).toBe('^------!');
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const source = hot('--a--------b--');
      const unsub = '     ------!       ';
      const result = source.pipe(
        (o) => o,
        rateLimit(cfg()),
        (o) => o,
      );
      expectObservable(result, unsub).toBe('--a---');
      expectSubscriptions(source.subscriptions).toBe('^-----!');
    });
  });

  it('should stop listening to a synchronous observable when unsubscribed', () => {
    const sideEffects: number[] = [];
    const synchronousObservable = new Observable<string>((subscriber) => {
      for (let i = 0; !subscriber.closed && i < 10; i++) {
        sideEffects.push(i);
        subscriber.next('p');
      }
    });
    synchronousObservable.pipe(rateLimit(cfg()), take(3)).subscribe(() => undefined);
    assert.deepEqual(sideEffects, [0, 1, 2]);
  });

  it('should error when onLimited throws', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('-aa|');
      const throwing = cfg({
        onLimited: () => {
          throw new Error('callback');
        },
      });
      expectObservable(source.pipe(rateLimit(throwing))).toBe('-a#', undefined, new Error('callback'));
    });
  });

  it('should refuse bad config at creation', () => {
    assert.throws(() => rateLimit(cfg({ perSecond: 0 })), TypeError);
    assert.throws(() => rateLimit(cfg({ burst: 0.5 })), TypeError);
    assert.throws(() => rateLimit(cfg({ strikes: -1 })), TypeError);
    assert.doesNotThrow(() => of(1));
  });
});

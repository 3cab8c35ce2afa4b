/**
 * Marble tests for lib/ops/retryBackoff.ts. Expected marbles are hand-derived from the RxJS 7.8
 * `retry({ count, delay, resetOnSuccess })` source: after the n-th consecutive error (n ≤ count)
 * the delay notifier `timer(min(baseMs·2^(n-1), maxMs))` is subscribed and its first value
 * resubscribes; error n = count + 1 passes through; a `next` resets n when resetOnSuccess.
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Observable, defer, mergeMap, of, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { GatewayError, isGatewayError } from '../lib/errors.js';
import { retryBackoff, type RetryBackoffConfig } from '../lib/ops/retryBackoff.js';
import { gwError, observableMatcher } from './helpers/observableMatcher.js';

const always = (): boolean => true;
const upstreamDown = gwError('GW_ERR_UPSTREAM_UNAVAILABLE');

/** @test {retryBackoff} */
describe('retryBackoff', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
  });
  const cfg = (over: Partial<RetryBackoffConfig> = {}): RetryBackoffConfig => ({
    baseMs: 1,
    maxMs: 10,
    maxRetries: 2,
    isRetryable: always,
    scheduler: testScheduler,
    ...over,
  });

  it('should wait min(baseMs·2^(n-1), maxMs) before attempt n+1 and pass the last error through', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' -#', undefined, upstreamDown);
      const upstreamSubs = ['^!', '--^!', '-----^!'];
      const expected = '      ------#';
      expectObservable(upstream.pipe(retryBackoff(cfg()))).toBe(expected, undefined, upstreamDown);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should pass a non-retryable error through at once', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const refused = gwError('GW_ERR_UPSTREAM_STATUS');
      const upstream = cold(' --a-#', undefined, refused);
      const upstreamSubs = '  ^---!';
      const expected = '      --a-#';
      const isRetryable = (e: unknown): boolean => isGatewayError(e, 'GW_ERR_UPSTREAM_UNAVAILABLE');
      expectObservable(upstream.pipe(retryBackoff(cfg({ isRetryable })))).toBe(expected, undefined, refused);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should cap each delay at maxMs', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      // delays: 2, min(4, 3) = 3, min(8, 3) = 3
      const upstream = cold(' -#', undefined, upstreamDown);
      const upstreamSubs = ['^!', '---^!', '-------^!', '-----------^!'];
      const expected = '      ------------#';
      expectObservable(upstream.pipe(retryBackoff(cfg({ baseMs: 2, maxMs: 3, maxRetries: 3 })))).toBe(expected, undefined, upstreamDown);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should apply the jitter function to each capped delay', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const calls: [number, number][] = [];
      const jitter = (d: number, attempt: number): number => (calls.push([d, attempt]), d * 2);
      // delays: 1·2 = 2, 2·2 = 4
      const upstream = cold(' -#', undefined, upstreamDown);
      const upstreamSubs = ['^!', '---^!', '--------^!'];
      const expected = '      ---------#';
      expectObservable(upstream.pipe(retryBackoff(cfg({ jitter })))).toBe(expected, undefined, upstreamDown);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
      testScheduler.flush();
      assert.deepEqual(calls, [
        [1, 1],
        [2, 2],
      ]);
    });
  });

  it('should clamp a negative jittered delay to 0', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' -#', undefined, upstreamDown);
      const upstreamSubs = ['^!', '-^!', '--^!'];
      const expected = '      ---#';
      expectObservable(upstream.pipe(retryBackoff(cfg({ jitter: () => -5 })))).toBe(expected, undefined, upstreamDown);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should reset the attempt count after a value when resetOnSuccess', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const attempts = [
        cold('-#', undefined, upstreamDown), // err 1 → wait 1
        cold('-#', undefined, upstreamDown), // err 2 → wait 2
        cold('-a#', undefined, upstreamDown), // a resets; err 1 → wait 1
        cold('-#', undefined, upstreamDown), // err 2 → wait 2
        cold('-#', undefined, upstreamDown), // err 3 passes
      ];
      let n = 0;
      const upstream = defer(() => attempts[n++]!);
      const expected = '------a-----#';
      expectObservable(upstream.pipe(retryBackoff(cfg({ resetOnSuccess: true })))).toBe(expected, undefined, upstreamDown);
      expectSubscriptions(attempts[0]!.subscriptions).toBe('^!');
      expectSubscriptions(attempts[1]!.subscriptions).toBe('--^!');
      expectSubscriptions(attempts[2]!.subscriptions).toBe('-----^-!');
      expectSubscriptions(attempts[3]!.subscriptions).toBe('--------^!');
      expectSubscriptions(attempts[4]!.subscriptions).toBe('-----------^!');
    });
  });

  it('should not reset the attempt count after a value by default', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const attempts = [
        cold('-#', undefined, upstreamDown),
        cold('-#', undefined, upstreamDown),
        cold('-a#', undefined, upstreamDown),
        cold('-#', undefined, upstreamDown),
      ];
      let n = 0;
      const upstream = defer(() => attempts[n++]!);
      const expected = '------a#';
      expectObservable(upstream.pipe(retryBackoff(cfg()))).toBe(expected, undefined, upstreamDown);
      expectSubscriptions(attempts[0]!.subscriptions).toBe('^!');
      expectSubscriptions(attempts[1]!.subscriptions).toBe('--^!');
      expectSubscriptions(attempts[2]!.subscriptions).toBe('-----^-!');
      expectSubscriptions(attempts[3]!.subscriptions).toBe([]);
    });
  });

  it('should not retry when maxRetries is 0', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' -a#', undefined, upstreamDown);
      const upstreamSubs = '  ^-!';
      const expected = '      -a#';
      expectObservable(upstream.pipe(retryBackoff(cfg({ maxRetries: 0 })))).toBe(expected, undefined, upstreamDown);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should stay silent on a source that never emits (never)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' -');
      const upstreamSubs = '  ^';
      const expected = '      -';
      expectObservable(upstream.pipe(retryBackoff(cfg()))).toBe(expected);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should complete when the source is empty', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' |');
      const upstreamSubs = '  (^!)';
      const expected = '      |';
      expectObservable(upstream.pipe(retryBackoff(cfg()))).toBe(expected);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should pass values and completion through', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' -a-b--c|');
      const upstreamSubs = '  ^------!';
      const expected = '      -a-b--c|';
      expectObservable(upstream.pipe(retryBackoff(cfg()))).toBe(expected);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should replay the values of each attempt (cold source error)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' a#', undefined, upstreamDown);
      const upstreamSubs = ['^!', '--^!', '-----^!'];
      const expected = '      a-a--a#';
      expectObservable(upstream.pipe(retryBackoff(cfg()))).toBe(expected, undefined, upstreamDown);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should error when isRetryable throws', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' -a-#', undefined, upstreamDown);
      const upstreamSubs = '  ^--!';
      const expected = '      -a-#';
      const isRetryable = (): boolean => {
        throw new Error('oops');
      };
      expectObservable(upstream.pipe(retryBackoff(cfg({ isRetryable })))).toBe(expected, undefined, new Error('oops'));
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should allow unsubscribing a never-ending source explicitly', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' -a-b-c-d-');
      const unsub = '         -----!   ';
      const upstreamSubs = '  ^----!   ';
      const expected = '      -a-b-    ';
      expectObservable(upstream.pipe(retryBackoff(cfg())), unsub).toBe(expected);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should cancel the pending retry timer on early disposal', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' -#', undefined, upstreamDown);
      const unsub = '         ---!      ';
      const upstreamSubs = '  ^!        ';
      const expected = '      ---       ';
      expectObservable(upstream.pipe(retryBackoff(cfg({ baseMs: 5 }))), unsub).toBe(expected);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const upstream = cold(' -a-#', undefined, upstreamDown);
      const unsub = '         --------!';
      const upstreamSubs = ['^--!', '----^--!'];
      const expected = '      -a---a--';
      const result = upstream.pipe(
        mergeMap((x) => of(x)),
        retryBackoff(cfg()),
        mergeMap((x) => of(x)),
      );
      expectObservable(result, unsub).toBe(expected);
      expectSubscriptions(upstream.subscriptions).toBe(upstreamSubs);
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
    synchronousObservable.pipe(retryBackoff(cfg()), take(3)).subscribe(() => {});
    assert.deepEqual(sideEffects, [0, 1, 2]);
  });

  it('should throw a TypeError at creation for bad config', () => {
    const bad: Partial<RetryBackoffConfig>[] = [
      { maxRetries: -1 },
      { maxRetries: Number.NaN },
      { baseMs: -1 },
      { baseMs: Number.NaN },
      { baseMs: 5, maxMs: 4 },
      { maxMs: Number.NaN },
    ];
    for (const over of bad) assert.throws(() => retryBackoff(cfg(over)), TypeError, JSON.stringify(over));
  });

  it('should keep GatewayError identity on the error that passes through', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const err = new GatewayError('GW_ERR_UPSTREAM_TIMEOUT', 'attempt 1 timed out');
      const upstream = cold('#', undefined, err);
      expectObservable(upstream.pipe(retryBackoff(cfg({ isRetryable: () => false })))).toBe('#', undefined, gwError('GW_ERR_UPSTREAM_TIMEOUT'));
    });
  });
});

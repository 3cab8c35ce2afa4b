/** Marble tests for lib/ops/paceByCredit.ts: credit-based flow control (the replay on resume). */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { NEVER, Observable, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { paceByCredit } from '../lib/ops/paceByCredit.js';
import { observableMatcher } from './helpers/observableMatcher.js';

const one = { budget: 2, size: (): number => 1 };
const credits = { 1: 1, 2: 2, 9: 9 };

/** @test {paceByCredit} */
describe('paceByCredit', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
  });

  it('should emit up to the budget and the rest as credits come back', () => {
    testScheduler.run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const source = cold('(abcd|)');
      const credit = hot(' ----1---2', credits);
      expectObservable(source.pipe(paceByCredit(credit, one))).toBe('(ab)c---(d|)');
      expectSubscriptions(source.subscriptions).toBe('(^!)');
      expectSubscriptions(credit.subscriptions).toBe('^-------!');
    });
  });

  it('should let a value larger than the budget out alone', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const sizes: Record<string, number> = { a: 5, b: 1 };
      const source = cold('(ab|)');
      const credit = hot(' --9', credits);
      expectObservable(source.pipe(paceByCredit(credit, { budget: 2, size: (v: string) => sizes[v]! }))).toBe('a-(b|)');
    });
  });

  it('should pass values straight through while there is room', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const source = cold('-a-b-c-|');
      expectObservable(source.pipe(paceByCredit(cold('-1-1-1-1', credits), one))).toBe('-a-b-c-|');
    });
  });

  it('should mirror an empty source and a never source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const empty = cold('|');
      expectObservable(empty.pipe(paceByCredit(NEVER, one))).toBe('|');
      expectSubscriptions(empty.subscriptions).toBe('(^!)');
      const never = cold('-');
      expectObservable(never.pipe(paceByCredit(NEVER, one))).toBe('-');
      expectSubscriptions(never.subscriptions).toBe('^');
    });
  });

  it('should pass a source error or a credit error through', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      expectObservable(cold('a#').pipe(paceByCredit(NEVER, one))).toBe('a#');
      expectObservable(cold('(abc)').pipe(paceByCredit(cold('-----#'), one))).toBe('(ab)-#');
    });
  });

  it('should unsubscribe from the source and the credits when the result is unsubscribed', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const source = hot('-a-b-c-d-e-f');
      const credit = hot('----1-1-1-1-', credits);
      const unsub = '     ------!';
      expectObservable(source.pipe(paceByCredit(credit, one)), unsub).toBe('-a-b-c');
      expectSubscriptions(source.subscriptions).toBe('^-----!');
      expectSubscriptions(credit.subscriptions).toBe('^-----!');
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const source = hot('-a-b-c-d');
      const unsub = '     ----!';
      const result = source.pipe(
        (o) => o,
        paceByCredit(NEVER, one),
        (o) => o,
      );
      expectObservable(result, unsub).toBe('-a-b');
      expectSubscriptions(source.subscriptions).toBe('^---!');
    });
  });

  it('should stop listening to a synchronous observable when unsubscribed', () => {
    const sideEffects: number[] = [];
    const sync = new Observable<number>((subscriber) => {
      for (let i = 0; !subscriber.closed && i < 10; i++) {
        sideEffects.push(i);
        subscriber.next(i);
      }
    });
    sync.pipe(paceByCredit(NEVER, { budget: 100, size: () => 1 }), take(3)).subscribe(() => undefined);
    assert.deepEqual(sideEffects, [0, 1, 2]);
  });

  it('should error when size throws', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const throwing = {
        budget: 2,
        size: (): number => {
          throw new Error('callback');
        },
      };
      expectObservable(cold('a|').pipe(paceByCredit(NEVER, throwing))).toBe('#', undefined, new Error('callback'));
    });
  });

  it('should refuse a budget that is not positive', () => {
    assert.throws(() => paceByCredit(NEVER, { budget: 0, size: () => 1 }), TypeError);
  });
});

/**
 * Marble tests for lib/ops/watchLink.ts: the HELLO deadline (like `timeout({ first })` on the
 * HELLO) and the silence deadline (like `timeout({ each })`), with one lazily re-armed timer.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { Observable, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { watchLink } from '../lib/ops/watchLink.js';
import { gwError, observableMatcher } from './helpers/observableMatcher.js';

/** @test {watchLink} */
describe('watchLink', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
  });
  const cfg = (helloMs: number, silentMs: number) => ({ helloMs, silentMs, isHello: (v: string) => v === 'h', scheduler: testScheduler });

  it('should error with GW_ERR_HELLO_TIMEOUT when no HELLO comes in time, even with other frames', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold('-p-p-p--|');
      const subs = '       ^---!    ';
      expectObservable(frames.pipe(watchLink(cfg(4, 3)))).toBe('-p-p#', undefined, gwError('GW_ERR_HELLO_TIMEOUT'));
      expectSubscriptions(frames.subscriptions).toBe(subs);
    });
  });

  it('should error with GW_ERR_HEARTBEAT_TIMEOUT after silentMs without a frame', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold('-h-p-----p|');
      const subs = '       ^-----!    ';
      expectObservable(frames.pipe(watchLink(cfg(4, 3)))).toBe('-h-p--#', undefined, gwError('GW_ERR_HEARTBEAT_TIMEOUT'));
      expectSubscriptions(frames.subscriptions).toBe(subs);
    });
  });

  it('should pass frames that keep the link alive, a value at the deadline winning the tie', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold('h--p--p--p|');
      expectObservable(frames.pipe(watchLink(cfg(5, 3)))).toBe('h--p--p--p|');
      expectSubscriptions(frames.subscriptions).toBe('^---------!');
    });
  });

  it('should time out a never source with the earlier deadline', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const never = cold('-');
      expectObservable(never.pipe(watchLink(cfg(4, 6)))).toBe('----#', undefined, gwError('GW_ERR_HELLO_TIMEOUT'));
      expectSubscriptions(never.subscriptions).toBe('^---!');
      const never2 = cold('-');
      expectObservable(never2.pipe(watchLink(cfg(6, 2)))).toBe('--#', undefined, gwError('GW_ERR_HEARTBEAT_TIMEOUT'));
    });
  });

  it('should mirror an empty source', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const empty = cold('|');
      expectObservable(empty.pipe(watchLink(cfg(4, 3)))).toBe('|');
      expectSubscriptions(empty.subscriptions).toBe('(^!)');
    });
  });

  it('should pass a source error through before the deadlines', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const frames = cold('-h#', undefined, new Error('boom'));
      expectObservable(frames.pipe(watchLink(cfg(4, 3)))).toBe('-h#', undefined, new Error('boom'));
      expectSubscriptions(frames.subscriptions).toBe('^-!');
    });
  });

  it('should unsubscribe from a never-ending source and cancel its timer', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const frames = hot('-h-p-p-p-p-p-p');
      const unsub = '     ---------!    ';
      expectObservable(frames.pipe(watchLink(cfg(4, 3))), unsub).toBe('-h-p-p-p-');
      expectSubscriptions(frames.subscriptions).toBe('^--------!');
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const frames = hot('-h-p-p-p-p');
      const unsub = '     -----!    ';
      const result = frames.pipe(
        (o) => o,
        watchLink(cfg(4, 3)),
        (o) => o,
      );
      expectObservable(result, unsub).toBe('-h-p-');
      expectSubscriptions(frames.subscriptions).toBe('^----!');
    });
  });

  it('should stop listening to a synchronous observable when unsubscribed', () => {
    const sideEffects: number[] = [];
    const sync = new Observable<string>((subscriber) => {
      for (let i = 0; !subscriber.closed && i < 10; i++) {
        sideEffects.push(i);
        subscriber.next('h');
      }
    });
    sync.pipe(watchLink(cfg(4, 3)), take(3)).subscribe(() => undefined);
    assert.deepEqual(sideEffects, [0, 1, 2]);
  });

  it('should error when isHello throws', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const frames = cold('-a|');
      const throwing = {
        ...cfg(4, 3),
        isHello: (): boolean => {
          throw new Error('callback');
        },
      };
      expectObservable(frames.pipe(watchLink(throwing))).toBe('-#', undefined, new Error('callback'));
    });
  });

  it('should refuse bad config at creation', () => {
    assert.throws(() => watchLink(cfg(0, 3)), TypeError);
    assert.throws(() => watchLink(cfg(3, -1)), TypeError);
  });
});

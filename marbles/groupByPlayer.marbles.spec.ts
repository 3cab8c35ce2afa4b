/**
 * Marble tests for lib/ops/groupByPlayer.ts. Values are Settleable requests; a scheduled action
 * settles one (`v.settled = true; v.onSettled?.()`) the way the request path does when its work
 * ends. Each group is shown as the ids it carries, materialised relative to its emission frame.
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Observable, endWith, map, mergeMap, of, take, tap, type GroupedObservable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { groupByPlayer, type Settleable } from '../lib/ops/groupByPlayer.js';
import { observableMatcher } from './helpers/observableMatcher.js';

interface Req extends Settleable {
  readonly id: string;
  readonly player: string;
}
/** Requests a, b, c belong to player A; x, y to player X. */
const req = (id: string, settled = false): Req => ({ id, player: 'abc'.includes(id) ? 'A' : 'X', settled, onSettled: null });
const reqs = (): Record<string, Req> => ({ a: req('a'), b: req('b'), c: req('c'), x: req('x'), y: req('y') });
const key = (v: Req): string => v.player;
/** Each group flattened: the ids it carries, then its key when it closes. */
const flat = (g: GroupedObservable<string, Req>): Observable<string> => g.pipe(map((v) => v.id), endWith(g.key));
/** Each group as the ids it carries. */
const ids = (g: GroupedObservable<string, Req>): Observable<string> => g.pipe(map((v) => v.id));

/** @test {groupByPlayer} */
describe('groupByPlayer', () => {
  let testScheduler: TestScheduler;
  beforeEach(() => {
    testScheduler = new TestScheduler(observableMatcher);
  });
  const settleAt = (v: Req, frame: number): void => {
    testScheduler.schedule(() => {
      v.settled = true;
      v.onSettled?.();
    }, frame);
  };

  it('should close a group lingerMs after its last value settled, and open a new one for a later value', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a------b----|', v);
      const valuesSubs = '  ^------------!';
      const expected = '    -g------h----|';
      settleAt(v.a!, 3);
      settleAt(v.b!, 10);
      const result = values.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), map(ids));
      expectObservable(result).toBe(expected, { g: cold('a---|'), h: cold('b---|') });
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should keep a group open while any of its values is unsettled', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a-------b--------c-', v);
      const valuesSubs = '  ^                   ';
      const expected = '    -g----------------h-';
      settleAt(v.a!, 12); // b still open: no timer
      settleAt(v.b!, 14); // all settled: closes at 14 + 3
      const result = values.pipe(groupByPlayer({ key, lingerMs: 3, scheduler: testScheduler }), map(ids));
      expectObservable(result).toBe(expected, { g: cold('a-------b-------|'), h: cold('c') });
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should cancel the linger timer when a value arrives during it', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a---b-------|', v);
      const valuesSubs = '  ^------------!';
      const expected = '    -g-----------|';
      settleAt(v.a!, 3); // would close at 7
      settleAt(v.b!, 8); // closes at 12
      const result = values.pipe(groupByPlayer({ key, lingerMs: 4, scheduler: testScheduler }), map(ids));
      expectObservable(result).toBe(expected, { g: cold('a---b------|') });
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should keep groups of different players independent', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -ax-----|', v);
      const valuesSubs = '  ^-------!';
      const expected = '    -gh-----|';
      settleAt(v.a!, 2);
      settleAt(v.x!, 5);
      const result = values.pipe(groupByPlayer({ key, lingerMs: 1, scheduler: testScheduler }), map(ids));
      expectObservable(result).toBe(expected, { g: cold('a-|'), h: cold('x---|') });
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should start lingering at once for a value that arrives settled', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const values = cold(' -a-----|', { a: req('a', true) });
      const valuesSubs = '  ^------!';
      const expected = '    -g-----|';
      const result = values.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), map(ids));
      expectObservable(result).toBe(expected, { g: cold('a-|') });
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should handle a value settled synchronously by the group consumer', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a--b--|', v);
      const valuesSubs = '  ^------!';
      const expected = '    -g--h--|';
      const settleNow = (r: Req): void => {
        r.settled = true;
        r.onSettled?.();
      };
      const result = values.pipe(
        groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }),
        map((g) => g.pipe(tap(settleNow), map((r) => r.id))),
      );
      expectObservable(result).toBe(expected, { g: cold('a-|'), h: cold('b-|') });
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should close a group in the same frame with lingerMs 0', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a---b-|', v);
      const valuesSubs = '  ^------!';
      const expected = '    -g---h-|';
      settleAt(v.a!, 3);
      const result = values.pipe(groupByPlayer({ key, lingerMs: 0, scheduler: testScheduler }), map(ids));
      expectObservable(result).toBe(expected, { g: cold('a-|'), h: cold('b-|') });
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should stay silent on a source that never emits (never)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const values = cold<Req>(' -');
      const valuesSubs = '       ^';
      const expected = '         -';
      expectObservable(values.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), map(ids))).toBe(expected);
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should complete when the source is empty', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const values = cold<Req>(' |');
      const valuesSubs = '       (^!)';
      const expected = '         |';
      expectObservable(values.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), map(ids))).toBe(expected);
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should complete open groups when the source completes', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a-x-|', v);
      const valuesSubs = '  ^----!';
      const expected = '    -g-h-|';
      const result = values.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), map(ids));
      expectObservable(result).toBe(expected, { g: cold('a---|'), h: cold('x-|') });
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should error the result and open groups on a source error', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const err = new Error('socket reset');
      const values = cold(' -a--#', v, err);
      const valuesSubs = '  ^---!';
      const expected = '    -g--#';
      const result = values.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), map(ids));
      expectObservable(result).toBe(expected, { g: cold('a--#', undefined, err) }, err);
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should error the result and open groups when key throws', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const err = new Error('no player');
      const values = cold(' -a-x-|', v);
      const valuesSubs = '  ^--!  ';
      const expected = '    -g-#  ';
      const throwingKey = (r: Req): string => {
        if (r.id === 'x') throw err;
        return r.player;
      };
      const result = values.pipe(groupByPlayer({ key: throwingKey, lingerMs: 2, scheduler: testScheduler }), map(ids));
      expectObservable(result).toBe(expected, { g: cold('a-#', undefined, err) }, err);
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should allow unsubscribing a never-ending source explicitly', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a-x-b-y-', v);
      const unsub = '       ------!   ';
      const valuesSubs = '  ^-----!   ';
      const expected = '    -a-x-b    ';
      settleAt(v.a!, 8); // after disposal: must be harmless
      const result = values.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), mergeMap(flat));
      expectObservable(result, unsub).toBe(expected);
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should unsubscribe the source with the result even while values are unsettled', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a-x----', v);
      const unsub = '       ----!    ';
      const valuesSubs = '  ^---!    ';
      const expected = '    -a-x     ';
      // Nothing settles: a duration that held its group would keep the source subscribed forever.
      const result = values.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), mergeMap(flat));
      expectObservable(result, unsub).toBe(expected);
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should cancel a pending linger timer on early disposal', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a--------', v);
      const unsub = '       ----!     ';
      const valuesSubs = '  ^---!     ';
      const expected = '    -a--      ';
      settleAt(v.a!, 2); // linger would close the group at 7
      const result = values.pipe(groupByPlayer({ key, lingerMs: 5, scheduler: testScheduler }), mergeMap(flat));
      expectObservable(result, unsub).toBe(expected);
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should show group closes in a flattened result', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = cold(' -a-x------b-|', v);
      const valuesSubs = '  ^-----------!';
      const expected = '    -a-x-A--X-b-(A|)';
      settleAt(v.a!, 3);
      settleAt(v.x!, 6);
      const result = values.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), mergeMap(flat));
      expectObservable(result).toBe(expected);
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should not break unsubscription chains when result is unsubscribed explicitly', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const v = reqs();
      const values = hot(' -c-^-a-x-b-|', v);
      const unsub = '         -----!     ';
      const valuesSubs = '    ^----!     ';
      const expected = '      --a-x      ';
      const result = values.pipe(
        mergeMap((x) => of(x)),
        groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }),
        mergeMap((x) => of(x)),
        mergeMap(flat),
      );
      expectObservable(result, unsub).toBe(expected);
      expectSubscriptions(values.subscriptions).toBe(valuesSubs);
    });
  });

  it('should stop listening to a synchronous observable when unsubscribed', () => {
    const sideEffects: number[] = [];
    const synchronousObservable = new Observable<Req>((subscriber) => {
      // This will check to see if the subscriber was closed on each loop
      // when the unsubscribe hits (from the `take`), it should be closed
      for (let i = 0; !subscriber.closed && i < 10; i++) {
        sideEffects.push(i);
        subscriber.next({ id: String(i), player: String(i), settled: false, onSettled: null });
      }
    });
    synchronousObservable.pipe(groupByPlayer({ key, lingerMs: 2, scheduler: testScheduler }), take(3)).subscribe(() => {});
    assert.deepEqual(sideEffects, [0, 1, 2]);
  });

  it('should throw a TypeError at creation for a bad lingerMs', () => {
    for (const lingerMs of [-1, Number.NaN]) {
      assert.throws(() => groupByPlayer<Req>({ key, lingerMs }), TypeError, `lingerMs = ${lingerMs}`);
    }
  });
});

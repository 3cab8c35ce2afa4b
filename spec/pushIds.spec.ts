import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PushIds } from '../lib/session/pushIds.js';

describe('PushIds', () => {
  it('should remember the seq of each id', () => {
    const ids = new PushIds(4);
    ids.remember('a', 1);
    ids.remember('b', 2);
    assert.equal(ids.seqOf('a'), 1);
    assert.equal(ids.seqOf('b'), 2);
    assert.equal(ids.seqOf('c'), undefined);
  });

  it('should forget the oldest id past its bound, and stay at the bound', () => {
    const ids = new PushIds(3);
    for (let seq = 1; seq <= 10; seq++) ids.remember(`id-${seq}`, seq);
    assert.equal(ids.size, 3);
    assert.deepEqual([8, 9, 10].map((n) => ids.seqOf(`id-${n}`)), [8, 9, 10]);
    assert.equal(ids.seqOf('id-7'), undefined, 'an id older than the bound is taken as new');
  });

  it('should refuse a bound below 1 at creation', () => {
    assert.throws(() => new PushIds(0), TypeError);
    assert.throws(() => new PushIds(Number.NaN), TypeError);
  });
});

/**
 * The dashboard's figures (lib/streams/stats.ts, bucketQuantile in lib/bucketHistogram.ts):
 * percentiles from bucket counts, rates from two readings, and `stats$` in virtual time: one
 * reading a period however many subscribe, none once the last one left, a failed reading skipped.
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { map } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { bucketQuantile } from '../lib/bucketHistogram.js';
import { UPSTREAM_BOUNDS_S, type MetricCounts } from '../lib/metrics.js';
import { sampleOf, stats$, type StatsReading } from '../lib/streams/stats.js';
import { observableMatcher } from '../marbles/helpers/observableMatcher.js';

const buckets = (at: Record<number, number> = {}): Float64Array => {
  const b = new Float64Array(UPSTREAM_BOUNDS_S.length + 1);
  for (const [i, n] of Object.entries(at)) b[Number(i)] = n;
  return b;
};

function reading(at: number, counts: Partial<MetricCounts> = {}, over: Partial<StatsReading> = {}): StatsReading {
  return {
    at,
    gateId: 'g1',
    counts: { requests: {}, pushes: {}, upstreamBuckets: buckets(), slowConsumers: 0, protocolErrors: 0, ...counts },
    connections: { tcp: 0, ws: 0 },
    sessions: { online: 0, detached: 0, buffered: 0 },
    workers: { busy: 0, max: 8, queued: 0 },
    eventsQueued: 0,
    gates: null,
    ...over,
  };
}

describe('bucketQuantile', () => {
  const bounds = [1, 2, 5];

  it('should be null when nothing was counted', () => {
    assert.equal(bucketQuantile(bounds, [0, 0, 0, 0], 0.5), null);
  });

  it('should interpolate inside the bucket the quantile falls in, the first bucket starting at 0', () => {
    assert.equal(bucketQuantile(bounds, [10, 0, 0, 0], 0.5), 0.5);
    assert.equal(bucketQuantile(bounds, [0, 10, 0, 0], 0.5), 1.5);
    assert.ok(Math.abs(bucketQuantile(bounds, [0, 10, 0, 0], 0.99)! - 1.99) < 1e-9);
    assert.equal(bucketQuantile(bounds, [50, 0, 0, 50], 0.5), 1);
  });

  it('should answer the largest bound for a quantile past it', () => {
    assert.equal(bucketQuantile(bounds, [0, 0, 0, 4], 0.5), 5);
    assert.equal(bucketQuantile(bounds, [50, 0, 0, 50], 0.99), 5);
  });
});

describe('sampleOf', () => {
  it('should turn counter differences into rates per second over the time between the readings', () => {
    const a = reading(1_000, { requests: { ok: 100, upstream_timeout: 2, duplicate: 5 }, pushes: { sent: 10, buffered: 1 }, slowConsumers: 1, protocolErrors: 3 });
    const b = reading(3_000, { requests: { ok: 300, upstream_timeout: 6, duplicate: 5, overloaded: 4 }, pushes: { sent: 50, buffered: 1 }, slowConsumers: 3, protocolErrors: 3 });
    const s = sampleOf(a, b);
    assert.equal(s.intervalMs, 2_000);
    assert.equal(s.requests.perSec, (200 + 4 + 4) / 2);
    assert.deepEqual(s.requests.errorsPerSec, { upstream_timeout: 2, overloaded: 2 }, 'ok and duplicate are no errors; codes without new errors are left out');
    assert.deepEqual(s.requests.errorsTotal, { upstream_timeout: 6, overloaded: 4 });
    assert.deepEqual(s.pushes, { sentPerSec: 20, bufferedPerSec: 0 });
    assert.deepEqual(s.slowConsumers, { total: 3, perSec: 1 });
    assert.deepEqual(s.protocolErrors, { total: 3, perSec: 0 });
  });

  it('should take upstream percentiles from the calls of the interval only, in ms', () => {
    // 100 fast calls (≤ 1 ms) before; 10 calls of 10–25 ms (bucket 4) in the interval.
    const a = reading(0, { upstreamBuckets: buckets({ 0: 100 }) });
    const b = reading(1_000, { upstreamBuckets: buckets({ 0: 100, 4: 10 }) });
    const s = sampleOf(a, b);
    assert.ok(s.requests.p50Ms! > 10 && s.requests.p50Ms! <= 25, `p50 ${s.requests.p50Ms}`);
    assert.ok(s.requests.p99Ms! > s.requests.p50Ms! && s.requests.p99Ms! <= 25, `p99 ${s.requests.p99Ms}`);
    assert.equal(sampleOf(b, reading(2_000, { upstreamBuckets: buckets({ 0: 100, 4: 10 }) })).requests.p50Ms, null, 'no calls: no percentile');
  });
});

describe('stats$', () => {
  let ts: TestScheduler;
  beforeEach(() => {
    ts = new TestScheduler(observableMatcher);
  });

  /** A gate that answers 5 requests between any two readings. */
  const counting = () => {
    const c = { reads: 0 };
    const read = (): StatsReading => reading(ts.now(), { requests: { ok: 5 * c.reads++ } });
    return { c, read };
  };

  it('should read a baseline at once and emit each interval’s rates one period later', () => {
    const { c, read } = counting();
    ts.run(({ expectObservable }) => {
      const rates$ = stats$(read, { periodMs: 10, scheduler: ts }).pipe(map((s) => s.requests.perSec));
      expectObservable(rates$, '^ 34ms !').toBe('10ms a 9ms a 9ms a', { a: 500 });
    });
    assert.equal(c.reads, 4, 'read at 0, 10, 20, 30');
  });

  it('should read once a period however many subscribe, and give a late subscriber the last sample at once', () => {
    const { c, read } = counting();
    ts.run(({ expectObservable }) => {
      const shared$ = stats$(read, { periodMs: 10, scheduler: ts }).pipe(map((s) => s.at));
      expectObservable(shared$, '^ 34ms !').toBe('10ms a 9ms b 9ms c', { a: 10, b: 20, c: 30 });
      expectObservable(shared$, '5ms ^ 29ms !').toBe('10ms a 9ms b 9ms c', { a: 10, b: 20, c: 30 });
      expectObservable(shared$, '15ms ^ 19ms !').toBe('15ms a 4ms b 9ms c', { a: 10, b: 20, c: 30 });
    });
    assert.equal(c.reads, 4, 'three subscribers, one reading a period');
  });

  it('should stop reading when the last subscriber leaves, and start afresh (no stale sample) for the next', () => {
    const { c, read } = counting();
    ts.run(({ expectObservable }) => {
      const s$ = stats$(read, { periodMs: 10, scheduler: ts }).pipe(map((s) => s.at));
      expectObservable(s$, '^ 24ms !').toBe('10ms a 9ms b', { a: 10, b: 20 });
      expectObservable(s$, '40ms ^ 14ms !').toBe('50ms a', { a: 50 });
    });
    assert.equal(c.reads, 5, 'read at 0, 10, 20, then at 40, 50: none between');
  });

  it('should skip a reading that fails, report it, and go on', () => {
    const errors: unknown[] = [];
    let n = 0;
    const read = (): StatsReading => {
      if (n++ === 1) throw new Error('redis away');
      return reading(ts.now(), { requests: { ok: 10 * n } });
    };
    ts.run(({ expectObservable }) => {
      const s$ = stats$(read, { periodMs: 10, scheduler: ts, onError: (e) => errors.push(e) }).pipe(map((s) => s.intervalMs));
      expectObservable(s$, '^ 34ms !').toBe('20ms a 9ms b', { a: 20, b: 10 });
    });
    assert.deepEqual(
      errors.map((e) => (e as Error).message),
      ['redis away'],
    );
  });

  it('should refuse a period that is not positive', () => {
    assert.throws(() => stats$(() => reading(0), { periodMs: 0 }), /periodMs must be > 0/);
  });
});

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { firstValueFrom, timer, type SchedulerAction } from 'rxjs';
import { CoarseScheduler } from '../lib/coarseScheduler.js';
import { QuietWatch } from '../lib/ops/idleTimeout.js';
import { waitFor } from './helpers/wait.js';

describe('CoarseScheduler', () => {
  it('should run work no earlier than its delay and less than two resolutions late (past what the event loop lost)', async () => {
    const s = new CoarseScheduler(20);
    // The machine's share of the lateness: a plain timer chain records how late the loop ran
    // meanwhile, so a busy machine widens the bound instead of failing the test.
    let loopLag = 0;
    let last = Date.now();
    const probe = setInterval(() => {
      const now = Date.now();
      loopLag = Math.max(loopLag, now - last - 5);
      last = now;
    }, 5);
    after(() => clearInterval(probe));
    const t0 = Date.now();
    const fired: number[] = [];
    for (const d of [0, 5, 30, 55]) s.schedule(() => fired.push(Date.now() - t0 - d), d);
    await waitFor('all four fired', () => fired.length === 4, 5_000);
    clearInterval(probe);
    for (const late of fired) {
      assert.ok(late >= 0, `fired ${late} ms early`);
      // Two resolutions: the bucket rounds the deadline up, and the interval's phase adds up to one more.
      assert.ok(late < 2 * 20 + loopLag + 5, `fired ${late} ms late: two 20 ms resolutions or more past the loop's own lag of ${loopLag} ms`);
    }
  });

  it('should not run cancelled work, and re-arm from inside the work', async () => {
    const s = new CoarseScheduler(10);
    let cancelled = 0;
    s.schedule(() => cancelled++, 10).unsubscribe();
    let runs = 0;
    s.schedule(function (this: { schedule(state?: unknown, delay?: number): unknown }) {
      if (++runs < 3) this.schedule(undefined, 10);
    }, 10);
    await waitFor('three runs', () => runs === 3, 2_000);
    assert.equal(cancelled, 0);
  });

  it('should drive rxjs timers and the idle watch', async () => {
    const s = new CoarseScheduler(10);
    // The scheduler's interval is unref'd (a watchdog never keeps a process alive): hold the loop open.
    const keep = setInterval(() => undefined, 1_000);
    after(() => clearInterval(keep));
    assert.equal(await firstValueFrom(timer(15, s)), 0);
    let expired = '';
    const w = new QuietWatch(30, 'GW_ERR_IDLE_TIMEOUT', s, (_: null, e) => (expired = e.code), null);
    w.arm();
    await waitFor('idle watch expired', () => expired === 'GW_ERR_IDLE_TIMEOUT', 2_000);
  });

  it('should let go of cancelled and re-armed work at once, not when its tick comes', () => {
    // The upstream attempt timeouts are cancelled within milliseconds of being armed: held
    // until their tick they would outlive the request and fill the old generation.
    const s = new CoarseScheduler(50);
    const subs = Array.from({ length: 1_000 }, (_, i) => s.schedule(() => assert.fail('cancelled work ran'), 60_000 + i));
    assert.equal(s.size, 1_000);
    for (const sub of subs.slice(0, 600)) sub.unsubscribe();
    assert.equal(s.size, 400);
    // Re-arming a waiting action moves it to another bucket: it is counted (and held) once.
    const action = subs[700] as unknown as SchedulerAction<unknown>;
    action.schedule(undefined, 90_000);
    action.schedule(undefined, 120_000);
    assert.equal(s.size, 400);
    for (const sub of subs.slice(600)) sub.unsubscribe();
    assert.equal(s.size, 0);
  });

  it('should refuse a resolution below 1 ms', () => {
    assert.throws(() => new CoarseScheduler(0), TypeError);
  });
});

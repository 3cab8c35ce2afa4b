import { Subscription, type SchedulerAction, type SchedulerLike } from 'rxjs';

/**
 * A SchedulerLike for the many long, imprecise timers of a gate: HELLO, heartbeat and idle
 * deadlines (one or two per connection, seconds to minutes long) and the attempt timeout of
 * every upstream call. RxJS's asyncScheduler gives each its own Node interval: an AsyncAction,
 * a Timeout and a bound function, about 300 bytes per timer, which at 10,000 idle connections
 * is most of what they cost. Here actions wait in buckets of `resolutionMs` and one interval
 * (unref'd, running only while something waits) runs each bucket when its time comes. A
 * deadline fires less than two resolutions late (one for the bucket's rounding, one for the
 * interval's phase; plus whatever the event loop itself is late), never early.
 *
 * A bucket is an intrusive doubly linked list, so a cancelled or re-armed action leaves it at
 * once. (When cancelled actions stayed in their bucket until its tick, every upstream call's
 * timeout lived as long as --upstream-timeout: the old generation filled with them, and the
 * collector's pauses put 20–40 ms on about 1% of the requests.)
 */
export class CoarseScheduler implements SchedulerLike {
  /** Due tick → the first action due then. */
  private readonly buckets = new Map<number, Bucket>();
  /** Last tick whose bucket was run. */
  private done: number;
  private timer: NodeJS.Timeout | null = null;
  /** Actions waiting in some bucket. */
  private pending = 0;

  constructor(private readonly resolutionMs = 50) {
    if (!(resolutionMs >= 1)) throw new TypeError('CoarseScheduler: resolutionMs must be >= 1');
    this.done = Math.floor(Date.now() / resolutionMs);
  }

  now(): number {
    return Date.now();
  }

  schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    return new CoarseAction<T>(this, work).schedule(state, delay);
  }

  /** Actions waiting (tests check that cancelled ones leave at once). */
  get size(): number {
    return this.pending;
  }

  /** @internal Links `a` into the bucket of the tick its delay ends in (never the current one: never early). */
  enqueue(a: CoarseAction<never>, delay: number): void {
    const tick = Math.max(Math.ceil((Date.now() + delay) / this.resolutionMs), this.done + 1);
    let b = this.buckets.get(tick);
    if (!b) this.buckets.set(tick, (b = { tick, first: null }));
    a.bucket = b;
    a.prev = null;
    a.next = b.first;
    if (b.first) b.first.prev = a;
    b.first = a;
    if (++this.pending === 1 && this.timer === null) {
      this.timer = setInterval(() => this.run(), this.resolutionMs);
      this.timer.unref();
    }
  }

  /** @internal Unlinks `a` from its bucket (it ran, was re-armed or was cancelled). */
  unlink(a: CoarseAction<never>): void {
    const b = a.bucket;
    if (!b) return;
    if (a.prev) a.prev.next = a.next;
    else b.first = a.next;
    if (a.next) a.next.prev = a.prev;
    a.bucket = a.prev = a.next = null;
    // An emptied bucket stays in the map until its tick passes (at most one per tick ahead):
    // a Map entry set and deleted per request would churn the table on the hot path.
    if (--this.pending === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
      this.buckets.clear(); // all empty now
      this.done = Math.floor(Date.now() / this.resolutionMs);
    }
  }

  private run(): void {
    // Only buckets whose time has fully come (tick·resolution ≤ now): never early.
    const now = Math.floor(Date.now() / this.resolutionMs);
    while (this.done < now && this.pending > 0) {
      const b = this.buckets.get(++this.done);
      if (!b) continue;
      this.buckets.delete(b.tick);
      // An action run here may re-arm itself (into a later tick) or cancel others in this bucket.
      for (let a = b.first; a !== null; a = b.first) {
        this.unlink(a);
        a.fire();
      }
    }
    if (this.done < now) this.done = now;
  }
}

interface Bucket {
  readonly tick: number;
  first: CoarseAction<never> | null;
}

/** One scheduled piece of work; `schedule` again from inside the work re-arms it (like AsyncAction). */
class CoarseAction<T> extends Subscription implements SchedulerAction<T> {
  /** @internal Links of the bucket this action waits in; all null when not waiting. */
  bucket: Bucket | null = null;
  prev: CoarseAction<never> | null = null;
  next: CoarseAction<never> | null = null;
  private state: T | undefined = undefined;

  constructor(
    private readonly scheduler: CoarseScheduler,
    private work: ((this: SchedulerAction<T>, state?: T) => void) | null,
  ) {
    super();
  }

  schedule(state?: T, delay = 0): Subscription {
    if (this.closed) return this;
    this.state = state;
    const self = this as unknown as CoarseAction<never>;
    this.scheduler.unlink(self);
    this.scheduler.enqueue(self, delay);
    return this;
  }

  /** @internal Called by the scheduler, already unlinked, when the action's tick comes. */
  fire(): void {
    if (!this.closed) this.work?.call(this, this.state);
  }

  override unsubscribe(): void {
    if (this.closed) return;
    this.scheduler.unlink(this as unknown as CoarseAction<never>);
    this.work = null;
    this.state = undefined;
    super.unsubscribe();
  }
}

import { Subscription, type SchedulerAction, type SchedulerLike } from 'rxjs';

/**
 * A SchedulerLike for the many long, imprecise timers of a gate (HELLO, heartbeat and idle
 * deadlines: one or two per connection, seconds to minutes long). RxJS's asyncScheduler gives
 * each its own Node timer: an AsyncAction, a Timeout and a bound function, about 300 bytes per
 * timer, which at 10,000 idle connections is most of what they cost. Here actions wait in
 * buckets of `resolutionMs` and one interval (unref'd, running only while something waits)
 * runs each bucket when its time comes. A deadline fires up to `resolutionMs` late, never early.
 */
export class CoarseScheduler implements SchedulerLike {
  /** Due tick → actions due then (an action re-armed meanwhile is skipped: its `tick` moved). */
  private readonly buckets = new Map<number, CoarseAction<never>[]>();
  /** Last tick whose bucket was run. */
  private done: number;
  private timer: NodeJS.Timeout | null = null;
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

  private tickOf(t: number): number {
    return Math.ceil(t / this.resolutionMs);
  }

  /** @internal Files `a` under the tick its delay ends in (never the current one: never early). */
  enqueue(a: CoarseAction<never>, delay: number): number {
    const tick = Math.max(this.tickOf(Date.now() + delay), this.done + 1);
    let b = this.buckets.get(tick);
    if (!b) this.buckets.set(tick, (b = []));
    b.push(a);
    if (++this.pending === 1 && this.timer === null) {
      this.timer = setInterval(() => this.run(), this.resolutionMs);
      this.timer.unref();
    }
    return tick;
  }

  /** @internal An action left its bucket (ran, was re-armed or cancelled). */
  leave(): void {
    if (--this.pending === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
      // Whatever is left in the buckets is stale (re-armed or cancelled): drop it now rather
      // than when the interval next runs, which may be never.
      this.buckets.clear();
      this.done = Math.floor(Date.now() / this.resolutionMs);
    }
  }

  private run(): void {
    // Only buckets whose time has fully come (tick·resolution ≤ now): never early.
    const now = Math.floor(Date.now() / this.resolutionMs);
    while (this.done < now) {
      const tick = ++this.done;
      const b = this.buckets.get(tick);
      if (!b) continue;
      this.buckets.delete(tick);
      for (const a of b) a.fire(tick);
    }
  }
}

/** One scheduled piece of work; `schedule` again from inside the work re-arms it (like AsyncAction). */
class CoarseAction<T> extends Subscription implements SchedulerAction<T> {
  /** The tick this action waits for; 0 when not waiting. */
  private tick = 0;
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
    if (this.tick !== 0) this.scheduler.leave();
    this.tick = this.scheduler.enqueue(this as unknown as CoarseAction<never>, delay);
    return this;
  }

  /** @internal Called by the scheduler when `tick` comes; stale entries (re-armed, cancelled) do nothing. */
  fire(tick: number): void {
    if (this.closed || this.tick !== tick) return;
    this.tick = 0;
    this.scheduler.leave();
    this.work?.call(this, this.state);
  }

  override unsubscribe(): void {
    if (this.closed) return;
    if (this.tick !== 0) {
      this.tick = 0;
      this.scheduler.leave();
    }
    this.work = null;
    this.state = undefined;
    super.unsubscribe();
  }
}

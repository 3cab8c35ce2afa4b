import { Observable, asyncScheduler, tap, type MonoTypeOperatorFunction, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { GatewayError } from '../errors.js';

export interface WatchLinkConfig<T> {
  /** Most time from subscription to the first value that `isHello` accepts, ms (--hello-timeout). */
  helloMs: number;
  /** Longest silence between any two values, ms (3 × --heartbeat). */
  silentMs: number;
  /** Which value is the HELLO. */
  isHello: (v: T) => boolean;
  scheduler?: SchedulerLike;
}

/**
 * One connection's two watchdogs in one operator: a HELLO must come within `helloMs`
 * (GW_ERR_HELLO_TIMEOUT), and any value counts as life, so `silentMs` without one errors with
 * GW_ERR_HEARTBEAT_TIMEOUT.
 * ```text
 * helloMs = 4, silentMs = 3
 * frames:  -p-p-p--|        (p = PING, never a HELLO)
 * result:  -p-p#             GW_ERR_HELLO_TIMEOUT at 4
 * frames:  -h-p-----p|      (h = HELLO)
 * result:  -h-p--#           GW_ERR_HEARTBEAT_TIMEOUT, 3 after the last frame
 * ```
 * why not composed: `timeout({ first })` on a filtered branch plus `timeout({ each })` is two
 * subscribers, a Subject for the branch and a timer re-armed on every frame, for every
 * connection; the gate holds tens of thousands. Here a frame only notes the time, and a single
 * timer per connection fires at the next deadline, re-arming itself when a frame came since.
 * Bound: one pending timer per subscription.
 */
export function watchLink<T>({ helloMs, silentMs, isHello, scheduler = asyncScheduler }: WatchLinkConfig<T>): MonoTypeOperatorFunction<T> {
  if (!(helloMs > 0)) throw new TypeError('watchLink: helloMs must be > 0');
  if (!(silentMs > 0)) throw new TypeError('watchLink: silentMs must be > 0');
  return (source) =>
    new Observable<T>((subscriber) => {
      const start = scheduler.now();
      let last = start; // time of the last value
      let helloSeen = false;
      // Source first, timer second (as RxJS `timeout` does): a value due at the very moment the
      // timer is due wins the tie.
      source
        .pipe(
          tap((v) => {
            last = scheduler.now();
            if (!helloSeen && isHello(v)) helloSeen = true;
          }),
        )
        .subscribe(subscriber);
      const due = (): number => (helloSeen ? last + silentMs : Math.min(start + helloMs, last + silentMs));
      subscriber.add(
        scheduler.schedule(function check(this: SchedulerAction<void>) {
          const now = scheduler.now();
          if (!helloSeen && now >= start + helloMs) subscriber.error(new GatewayError('GW_ERR_HELLO_TIMEOUT', `no HELLO within ${helloMs}ms`));
          else if (now >= last + silentMs) subscriber.error(new GatewayError('GW_ERR_HEARTBEAT_TIMEOUT', `silent for ${silentMs}ms`));
          else this.schedule(undefined, due() - now);
        }, Math.min(helloMs, silentMs)),
      );
    });
}

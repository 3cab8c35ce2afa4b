import { Observable, asyncScheduler, tap, type MonoTypeOperatorFunction, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { GatewayError, type GatewayErrorCode } from '../errors.js';

export interface IdleTimeoutConfig {
  /** Longest silence between values, ms. Required, > 0. */
  idleMs: number;
  /** Error code raised on silence: GW_ERR_IDLE_TIMEOUT (sessions) or GW_ERR_HEARTBEAT_TIMEOUT (links). */
  code?: GatewayErrorCode;
  /** Default asyncScheduler; TestScheduler.run() virtualises it. */
  scheduler?: SchedulerLike;
}

/**
 * Errors with a GatewayError when the source is silent for `idleMs`, counted from subscription
 * and from each value. The session idle clock (REQUESTs only) and the 3× heartbeat watchdog of
 * one connection are both this operator.
 * ```text
 * frames:  -a--b-------c--|      idleMs = 4
 * result:  -a--b---#             # = GatewayError(GW_ERR_IDLE_TIMEOUT)
 * ```
 * Bound: one pending timer per subscription. Emits: `code` (default GW_ERR_IDLE_TIMEOUT).
 */
export function idleTimeout<T>({ idleMs, code = 'GW_ERR_IDLE_TIMEOUT', scheduler = asyncScheduler }: IdleTimeoutConfig): MonoTypeOperatorFunction<T> {
  if (!(idleMs > 0)) throw new TypeError('idleTimeout: idleMs must be > 0');
  // why not composed: `timeout({ each })` clears and re-arms a timer on every value, which is
  // every frame of every connection on the hot path. Here a value only notes the time; the one
  // timer, when it fires, errors if the silence is long enough or re-arms for what is left.
  return (source) =>
    new Observable<T>((subscriber) => {
      let last = scheduler.now(); // time of the last value (or of subscription)
      let seen = 0; // values so far, reported in the error like timeout's `seen`
      // Source first, timer second (as RxJS `timeout` does): a value due at the very moment the
      // timer is due wins the tie.
      source
        .pipe(
          tap(() => {
            last = scheduler.now();
            seen++;
          }),
        )
        .subscribe(subscriber);
      subscriber.add(
        scheduler.schedule(function check(this: SchedulerAction<void>) {
          const quiet = scheduler.now() - last;
          if (quiet >= idleMs) subscriber.error(new GatewayError(code, `silent for ${idleMs}ms`, { seen }));
          else this.schedule(undefined, idleMs - quiet);
        }, idleMs),
      );
    });
}

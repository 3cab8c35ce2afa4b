import { asyncScheduler, throwError, timeout, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs';
import { GatewayError } from '../errors.js';

export interface HelloTimeoutConfig {
  /** Most time from subscription to the first value, ms. Required, > 0. */
  helloMs: number;
  scheduler?: SchedulerLike;
}

/**
 * Errors with GW_ERR_HELLO_TIMEOUT unless the first value arrives within `helloMs`; later
 * values are not timed (the heartbeat watchdog takes over).
 * ```text
 * frames:  ------h--x--|     helloMs = 4
 * result:  ----#
 * frames:  --h-------x-|
 * result:  --h-------x-|
 * ```
 * Bound: one timer, cleared by the first value. Emits: GW_ERR_HELLO_TIMEOUT.
 */
export function helloTimeout<T>({ helloMs, scheduler = asyncScheduler }: HelloTimeoutConfig): MonoTypeOperatorFunction<T> {
  if (!(helloMs > 0)) throw new TypeError('helloTimeout: helloMs must be > 0');
  return timeout({
    first: helloMs,
    scheduler,
    with: () => throwError(() => new GatewayError('GW_ERR_HELLO_TIMEOUT', `no HELLO within ${helloMs}ms`)),
  });
}

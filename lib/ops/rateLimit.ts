import { asyncScheduler, defer, filter, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs';
import { GatewayError } from '../errors.js';

export interface RateLimitConfig<T> {
  /** Tokens added per second (the sustained rate). > 0. */
  perSecond: number;
  /** Bucket size: how many may come at once after a quiet spell. Default `perSecond` (one second's worth). */
  burst?: number;
  /** Values past the rate in a row before the stream errors with GW_ERR_RATE_ABUSE. Default `burst`. */
  strikes?: number;
  /** Which values are counted; others pass untouched (e.g. only REQUESTs, never PINGs). */
  applies: (v: T) => boolean;
  /** Called for each value refused (answered ERROR RATE_LIMITED by the caller); it is not emitted. */
  onLimited: (v: T) => void;
  scheduler?: SchedulerLike;
}

/**
 * A token bucket per subscription (one connection's `--rate-limit`). Values within the rate
 * pass; values past it go to `onLimited` and are dropped; a client that keeps going past it,
 * `strikes` refusals in a row, errors the stream with GW_ERR_RATE_ABUSE (BYE protocol_error).
 * ```text
 * perSecond = 1000/3 (one token per 3 frames), burst = 1, strikes = 2
 * source:  -aab--c-ddd|
 * result:  -a----c--d-|      a@2, b@3, d@8, d@10 go to onLimited
 * source:  -aaaa|            perSecond = 100: a third refusal in a row errors
 * result:  -a--#
 * ```
 * Bound: O(1) state; no buffering.
 */
export function rateLimit<T>(cfg: RateLimitConfig<T>): MonoTypeOperatorFunction<T> {
  const { perSecond, applies, onLimited, scheduler = asyncScheduler } = cfg;
  const burst = cfg.burst ?? perSecond;
  const strikes = cfg.strikes ?? burst;
  if (!(perSecond > 0)) throw new TypeError('rateLimit: perSecond must be > 0');
  if (!(burst >= 1)) throw new TypeError('rateLimit: burst must be >= 1');
  if (!(strikes >= 0)) throw new TypeError('rateLimit: strikes must be >= 0');
  const perMs = perSecond / 1000;
  return (source) =>
    defer(() => {
      let tokens = burst; // available now
      let at = scheduler.now(); // when `tokens` was computed
      let refusedInRow = 0;
      return source.pipe(
        filter((v) => {
          if (!applies(v)) return true;
          const now = scheduler.now();
          tokens = Math.min(burst, tokens + (now - at) * perMs);
          at = now;
          if (tokens >= 1) {
            tokens -= 1;
            refusedInRow = 0;
            return true;
          }
          // A throw from filter's predicate errors the stream (RxJS forwards it).
          if (++refusedInRow > strikes) throw new GatewayError('GW_ERR_RATE_ABUSE', `kept sending past --rate-limit (${refusedInRow} refused in a row)`);
          onLimited(v);
          return false;
        }),
      );
    });
}

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
  return (source) =>
    defer(() => {
      const bucket = new TokenBucket(perSecond, burst, strikes, scheduler);
      return source.pipe(
        filter((v) => {
          if (!applies(v)) return true;
          // A throw from filter's predicate errors the stream (RxJS forwards it).
          if (bucket.take()) return true;
          onLimited(v);
          return false;
        }),
      );
    });
}

/**
 * The token bucket behind `rateLimit`, usable without an operator (the gate keeps one per
 * connection inside its per-link subscriber). `take` says whether one more may pass now,
 * and throws GW_ERR_RATE_ABUSE past `strikes` refusals in a row.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;
  private refusedInRow = 0;
  private readonly perMs: number;

  constructor(
    readonly perSecond: number,
    private readonly burst: number,
    private readonly strikes: number,
    private readonly scheduler: SchedulerLike,
  ) {
    this.perMs = perSecond / 1000;
    this.tokens = burst;
    this.at = scheduler.now();
  }

  take(): boolean {
    const now = this.scheduler.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.at) * this.perMs);
    this.at = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.refusedInRow = 0;
      return true;
    }
    if (++this.refusedInRow > this.strikes)
      throw new GatewayError('GW_ERR_RATE_ABUSE', `kept sending past --rate-limit (${this.refusedInRow} refused in a row)`);
    return false;
  }
}

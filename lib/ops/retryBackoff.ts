import { asyncScheduler, retry, throwError, timer, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs';

export interface RetryBackoffConfig {
  /** Extra attempts after the first. 0 disables retries. */
  maxRetries: number;
  /** Delay before the first retry, ms; doubled per attempt. */
  baseMs: number;
  /** Cap on one delay, ms. */
  maxMs: number;
  /** Only these errors are retried (undici's allow-list idea); others pass through at once. */
  isRetryable: (err: unknown) => boolean;
  /**
   * Maps the exponential delay to the one used, e.g. full jitter `(d) => d * rng()`. Injected
   * so tests stay deterministic; default is no jitter.
   */
  jitter?: (delayMs: number, attempt: number) => number;
  /** Reset the attempt count after a value (long-lived sources); default false (one-shot calls). */
  resetOnSuccess?: boolean;
  scheduler?: SchedulerLike;
}

/**
 * Resubscribes to the source after a retryable error, waiting `min(baseMs·2^(n-1), maxMs)`
 * (through `jitter`) before attempt n+1; the error after the last attempt, or any
 * non-retryable error, passes through.
 * ```text
 * source:  -#          baseMs = 1, maxRetries = 2
 * subs:    ^!  --^!  -----^!
 * result:  ------#
 * ```
 * Bound: at most `maxRetries + 1` subscriptions, one pending timer.
 */
export function retryBackoff<T>({
  maxRetries,
  baseMs,
  maxMs,
  isRetryable,
  jitter = (d) => d,
  resetOnSuccess = false,
  scheduler = asyncScheduler,
}: RetryBackoffConfig): MonoTypeOperatorFunction<T> {
  if (!(maxRetries >= 0)) throw new TypeError('retryBackoff: maxRetries must be >= 0');
  if (!(baseMs >= 0) || !(maxMs >= baseMs)) throw new TypeError('retryBackoff: need 0 <= baseMs <= maxMs');
  return retry({
    count: maxRetries,
    resetOnSuccess,
    delay: (err: unknown, n: number) =>
      isRetryable(err) ? timer(Math.max(0, jitter(Math.min(baseMs * 2 ** (n - 1), maxMs), n)), scheduler) : throwError(() => err),
  });
}

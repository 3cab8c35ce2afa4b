import { asyncScheduler, throwError, timeout, type MonoTypeOperatorFunction, type SchedulerLike } from 'rxjs';
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
  return timeout({
    each: idleMs,
    scheduler,
    with: ({ seen }) => throwError(() => new GatewayError(code, `silent for ${idleMs}ms`, { seen })),
  });
}

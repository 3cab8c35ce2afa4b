import { Observable, asyncScheduler, catchError, map, of, throwError, timeout, type SchedulerLike } from 'rxjs';
import type { RequestErrorCode } from '../errors.js';
import { retryBackoff } from '../ops/retryBackoff.js';
import { RpcConnectionError, RpcReplyTooLarge, type RpcClient, type RpcReply, type RpcRequest } from './rpcClient.js';

/** What one REQUEST ends in: the backend's body, or an ERROR frame's fields (§2.1). */
export type RpcOutcome =
  | { readonly ok: true; readonly body: Buffer }
  | { readonly ok: false; readonly code: RequestErrorCode; readonly message: string; readonly status?: number };

export interface UpstreamCallConfig {
  /** --upstream-timeout: one attempt, ms. */
  timeoutMs: number;
  /** --upstream-retries: extra attempts after connection errors and 502/503/504. */
  retries: number;
  /** First backoff, ms (doubled per attempt, capped at maxBackoffMs). */
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** Full-range jitter source in [0, 1); injected for deterministic tests. */
  random: () => number;
  scheduler?: SchedulerLike;
}

/** A 502/503/504 answer, carried as an error so `retryBackoff` may try again. */
class RetryableStatus extends Error {
  constructor(readonly reply: RpcReply) {
    super(`backend answered ${reply.status}`);
  }
}
class AttemptTimeout extends Error {}

const RETRY_STATUS = new Set([502, 503, 504]);

/** One attempt: the call as an Observable, cancelled (socket freed) if unsubscribed before it settles. */
const attempt$ = (rpc: RpcClient, req: RpcRequest): Observable<RpcReply> =>
  new Observable<RpcReply>((subscriber) =>
    rpc.call(req, (err, reply) => {
      if (err !== null && err !== undefined) subscriber.error(err);
      else if (RETRY_STATUS.has(reply!.status)) subscriber.error(new RetryableStatus(reply!));
      else {
        subscriber.next(reply!);
        subscriber.complete();
      }
    }),
  );

/**
 * POST /rpc/{route} with a per-attempt timeout, and retries with exponential backoff and
 * jitter on connection errors and 502/503/504, never on a timeout (the backend may have run
 * it). Always emits exactly one RpcOutcome, then completes; never errors.
 */
export function upstreamCall$(rpc: RpcClient, req: RpcRequest, cfg: UpstreamCallConfig): Observable<RpcOutcome> {
  const scheduler = cfg.scheduler ?? asyncScheduler;
  return attempt$(rpc, req).pipe(
    timeout({ first: cfg.timeoutMs, scheduler, with: () => throwError(() => new AttemptTimeout()) }),
    retryBackoff({
      maxRetries: cfg.retries,
      baseMs: cfg.baseBackoffMs,
      maxMs: cfg.maxBackoffMs,
      isRetryable: (e) => e instanceof RpcConnectionError || e instanceof RetryableStatus,
      // "Equal jitter": half fixed, half random, so retries spread out but never collapse to 0.
      jitter: (d) => d / 2 + (d / 2) * cfg.random(),
      scheduler,
    }),
    map((reply): RpcOutcome =>
      reply.status >= 200 && reply.status < 300
        ? { ok: true, body: reply.body }
        : { ok: false, code: 'UPSTREAM_STATUS', message: `backend answered ${reply.status}`, status: reply.status },
    ),
    catchError((e: unknown) => of(toOutcome(e, cfg.timeoutMs))),
  );
}

function toOutcome(e: unknown, timeoutMs: number): RpcOutcome {
  if (e instanceof RetryableStatus)
    return { ok: false, code: 'UPSTREAM_STATUS', message: `backend answered ${e.reply.status}`, status: e.reply.status };
  if (e instanceof AttemptTimeout) return { ok: false, code: 'UPSTREAM_TIMEOUT', message: `no answer within ${timeoutMs}ms` };
  if (e instanceof RpcConnectionError) return { ok: false, code: 'UPSTREAM_UNAVAILABLE', message: `backend unreachable (${e.code})` };
  if (e instanceof RpcReplyTooLarge) return { ok: false, code: 'UPSTREAM_STATUS', message: e.message, status: 502 };
  return { ok: false, code: 'UPSTREAM_UNAVAILABLE', message: `backend call failed: ${(e as Error)?.message ?? String(e)}` };
}

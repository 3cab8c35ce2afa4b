import { Observable, asyncScheduler, type SchedulerLike, type Subscription } from 'rxjs';
import type { RequestErrorCode } from '../errors.js';
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
  /** Clock of the attempt timeout only (default `scheduler`): the gate gives it a bucketed one. */
  timeoutScheduler?: SchedulerLike;
}

const RETRY_STATUS = new Set([502, 503, 504]);

/**
 * POST /rpc/{route} with a per-attempt timeout, and retries with exponential backoff and
 * jitter on connection errors and 502/503/504, never on a timeout (the backend may have run
 * it). Always emits exactly one RpcOutcome, then completes; never errors. Unsubscribing
 * cancels the attempt in flight (its socket is freed) or the backoff wait.
 *
 * The policy is `retryBackoff`'s (attempt n waits min(base·2^(n-1), max), equal jitter).
 * why not composed: as `attempt$ ▸ timeout ▸ retryBackoff ▸ map ▸ catchError` it cost five
 * subscribers and their closures per request, the largest share of the gate's own CPU per
 * request on the hot path (bench/gateCpu.ts); here one subscriber holds one timer at a time.
 */
export function upstreamCall$(rpc: RpcClient, req: RpcRequest, cfg: UpstreamCallConfig): Observable<RpcOutcome>;
export function upstreamCall$<R>(rpc: RpcClient, req: RpcRequest, cfg: UpstreamCallConfig, project: (o: RpcOutcome) => R): Observable<R>;
/** `project` maps the outcome before it is emitted (saves a `map` subscriber on the hot path). */
export function upstreamCall$<R>(rpc: RpcClient, req: RpcRequest, cfg: UpstreamCallConfig, project?: (o: RpcOutcome) => R): Observable<R | RpcOutcome> {
  const scheduler = cfg.scheduler ?? asyncScheduler;
  const timeouts = cfg.timeoutScheduler ?? scheduler;
  return new Observable<R | RpcOutcome>((subscriber) => {
    let attempts = 0; // attempts started
    let cancel: (() => void) | null = null; // cancels the attempt in flight
    let timer: Subscription | null = null; // the attempt's timeout, or the backoff wait
    const settle = (o: RpcOutcome): void => {
      subscriber.next(project ? project(o) : o);
      subscriber.complete();
    };
    const onTimeout = (): void => {
      timer = null;
      const c = cancel;
      cancel = null;
      c?.();
      settle({ ok: false, code: 'UPSTREAM_TIMEOUT', message: `no answer within ${cfg.timeoutMs}ms` });
    };
    const start = (): void => {
      attempts++;
      timer = timeouts.schedule(onTimeout, cfg.timeoutMs);
      cancel = rpc.call(req, (err, reply) => {
        cancel = null;
        timer?.unsubscribe();
        timer = null;
        const failed = err !== null && err !== undefined;
        const retryable = failed ? err instanceof RpcConnectionError : RETRY_STATUS.has(reply!.status);
        if (retryable && attempts <= cfg.retries) {
          const d = Math.min(cfg.baseBackoffMs * 2 ** (attempts - 1), cfg.maxBackoffMs);
          timer = scheduler.schedule(() => {
            timer = null;
            start();
          }, d / 2 + (d / 2) * cfg.random());
          return;
        }
        settle(failed ? toOutcome(err) : replyOutcome(reply!));
      });
    };
    start();
    return () => {
      timer?.unsubscribe();
      const c = cancel;
      cancel = null;
      c?.();
    };
  });
}

const replyOutcome = (reply: RpcReply): RpcOutcome =>
  reply.status >= 200 && reply.status < 300
    ? { ok: true, body: reply.body }
    : { ok: false, code: 'UPSTREAM_STATUS', message: `backend answered ${reply.status}`, status: reply.status };

function toOutcome(e: unknown): RpcOutcome {
  if (e instanceof RpcConnectionError) return { ok: false, code: 'UPSTREAM_UNAVAILABLE', message: `backend unreachable (${e.code})` };
  if (e instanceof RpcReplyTooLarge) return { ok: false, code: 'UPSTREAM_STATUS', message: e.message, status: 502 };
  return { ok: false, code: 'UPSTREAM_UNAVAILABLE', message: `backend call failed: ${(e as Error)?.message ?? String(e)}` };
}

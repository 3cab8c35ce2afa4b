// The per-REQUEST side of --otlp: a `gate.request` span from admission to answer, and one
// `gate.upstream` child per attempt whose traceparent header the backend receives.
import { SpanKind, SpanStatusCode, trace as otelTrace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_URL_PATH } from '@opentelemetry/semantic-conventions';
import type { RequestTrace } from '../requestTracer.js';
import { RpcConnectionError, type RpcClient, type RpcDone, type RpcRequest } from '../streams/rpcClient.js';
import { formatTraceparent } from '../trace.js';

/** A request the sampler left out: nothing is recorded; the backend still gets a traceparent (flag 00). */
export class UnsampledRequest implements RequestTrace {
  constructor(readonly traceparent: string) {}
  upstream(rpc: RpcClient): RpcClient {
    return rpc;
  }
  end(): void {}
}

/**
 * A sampled request: its span, and (as an RpcClient in front of the gate's) one child span per
 * upstream attempt. upstreamCall$ makes every attempt through `call`, so the attempts are counted
 * and each one's `traceparent` header is built from its own span: the backend's spans join the
 * trace under the attempt that reached them.
 */
export class SampledRequest implements RequestTrace, RpcClient {
  readonly name = 'traced';
  readonly traceparent: string;
  /** Upstream attempts made (the `gate.attempts` attribute). */
  private attempts = 0;
  /** The RpcClient the attempts go through; set by upstream(). */
  private inner: RpcClient | null = null;
  /** The context whose active span is this request's: the attempts' parent. */
  private readonly ctx: Context;
  private ended = false;

  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
    parentCtx: Context,
    /** performance.now() at admission: the queued time is measured from it. */
    private readonly admittedAt: number,
  ) {
    const sc = span.spanContext();
    this.traceparent = formatTraceparent(sc.traceId, sc.spanId, true);
    this.ctx = otelTrace.setSpan(parentCtx, span);
  }

  upstream(rpc: RpcClient): RpcClient {
    this.inner = rpc;
    return this;
  }

  call(req: RpcRequest, done: RpcDone): () => void {
    const inner = this.inner!;
    // Admission to the first attempt: the time spent waiting for the player's turn and a worker.
    if (++this.attempts === 1) this.span.setAttribute('gate.queued_ms', performance.now() - this.admittedAt);
    const path = `/rpc/${req.route}`;
    const attempt = this.tracer.startSpan(
      'gate.upstream',
      { kind: SpanKind.CLIENT, attributes: { [ATTR_HTTP_REQUEST_METHOD]: 'POST', [ATTR_URL_PATH]: path, 'gate.attempt': this.attempts } },
      this.ctx,
    );
    const sc = attempt.spanContext();
    const headers = { ...req.headers, traceparent: formatTraceparent(sc.traceId, sc.spanId, (sc.traceFlags & 1) === 1) };
    let over = false; // the attempt span ended
    const cancel = inner.call({ route: req.route, body: req.body, headers }, (err, reply) => {
      over = true;
      if (reply !== undefined && (err === null || err === undefined)) {
        attempt.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, reply.status);
        if (reply.status >= 400) {
          attempt.setAttribute(ATTR_ERROR_TYPE, String(reply.status));
          attempt.setStatus({ code: SpanStatusCode.ERROR, message: `backend answered ${reply.status}` });
        }
      } else {
        attempt.setAttribute(ATTR_ERROR_TYPE, err instanceof RpcConnectionError ? err.code : ((err as Error | undefined)?.name ?? 'Error'));
        attempt.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error | undefined)?.message ?? String(err) });
      }
      attempt.end();
      done(err, reply);
    });
    return () => {
      // Cut off by the attempt timeout or by shutdown: the RpcClient calls `done` no more.
      if (!over) {
        over = true;
        attempt.setAttribute(ATTR_ERROR_TYPE, 'cancelled');
        attempt.setStatus({ code: SpanStatusCode.ERROR, message: 'attempt cancelled (timeout or shutdown)' });
        attempt.end();
      }
      cancel();
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  end(outcome: string, error?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.span.setAttribute('gate.outcome', outcome);
    this.span.setAttribute('gate.attempts', this.attempts);
    if (error !== undefined) this.span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    this.span.end();
  }
}

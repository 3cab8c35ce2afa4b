// What the gate asks of a tracer (`--otlp`). Types only: the gate holds `tracer: RequestTracer |
// null` and tests it once per request, so with tracing off nothing here runs and the OpenTelemetry
// SDK is never loaded (lib/otel/ is imported dynamically by serve() when --otlp is set).
import type { RpcClient } from './streams/rpcClient.js';

/** The push API calls that get a span each. */
export type ApiSpanName = 'gate.push' | 'gate.push.batch' | 'gate.broadcast' | 'gate.kick';

export interface RequestTracer {
  /**
   * A REQUEST admitted to the request pool: its `gate.request` span starts now. `parent` is the
   * client's HELLO traceparent (parent-based sampling: its sampled flag decides; without one,
   * --otlp-sample does).
   */
  request(route: number, seq: number, sessionId: string, playerId: string, parent: string | undefined): RequestTrace;
  /** One push API call; `parent` is the caller's `traceparent` header, if it sent one. */
  api(name: ApiSpanName, parent: string | undefined): ApiTrace;
  /** Exports every ended span now; resolves when the exporter answered (tests). */
  flush(): Promise<void>;
  /** Flushes and stops, waiting at most `ms`; resolves true if it finished in time. Never rejects. */
  shutdown(ms: number): Promise<boolean>;
  /** Running counts for /metrics. */
  readonly stats: TracerStats;
}

export interface TracerStats {
  /** Export calls (batches) the collector did not accept. */
  readonly exportFailures: number;
  /** Spans dropped because the export queue was full. */
  readonly droppedQueueFull: number;
  /** Spans in the batches that failed to export. */
  readonly droppedExportFailed: number;
}

/** One REQUEST's trace, from admission to its answer. */
export interface RequestTrace {
  /**
   * The `traceparent` naming this request: the one sent upstream when it is not sampled (the
   * client's or a new trace id, sampled flag 00), and the one logged with an upstream failure.
   */
  readonly traceparent: string;
  /**
   * The client the upstream call goes through: sampled, one `gate.upstream` child span per
   * attempt, whose `traceparent` header names that span; not sampled, `rpc` itself.
   */
  upstream(rpc: RpcClient): RpcClient;
  /**
   * Ends the span with the request's outcome (gate_requests_total's `outcome` label); `error`:
   * the client got an ERROR frame with this message.
   */
  end(outcome: string, error?: string): void;
}

/** One push API call's span. */
export interface ApiTrace {
  /** The deliveries the call made. */
  deliveries(sent: number, buffered: number, missing: number): void;
  /** An attribute (player id, batch size). */
  set(key: string, value: string | number | boolean): void;
  /** Ends the span; `err`: the call failed (a 4xx or 5xx answer). */
  end(err?: unknown): void;
}

// --otlp: the gate's RequestTracer on the OpenTelemetry SDK, exporting OTLP/HTTP (JSON). Loaded
// by serve() with a dynamic import only when --otlp is set, so a gate without it never loads
// the SDK.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace as otelTrace, type Context, type Span } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, ParentBasedSampler, type IdGenerator } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Logger } from 'pino';
import type { ApiSpanName, ApiTrace, RequestTrace, RequestTracer } from '../requestTracer.js';
import { formatTraceparent, parseTraceparent, randomHex, type TraceParent } from '../trace.js';
import { BoundedExport } from './boundedExport.js';
import { SampledRequest, UnsampledRequest } from './requestSpans.js';

export interface OtlpTracerConfig {
  /** The traces endpoint (`…/v1/traces`, as config.ts normalised --otlp). */
  url: string;
  /** --otlp-sample: the share of root traces sampled (no client traceparent). */
  sample: number;
  /** service.instance.id */
  gateId: string;
  log: Logger;
}

/** Ended spans waiting for export, at most (the SDK's default); past it spans are dropped and counted. */
export const OTLP_MAX_QUEUE = 2048;
/** Spans per export call. */
export const OTLP_BATCH = 512;
/** How long a partial batch waits, ms. */
export const OTLP_DELAY_MS = 2_000;
/** One export call, retries included, ms: a collector that does not answer costs this, not a hang. */
export const OTLP_EXPORT_TIMEOUT_MS = 5_000;
/** At most one log line about failed exports per this long, ms (the rest are counted). */
const FAILURE_LOG_EVERY_MS = 30_000;

const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Trace and span ids sliced from the pooled CSPRNG hex the gate already uses for traceparents: the
 * SDK's own generator formats a buffer to hex for every id, a visible share of a traced gate's
 * CPU per request. An all-zero id (invalid in W3C; odds 2^-64) is drawn again.
 */
const poolIds: IdGenerator = {
  generateTraceId(): string {
    const id = randomHex(16);
    return id === ZERO_TRACE ? randomHex(16) : id;
  },
  generateSpanId(): string {
    const id = randomHex(8);
    return id === ZERO_SPAN ? randomHex(8) : id;
  },
};

/** The push API span when it is not sampled: nothing to record. */
const UNSAMPLED_API: ApiTrace = { deliveries: () => undefined, set: () => undefined, end: () => undefined };

class ApiSpan implements ApiTrace {
  constructor(private readonly span: Span) {}
  deliveries(sent: number, buffered: number, missing: number): void {
    this.span.setAttributes({ 'gate.sent': sent, 'gate.buffered': buffered, 'gate.missing': missing });
  }
  set(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }
  end(err?: unknown): void {
    if (err !== undefined) this.span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : 'failed' });
    this.span.end();
  }
}

/**
 * The parent context of a span to record, or null when the trace is not sampled. Decided here,
 * before the SDK: at `--otlp-sample 0.01` ninety-nine requests in a hundred cost one random draw
 * (and the header the backend gets) instead of a non-recording span, its ids and a context
 * (measured: 14 µs a request more than tracing off through the SDK's sampler). The SDK's sampler
 * then only sees spans to record (AlwaysOn under ParentBased: a parent's flag is honoured as before).
 */
function sampledParent(p: TraceParent | null, sample: number): Context | null {
  if (p === null) return Math.random() < sample ? ROOT_CONTEXT : null;
  if (!p.sampled) return null;
  return otelTrace.setSpanContext(ROOT_CONTEXT, { traceId: p.traceId, spanId: p.spanId, traceFlags: 1, isRemote: true });
}

/** The header an unsampled request's upstream calls carry: the client's trace continued, or a new one, flag 00. */
const unsampledTraceparent = (p: TraceParent | null): string => formatTraceparent(p?.traceId ?? randomHex(16), randomHex(8), false);

/**
 * A tracer exporting to an OTLP/HTTP collector: parent-based sampling (a client's sampled flag
 * decides; without a parent, `sample` of the traces), resource `service.name=gate`,
 * `service.instance.id=<gateId>`. Export is bounded (BoundedExport) and never throws into the
 * gate: failures are counted and logged at most once per FAILURE_LOG_EVERY_MS.
 */
export function otlpTracer(cfg: OtlpTracerConfig): RequestTracer {
  let lastLog = -Infinity; // Date.now() of the last failure line
  let unlogged = 0; // failed exports since that line
  const processor = new BoundedExport(new OTLPTraceExporter({ url: cfg.url, timeoutMillis: OTLP_EXPORT_TIMEOUT_MS }), {
    maxQueueSize: OTLP_MAX_QUEUE,
    maxExportBatchSize: OTLP_BATCH,
    scheduledDelayMillis: OTLP_DELAY_MS,
    exportTimeoutMillis: OTLP_EXPORT_TIMEOUT_MS + 1_000,
    onFailure: (err, spans) => {
      unlogged++;
      const now = Date.now();
      if (now - lastLog < FAILURE_LOG_EVERY_MS) return;
      cfg.log.warn(
        { err: err?.message ?? 'export failed', url: cfg.url, failures: unlogged, lost: spans, failuresTotal: processor.exportFailures, droppedQueueFull: processor.droppedQueueFull },
        'OTLP span export failed; spans dropped (gate_otlp_export_failures_total)',
      );
      lastLog = now;
      unlogged = 0;
    },
  });
  const provider = new BasicTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'gate', [ATTR_SERVICE_INSTANCE_ID]: cfg.gateId })),
    sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    spanProcessors: [processor],
    idGenerator: poolIds,
  });
  const tracer = provider.getTracer('gate');
  let stopping: Promise<boolean> | null = null;

  return {
    stats: processor,
    request(route, seq, sessionId, playerId, parent): RequestTrace {
      // The client's traceparent is parsed once, for the decision and for the header.
      const p = parseTraceparent(parent);
      const ctx = sampledParent(p, cfg.sample);
      // Not sampled: no span, no attributes, no children; the backend still gets a trace id, flag 00.
      if (ctx === null) return new UnsampledRequest(unsampledTraceparent(p));
      const span = tracer.startSpan('gate.request', { kind: SpanKind.SERVER }, ctx);
      span.setAttributes({ 'gate.route': route, 'gate.seq': seq, 'gate.session_id': sessionId, 'gate.player_id': playerId });
      return new SampledRequest(tracer, span, ctx, performance.now());
    },
    api(name: ApiSpanName, parent: string | undefined): ApiTrace {
      const ctx = sampledParent(parseTraceparent(parent), cfg.sample);
      if (ctx === null) return UNSAMPLED_API;
      return new ApiSpan(tracer.startSpan(name, { kind: SpanKind.SERVER }, ctx));
    },
    flush: () => provider.forceFlush({ timeoutMillis: OTLP_EXPORT_TIMEOUT_MS + 1_000 }),
    shutdown(ms: number): Promise<boolean> {
      return (stopping ??= new Promise<boolean>((resolve) => {
        // A collector that is down or silent must not hold the shutdown: give up after `ms`.
        const timer = setTimeout(() => resolve(false), ms);
        timer.unref();
        provider.shutdown().then(
          () => resolve(true),
          () => resolve(false),
        ).finally(() => clearTimeout(timer));
      }));
    },
  };
}

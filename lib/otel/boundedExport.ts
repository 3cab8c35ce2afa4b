// The span export path of --otlp: the SDK's BatchSpanProcessor, with its bound counted.
import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { TracerStats } from '../requestTracer.js';

export interface BoundedExportConfig {
  /** Ended spans waiting for export, at most; past it a span is dropped and counted. */
  maxQueueSize: number;
  /** Spans per export call (a full batch goes at once). */
  maxExportBatchSize: number;
  /** How long a partial batch waits before it goes, ms. */
  scheduledDelayMillis: number;
  /** How long the processor waits for one export call, ms. */
  exportTimeoutMillis: number;
  /** One export call failed; `spans` of them are lost. */
  onFailure: (err: Error | undefined, spans: number) => void;
}

/**
 * A span processor that exports sampled spans in batches and keeps count of what it loses.
 *
 * The BatchSpanProcessor drops spans past its `maxQueueSize` but does not expose how many (it
 * only tells its diag logger, and resets the count when it does). So the same bound is kept
 * here: `queued` follows the processor's queue exactly (a span counts from `onEnd` until the
 * processor hands it to the exporter, which it does synchronously from its queue), spans past
 * the bound are dropped here and counted, and the processor's own limit is never reached.
 * Bound: at most `maxQueueSize` spans wait, plus the batch being exported.
 */
export class BoundedExport implements SpanProcessor, TracerStats {
  /** Spans handed to the batch processor and not yet to the exporter; ≤ maxQueueSize. */
  private queued = 0;
  /** Set by shutdown: the batch processor ignores spans from then on, and so does this. */
  private closed = false;
  exportFailures = 0;
  droppedQueueFull = 0;
  droppedExportFailed = 0;
  private readonly batch: BatchSpanProcessor;
  private readonly max: number;

  constructor(exporter: SpanExporter, cfg: BoundedExportConfig) {
    this.max = cfg.maxQueueSize;
    const counted: SpanExporter = {
      export: (spans, done) => {
        this.queued -= spans.length;
        exporter.export(spans, (result) => {
          if (result.code !== ExportResultCode.SUCCESS) {
            this.exportFailures++;
            this.droppedExportFailed += spans.length;
            cfg.onFailure(result.error, spans.length);
          }
          done(result);
        });
      },
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    };
    const { maxQueueSize, maxExportBatchSize, scheduledDelayMillis, exportTimeoutMillis } = cfg;
    this.batch = new BatchSpanProcessor(counted, { maxQueueSize, maxExportBatchSize, scheduledDelayMillis, exportTimeoutMillis });
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    // The batch processor exports sampled spans only; a non-sampled one must not count.
    if (this.closed || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.queued >= this.max) {
      this.droppedQueueFull++;
      return;
    }
    this.queued++;
    this.batch.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.batch.forceFlush();
  }

  shutdown(): Promise<void> {
    this.closed = true;
    return this.batch.shutdown();
  }
}

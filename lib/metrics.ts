import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { BucketHistogram } from './bucketHistogram.js';
import type { Transport } from './connection.js';
import type { TracerStats } from './requestTracer.js';

/** Live values read at scrape time, so nothing on the hot path updates a gauge. */
export interface MetricsSource {
  sessions(): { online: number; detached: number; buffered: number };
  queued(): number;
  busyWorkers(): number;
  eventsQueued(): number;
  /** Connections refused at accept so far (a running count kept by the listeners). */
  refused(): number;
  /** Sockets in the TLS handshake or WS upgrade now, and refused past --max-handshakes so far. */
  handshakes?(): { pending: number; refused: number };
  /** Open client connections by transport (none when left out). */
  connections?(): Readonly<Record<Transport, number>>;
  /** --otlp: the tracer's export counts; null or absent when tracing is off. */
  tracing?(): TracerStats | null;
}

/** gate_upstream_duration_seconds' bucket bounds, seconds: the resolution of every upstream percentile the gate reports. */
export const UPSTREAM_BOUNDS_S: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Running totals since start, read without going through prom-client (the dashboard samples
 * them every second): rates are differences of two readings.
 */
export interface MetricCounts {
  /** gate_requests_total by outcome. */
  readonly requests: Readonly<Record<string, number>>;
  /** gate_pushes_total by status. */
  readonly pushes: Readonly<Record<string, number>>;
  /** gate_upstream_duration_seconds per bucket (not cumulative), all results together; the last is past the largest bound. */
  readonly upstreamBuckets: Float64Array;
  /** gate_slow_consumers_total. */
  readonly slowConsumers: number;
  /** gate_protocol_errors_total, all codes. */
  readonly protocolErrors: number;
}

/** A counter that catches up with a running total kept elsewhere, at scrape time. */
function catchUp(total: () => number): (counter: { inc(n: number): void }) => void {
  let seen = 0; // already added to the counter
  return (counter) => {
    const t = total();
    if (t > seen) counter.inc(t - seen);
    seen = t;
  };
}

/** Small ids for the per-route result label, to key the cached label children. */
const RESULT_INDEX: Record<string, number> = { '2xx': 0, '3xx': 1, '4xx': 2, '5xx': 3, '1xx': 4, timeout: 5, unavailable: 6 };

/** Children of a labelled metric, created on first use and kept (the label sets are small and fixed). */
function cached<C>(make: (label: string) => C): (label: string) => C {
  const children = new Map<string, C>();
  return (label) => {
    let c = children.get(label);
    if (!c) children.set(label, (c = make(label)));
    return c;
  };
}

/**
 * A per-request counter that costs a number increment: counts live in plain objects and are
 * added to the prom-client counter at scrape time (its `collect`), since prom-client hashes
 * labels on every `inc`, which showed in the request path's profile.
 */
class Tally {
  private readonly counts = new Map<string, { n: number; seen: number }>();
  /** The counter for one label value. */
  of(label: string): { inc(): void } {
    let c = this.counts.get(label);
    if (!c) this.counts.set(label, (c = { n: 0, seen: 0 }));
    const cell = c;
    return { inc: () => void cell.n++ };
  }
  /** Every label's running total (scrapes move only `seen`, never the total). */
  totals(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [label, c] of this.counts) out[label] = c.n;
    return out;
  }
  /** All labels' running totals added up. */
  sum(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c.n;
    return n;
  }
  /** Adds what was counted since the last scrape to `counter`. */
  flush(add: (label: string, delta: number) => void): void {
    for (const [label, c] of this.counts) {
      if (c.n > c.seen) add(label, c.n - c.seen);
      c.seen = c.n;
    }
  }
}

/**
 * prom-client's event-loop delay gauges: statistics of a perf_hooks histogram it resets at every
 * scrape. A window with no sample yet (right after start, or two scrapes within one sampling
 * interval) reads as mean and stddev NaN, min 2^63 ns and percentiles of nothing.
 */
const LOOP_DELAY_WINDOW = /^nodejs_eventloop_lag_(?:min|max|mean|stddev|p50|p90|p99)_seconds[{ ]/;
const LOOP_DELAY_MEAN = 'nodejs_eventloop_lag_mean_seconds';
/** A sample with a non-finite value, as prom-client writes one (NaN as `Nan`, infinities as `+Inf`/`-Inf`). */
const NON_FINITE_SAMPLE = / (?:Nan|[+-]Inf)$/m;

/** A sample line's value: the last token (prom-client writes no timestamps, and label values are quoted). */
const sampleValue = (line: string): number => Number(line.slice(line.lastIndexOf(' ') + 1));

/**
 * The exposition with only finite sample values. OpenMetrics parsers and several scrapers reject
 * prom-client's `Nan` (and ±Inf values) and with it the whole scrape, so such a sample is dropped
 * until it has a value, and with a non-finite event-loop delay mean the rest of that window goes
 * too (its other gauges are not measurements either). HELP and TYPE lines stay (a family with no
 * samples is valid in both formats); a histogram's `le="+Inf"` is a label and is untouched. Text
 * with nothing to drop is returned as is.
 */
export function finiteSamples(text: string): string {
  if (!NON_FINITE_SAMPLE.test(text)) return text;
  const lines = text.split('\n');
  const emptyWindow = lines.some((l) => l.startsWith(LOOP_DELAY_MEAN) && !Number.isFinite(sampleValue(l)));
  return lines
    .filter((l) => l === '' || l.startsWith('#') || (Number.isFinite(sampleValue(l)) && !(emptyWindow && LOOP_DELAY_WINDOW.test(l))))
    .join('\n');
}

/** Distinct routes labelled before the rest are counted as "other" (a hostile client must not grow the label set). */
const MAX_ROUTE_LABELS = 256;

/**
 * The gate's Prometheus metrics (CONTRACT §4). Two registries per gate: the gate's own, and
 * the default process metrics (event-loop lag included), kept apart because the process
 * collectors can throw at the open-file limit (EMFILE) and `/metrics` must still answer.
 * Labels are low-cardinality: never a player id; routes capped at MAX_ROUTE_LABELS.
 */
export function createMetrics(gateId: string, src: MetricsSource) {
  const registry = new Registry();
  const processRegistry = new Registry();
  registry.setDefaultLabels({ gate: gateId });
  processRegistry.setDefaultLabels({ gate: gateId });
  collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: 20 });
  // prom-client names a few gauges `*_total` (nodejs_active_handles_total…), which Prometheus
  // reserves for counters and promtool rejects: leave those out (the per-type ones remain).
  for (const m of processRegistry.getMetricsAsArray()) {
    const name = (m as unknown as { name: string; type?: string }).name;
    if (name.endsWith('_total') && (m as unknown as { type?: string }).type === 'gauge') processRegistry.removeSingleMetric(name);
  }
  const reg = [registry];
  const routes = new Set<string>();
  // Label children are looked up once and kept: prom-client hashes the label object on every
  // inc/observe otherwise, which is measurable per request.
  const upstreamChildren = new Map<number, { inc(): void }>();
  const upstreamTally = new Tally();
  // Running totals kept by the listeners and the tracer, added to their counters at scrape time.
  const connectionsRefused = catchUp(() => src.refused());
  const handshakesRefused = catchUp(() => src.handshakes?.().refused ?? 0);
  const exportFailures = catchUp(() => src.tracing?.()?.exportFailures ?? 0);
  const droppedQueueFull = catchUp(() => src.tracing?.()?.droppedQueueFull ?? 0);
  const droppedExportFailed = catchUp(() => src.tracing?.()?.droppedExportFailed ?? 0);
  new Counter({
    name: 'gate_upstream_requests_total',
    help: 'Upstream /rpc calls by route and result (2xx, 4xx, 5xx, timeout, unavailable)',
    labelNames: ['route', 'result'] as const,
    registers: reg,
    collect() {
      upstreamTally.flush((key, d) => {
        const i = key.indexOf('|');
        this.inc({ route: key.slice(0, i), result: key.slice(i + 1) }, d);
      });
    },
  });
  const requestTally = new Tally();
  const requests = new Counter({
    name: 'gate_requests_total',
    help: 'Client REQUESTs by outcome',
    labelNames: ['outcome'] as const,
    registers: reg,
    collect() {
      requestTally.flush((outcome, d) => this.inc({ outcome }, d));
    },
  });
  const upstreamDuration = new BucketHistogram(
    'gate_upstream_duration_seconds',
    'Upstream /rpc call time, all attempts included',
    'result',
    UPSTREAM_BOUNDS_S,
    reg,
  );
  const pushTally = new Tally();
  const pushes = new Counter({
    name: 'gate_pushes_total',
    help: 'Pushes by status',
    labelNames: ['status'] as const,
    registers: reg,
    collect() {
      pushTally.flush((status, d) => this.inc({ status }, d));
    },
  });
  const protocolTally = new Tally();
  const slowTally = new Tally();
  const slowConsumer = slowTally.of('');
  return {
    registry,
    processRegistry,
    connections: new Gauge({
      name: 'gate_connections',
      help: 'Open client connections',
      labelNames: ['transport'] as const,
      registers: reg,
      collect() {
        const open = src.connections?.() ?? { tcp: 0, ws: 0 };
        this.set({ transport: 'tcp' }, open.tcp);
        this.set({ transport: 'ws' }, open.ws);
      },
    }),
    sessions: new Gauge({
      name: 'gate_sessions',
      help: 'Sessions by state',
      labelNames: ['state'] as const,
      registers: reg,
      collect() {
        const s = src.sessions();
        this.set({ state: 'online' }, s.online);
        this.set({ state: 'detached' }, s.detached);
      },
    }),
    requests,
    upstreamDuration,
    /** gate_requests_total{outcome}.inc(), counted cheaply and published at scrape time. */
    countRequest: cached((outcome) => requestTally.of(outcome)),
    /** gate_upstream_duration_seconds{result} through a cached child. */
    upstreamTime: cached((result) => upstreamDuration.labels(result)),
    /** gate_pushes_total{status}, counted cheaply and published at scrape time. */
    countPush: cached((status) => pushTally.of(status)),
    /** Counts one upstream outcome under its route (or "other" past the label cap). */
    upstream(route: number, result: string): void {
      const key = route * 16 + (RESULT_INDEX[result] ?? 15);
      let child = upstreamChildren.get(key);
      if (!child) {
        let r = String(route);
        if (!routes.has(r)) {
          if (routes.size < MAX_ROUTE_LABELS) routes.add(r);
          else r = 'other';
        }
        child = upstreamTally.of(`${r}|${result}`);
        upstreamChildren.set(key, child);
      }
      child.inc();
    },
    pushes,
    pushBuffered: new Gauge({
      name: 'gate_push_buffered',
      help: 'Pushes kept for replay, all sessions',
      registers: reg,
      collect() {
        this.set(src.sessions().buffered);
      },
    }),
    pushDrops: new Counter({ name: 'gate_push_buffer_drops_total', help: 'Buffered pushes dropped by --buffer-max', registers: reg }),
    replays: new Counter({ name: 'gate_replayed_pushes_total', help: 'Pushes sent again after a resume', registers: reg }),
    resumes: new Counter({ name: 'gate_resumes_total', help: 'HELLOs with resume, by result', labelNames: ['result'] as const, registers: reg }),
    queued: new Gauge({
      name: 'gate_request_queue_depth',
      help: 'Requests admitted and waiting for a worker',
      registers: reg,
      collect() {
        this.set(src.queued());
      },
    }),
    busyWorkers: new Gauge({
      name: 'gate_workers_busy',
      help: 'Upstream workers in use',
      registers: reg,
      collect() {
        this.set(src.busyWorkers());
      },
    }),
    protocolErrors: new Counter({
      name: 'gate_protocol_errors_total',
      help: 'Connections closed for protocol errors',
      labelNames: ['code'] as const,
      registers: reg,
      collect() {
        protocolTally.flush((code, d) => this.inc({ code }, d));
      },
    }),
    /** gate_protocol_errors_total{code}, counted cheaply and published at scrape time. */
    countProtocolError: cached((code) => protocolTally.of(code)),
    slowConsumers: new Counter({
      name: 'gate_slow_consumers_total',
      help: 'Connections dropped past --outbound-max',
      registers: reg,
      collect() {
        slowTally.flush((_, d) => this.inc(d));
      },
    }),
    /** gate_slow_consumers_total.inc(), counted cheaply and published at scrape time. */
    slowConsumer,
    logSampledOut: new Counter({ name: 'gate_log_sampled_out_total', help: 'Session log lines not written past --log-sample lines a second', labelNames: ['msg'] as const, registers: reg }),
    closes: new Counter({ name: 'gate_connection_closes_total', help: 'Connections closed by the gate, by BYE code', labelNames: ['code'] as const, registers: reg }),
    handshakesPending: new Gauge({
      name: 'gate_handshakes_pending',
      help: 'Sockets in the TLS handshake or WebSocket upgrade (--max-handshakes)',
      registers: reg,
      collect() {
        this.set(src.handshakes?.().pending ?? 0);
      },
    }),
    handshakesRefused: new Counter({
      name: 'gate_handshakes_refused_total',
      help: 'Sockets refused at accept because --max-handshakes were still in the TLS handshake or WebSocket upgrade',
      registers: reg,
      collect() {
        handshakesRefused(this);
      },
    }),
    refused: new Counter({
      name: 'gate_connections_refused_total',
      help: 'Connections refused at accept (--max-connections)',
      registers: reg,
      collect() {
        connectionsRefused(this);
      },
    }),
    events: new Gauge({
      name: 'gate_backend_events_queued',
      help: 'Backend events waiting to be posted',
      registers: reg,
      collect() {
        this.set(src.eventsQueued());
      },
    }),
    eventsDropped: new Counter({ name: 'gate_backend_events_dropped_total', help: 'Backend events dropped (queue full)', registers: reg }),
    /** The running totals the dashboard's rates come from: plain numbers, no prom-client call. */
    counts(): MetricCounts {
      return {
        requests: requestTally.totals(),
        pushes: pushTally.totals(),
        upstreamBuckets: upstreamDuration.totals(),
        slowConsumers: slowTally.sum(),
        protocolErrors: protocolTally.sum(),
      };
    },
    otlpExportFailures: new Counter({
      name: 'gate_otlp_export_failures_total',
      help: 'Span batches the OTLP collector did not accept (--otlp); 0 with tracing off',
      registers: reg,
      collect() {
        exportFailures(this);
      },
    }),
    otlpSpansDropped: new Counter({
      name: 'gate_otlp_spans_dropped_total',
      help: 'Sampled spans not exported (--otlp): queue_full (export queue at its bound) or export_failed',
      labelNames: ['reason'] as const,
      registers: reg,
      collect() {
        droppedQueueFull({ inc: (n) => this.inc({ reason: 'queue_full' }, n) });
        droppedExportFailed({ inc: (n) => this.inc({ reason: 'export_failed' }, n) });
      },
    }),
    /**
     * The exposition text: the gate's metrics always, the process metrics when they can be read,
     * with only their finite samples (see finiteSamples).
     */
    async text(onProcessError: (e: unknown) => void): Promise<string> {
      const own = await registry.metrics();
      try {
        return `${own}\n${finiteSamples(await processRegistry.metrics())}`;
      } catch (e) {
        onProcessError(e);
        return own;
      }
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

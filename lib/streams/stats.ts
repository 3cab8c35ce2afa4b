// The dashboard's live figures: one reading of the gate a second, turned into rates by the
// difference from the reading before. The stream is shared, so fifty open dashboards cost the
// gate one reading a second, as one does.
import { asyncScheduler, catchError, defer, EMPTY, exhaustMap, from, map, of, pairwise, shareReplay, timer, type Observable, type SchedulerLike } from 'rxjs';
import { bucketQuantile } from '../bucketHistogram.js';
import type { Transport } from '../connection.js';
import type { Gate } from '../gate.js';
import { UPSTREAM_BOUNDS_S, type MetricCounts } from '../metrics.js';
import type { GateFigures } from '../session/sessions.js';

/** How often the dashboard's figures are sampled, ms. */
export const STATS_PERIOD_MS = 1_000;

/** Request outcomes that are not errors: answered, answered from the request window, or left to the gate now holding the session. */
const NOT_ERRORS = new Set(['ok', 'duplicate', 'moved']);

/** One reading of the gate: running totals and what is in use at `at`. */
export interface StatsReading {
  /** When it was read, ms since the epoch. */
  readonly at: number;
  readonly gateId: string;
  readonly counts: MetricCounts;
  readonly connections: Readonly<Record<Transport, number>>;
  readonly sessions: { readonly online: number; readonly detached: number; readonly buffered: number };
  readonly workers: { readonly busy: number; readonly max: number; readonly queued: number };
  /** Backend events waiting to be posted; null in cluster mode (they wait in Redis). */
  readonly eventsQueued: number | null;
  /** Cluster mode: every live gate (from their beats); null on a single node or when Redis did not answer. */
  readonly gates: readonly GateFigures[] | null;
}

/** What a dashboard is sent each second (the SSE `data:` of /v1/stats/stream). */
export interface StatsSample {
  readonly at: number;
  readonly gateId: string;
  /** The time between the two readings the rates come from, ms. */
  readonly intervalMs: number;
  readonly connections: Readonly<Record<Transport, number>>;
  readonly sessions: StatsReading['sessions'];
  readonly requests: {
    /** REQUESTs settled per second, every outcome. */
    readonly perSec: number;
    /** Upstream call time in the interval, ms, at the resolution of its buckets (UPSTREAM_BOUNDS_S); null without calls. */
    readonly p50Ms: number | null;
    readonly p99Ms: number | null;
    /** Outcomes that are errors, per second in the interval, by outcome code (only those seen in it). */
    readonly errorsPerSec: Readonly<Record<string, number>>;
    /** The same outcomes since start. */
    readonly errorsTotal: Readonly<Record<string, number>>;
  };
  readonly pushes: { readonly sentPerSec: number; readonly bufferedPerSec: number };
  readonly workers: StatsReading['workers'];
  readonly eventsQueued: number | null;
  readonly slowConsumers: { readonly total: number; readonly perSec: number };
  readonly protocolErrors: { readonly total: number; readonly perSec: number };
  readonly gates: readonly GateFigures[] | null;
}

const rate = (delta: number, ms: number): number => (ms > 0 ? Math.max(0, (delta * 1000) / ms) : 0);
const sum = (r: Readonly<Record<string, number>>): number => Object.values(r).reduce((a, b) => a + b, 0);

/** The sample between two readings: rates from counter differences, percentiles from bucket differences, the rest as of `cur`. */
export function sampleOf(prev: StatsReading, cur: StatsReading): StatsSample {
  const ms = cur.at - prev.at;
  const a = prev.counts;
  const b = cur.counts;
  const errorsPerSec: Record<string, number> = {};
  const errorsTotal: Record<string, number> = {};
  for (const [outcome, n] of Object.entries(b.requests)) {
    if (NOT_ERRORS.has(outcome) || n === 0) continue;
    errorsTotal[outcome] = n;
    const d = n - (a.requests[outcome] ?? 0);
    if (d > 0) errorsPerSec[outcome] = rate(d, ms);
  }
  const buckets = b.upstreamBuckets.map((n, i) => n - (a.upstreamBuckets[i] ?? 0));
  const p = (q: number): number | null => {
    const s = bucketQuantile(UPSTREAM_BOUNDS_S, buckets, q);
    return s === null ? null : s * 1000;
  };
  return {
    at: cur.at,
    gateId: cur.gateId,
    intervalMs: ms,
    connections: cur.connections,
    sessions: cur.sessions,
    requests: { perSec: rate(sum(b.requests) - sum(a.requests), ms), p50Ms: p(0.5), p99Ms: p(0.99), errorsPerSec, errorsTotal },
    pushes: {
      sentPerSec: rate((b.pushes.sent ?? 0) - (a.pushes.sent ?? 0), ms),
      bufferedPerSec: rate((b.pushes.buffered ?? 0) - (a.pushes.buffered ?? 0), ms),
    },
    workers: cur.workers,
    eventsQueued: cur.eventsQueued,
    slowConsumers: { total: b.slowConsumers, perSec: rate(b.slowConsumers - a.slowConsumers, ms) },
    protocolErrors: { total: b.protocolErrors, perSec: rate(b.protocolErrors - a.protocolErrors, ms) },
    gates: cur.gates,
  };
}

export interface StatsConfig {
  /** Time between readings, ms. Default STATS_PERIOD_MS. */
  periodMs?: number;
  /** Default asyncScheduler; TestScheduler.run() virtualises it. */
  scheduler?: SchedulerLike;
  /** A reading that failed (Redis away in cluster mode): that tick is skipped and reported here. */
  onError?: (e: unknown) => void;
}

/**
 * The gate's figures once every `periodMs`, as samples of the interval before. One reading is
 * taken on subscription (the baseline), so the first sample comes one period later. Shared
 * with a replay of one and refCount: however many subscribe, `read` runs once a period, a
 * late subscriber gets the last sample at once, and with none left the timer stops.
 * A reading still running at the next tick (a slow Redis) makes that tick skip (exhaustMap).
 * ```text
 * tick:     0----1----2----3--      read at each tick: r0 r1 r2 r3
 * result:   -----a----b----c--      a = sampleOf(r0, r1), b = sampleOf(r1, r2) …
 * ```
 * Bound: one reading in flight, one sample kept.
 */
export function stats$(read: () => StatsReading | PromiseLike<StatsReading>, { periodMs = STATS_PERIOD_MS, scheduler = asyncScheduler, onError }: StatsConfig = {}): Observable<StatsSample> {
  if (!(periodMs > 0)) throw new TypeError('stats$: periodMs must be > 0');
  return timer(0, periodMs, scheduler).pipe(
    exhaustMap(() =>
      defer(() => {
        const r = read();
        return isPromiseLike(r) ? from(r) : of(r);
      }).pipe(
        // Caught inside, so one failed reading does not end the stream every dashboard shares.
        catchError((e: unknown) => {
          onError?.(e);
          return EMPTY;
        }),
      ),
    ),
    pairwise(),
    map(([prev, cur]) => sampleOf(prev, cur)),
    shareReplay({ bufferSize: 1, refCount: true }),
  );
}

function isPromiseLike<T>(v: T | PromiseLike<T>): v is PromiseLike<T> {
  return typeof (v as PromiseLike<T>).then === 'function';
}

/**
 * Reads `gate`: plain numbers from its metrics and counters, one pass over its sessions, and
 * in cluster mode the live gates from Redis (null if Redis does not answer: the rest still shows).
 */
export function readGate(gate: Gate): () => StatsReading | Promise<StatsReading> {
  const now = (): Omit<StatsReading, 'gates'> => {
    const load = gate.load();
    return {
      at: Date.now(),
      gateId: gate.cfg.gateId,
      counts: gate.metrics.counts(),
      connections: load.connections,
      sessions: gate.sessions.counts(),
      workers: { busy: load.busy, max: gate.cfg.workers, queued: load.queued },
      eventsQueued: load.eventsQueued,
    };
  };
  return () => {
    const r = now();
    if (!gate.sessions.clustered) return { ...r, gates: null };
    return gate.sessions.gates().then(
      (gates) => ({ ...r, gates }),
      () => ({ ...r, gates: null }),
    );
  };
}

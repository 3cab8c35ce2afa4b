import type { Metric, Registry } from 'prom-client';

/** One exposition line's worth, as prom-client's Registry formats them. */
interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/** One label value's counts; `observe` is a bucket search and three number updates. */
export interface HistogramCell {
  observe(value: number): void;
}

/**
 * A Prometheus histogram with one label, for the request path: prom-client's Histogram
 * converts, validates and hashes the labels on every observe (about 5% of the gate's own CPU
 * per request, bench/gateCpu.ts). Here each label value keeps plain per-bucket counts, and
 * the exposition (cumulative `_bucket{le}`, `_sum`, `_count`) is built at scrape time.
 * Registered on a prom-client Registry like any of its metrics.
 */
export class BucketHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly cells = new Map<string, { counts: Float64Array; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelName: string,
    private readonly bounds: readonly number[],
    registers: Registry[],
  ) {
    for (let i = 1; i < bounds.length; i++) if (!(bounds[i]! > bounds[i - 1]!)) throw new TypeError('BucketHistogram: bounds must increase');
    for (const r of registers) r.registerMetric(this as unknown as Metric);
  }

  /** The cell of one label value (kept: label sets here are small and fixed). */
  labels(value: string): HistogramCell {
    let c = this.cells.get(value);
    if (!c) this.cells.set(value, (c = { counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 }));
    const cell = c;
    const bounds = this.bounds;
    return {
      observe(v: number): void {
        let i = 0;
        while (i < bounds.length && v > bounds[i]!) i++;
        cell.counts[i]!++;
        cell.sum += v;
        cell.count++;
      },
    };
  }

  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Sample[] }> {
    const values: Sample[] = [];
    for (const [label, c] of this.cells) {
      let acc = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        acc += c.counts[i]!;
        const le = i < this.bounds.length ? this.bounds[i]! : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { le, [this.labelName]: label }, value: acc });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { [this.labelName]: label }, value: c.sum });
      values.push({ metricName: `${this.name}_count`, labels: { [this.labelName]: label }, value: c.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values });
  }

  /** Counts per bucket (not cumulative), every label value added up; the last bucket is past the largest bound. */
  totals(): Float64Array {
    const out = new Float64Array(this.bounds.length + 1);
    for (const c of this.cells.values()) for (let i = 0; i < out.length; i++) out[i]! += c.counts[i]!;
    return out;
  }

  reset(): void {
    this.cells.clear();
  }
}

/**
 * The q-quantile (0 < q ≤ 1) of the observations counted in `counts` (per bucket, not cumulative,
 * one more than `bounds`), interpolated linearly inside its bucket as Prometheus'
 * `histogram_quantile` does: the answer is only as fine as the bucket it falls in (between 10 and
 * 25 ms, say, it can be off by up to 15 ms). The first bucket starts at 0; a quantile in the last
 * (past the largest bound) is reported as the largest bound. null when nothing was counted.
 */
export function bucketQuantile(bounds: readonly number[], counts: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total <= 0) return null;
  const rank = q * total;
  let below = 0; // observations in the buckets before i
  for (let i = 0; i < bounds.length; i++) {
    const n = counts[i]!;
    if (n > 0 && below + n >= rank) {
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      return lower + ((bounds[i]! - lower) * (rank - below)) / n;
    }
    below += n;
  }
  return bounds[bounds.length - 1] ?? null;
}

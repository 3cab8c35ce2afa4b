/**
 * Property runs with a time budget. A property asks for a number of runs and takes new ones only
 * while its budget lasts, so a slower (or busier) machine completes fewer runs instead of hitting
 * the test runner's per-test timeout. It fails on a counterexample (shrunk, reported as
 * `fc.assert` would), or when fewer runs than its floor completed: then it was too slow to have
 * tested much, which is worth knowing rather than passing quietly.
 *
 * Environment:
 * - `FC_RUNS`: runs asked of each property, times its `scale` (`npm run test:props` 200,
 *   `npm run fuzz` 5000). Unset, each property asks for its own quick `runs` (`npm test`).
 * - `FC_BUDGET_MS`: each property's time for its runs, default DEFAULT_BUDGET_MS. A failure found
 *   in it gets as long again to shrink.
 *
 * Each property reports, as a test diagnostic, how many runs it completed and in what time.
 * To replay a failure pass fast-check's `seed` and `path` (printed with the counterexample) in
 * the options.
 */
import type { TestContext } from 'node:test';
import fc from 'fast-check';

/**
 * Default budget of one property, ms. Sized for `npm run fuzz` on a busy 2-core machine: the
 * properties that drive a live gate (about ten) spend all of theirs, two test files at a time,
 * so the whole run takes some three minutes, and one property (budget, one overrunning run, a
 * shrink as long again) stays well inside the runner's 120 s per-test timeout. The quick
 * defaults of `npm test` finish in a few seconds and never reach it.
 */
export const DEFAULT_BUDGET_MS = 30_000;

/**
 * Default floor, runs: cheap (pure) properties complete thousands in their budget even on a slow
 * machine. Properties that drive a gate state a lower one of their own, at about a tenth of what
 * they complete in the budget on a busy 2-core machine.
 */
export const DEFAULT_FLOOR = 100;

export interface PropertyRuns<Ts> extends Omit<fc.Parameters<Ts>, 'numRuns' | 'interruptAfterTimeLimit' | 'skipAllAfterTimeLimit' | 'markInterruptAsFailure'> {
  /** Runs asked for when FC_RUNS is unset: what `npm test` runs, quickly. */
  runs: number;
  /** With FC_RUNS set, FC_RUNS × `scale` runs are asked for (cheap properties ask for more). Default 1. */
  scale?: number;
  /** Fewer completed runs than min(floor, asked) fail the property. Default DEFAULT_FLOOR. */
  floor?: number;
}

/** A positive integer from the environment, or `fallback` when unset. */
function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new TypeError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** The runs a property asks for, its floor and its budget, from its options and the environment. */
export function plan(opts: Pick<PropertyRuns<unknown>, 'runs' | 'scale' | 'floor'>): { asked: number; floor: number; budgetMs: number } {
  const { runs, scale = 1, floor = DEFAULT_FLOOR } = opts;
  if (!(runs >= 1) || !(scale > 0) || !(floor >= 1)) throw new TypeError(`props: runs and floor must be >= 1 and scale > 0 (${JSON.stringify(opts)})`);
  const fcRuns = envCount('FC_RUNS', 0);
  const asked = fcRuns > 0 ? Math.max(1, Math.round(fcRuns * scale)) : runs;
  return { asked, floor: Math.min(floor, asked), budgetMs: envCount('FC_BUDGET_MS', DEFAULT_BUDGET_MS) };
}

/**
 * `inner`, taking no new run once its budget is spent: the run then reports an interruption,
 * which fast-check counts as a stop, not a failure. The check is between runs: fast-check's own
 * `interruptAfterTimeLimit` races a running async predicate and leaves it running detached, still
 * holding a shared gate's sockets and players while the next test starts. After the first failure
 * the shrink gets a budget of its own, so a late counterexample still comes out small.
 */
class Budgeted<Ts> implements fc.IRawProperty<Ts> {
  private stopAt: number;
  private shrinking = false;

  constructor(
    private readonly inner: fc.IRawProperty<Ts>,
    private readonly budgetMs: number,
  ) {
    this.stopAt = Date.now() + budgetMs;
  }

  isAsync(): boolean {
    return this.inner.isAsync();
  }
  generate(mrng: fc.Random, runId?: number): fc.Value<Ts> {
    return this.inner.generate(mrng, runId);
  }
  shrink(value: fc.Value<Ts>): fc.Stream<fc.Value<Ts>> {
    return this.inner.shrink(value);
  }
  run(v: Ts): ReturnType<fc.IRawProperty<Ts>['run']> {
    if (Date.now() >= this.stopAt) {
      const stop = new fc.PreconditionFailure(true);
      return this.inner.isAsync() ? Promise.resolve(stop) : stop;
    }
    const out = this.inner.run(v);
    return out instanceof Promise ? out.then((r) => this.seen(r)) : this.seen(out);
  }
  runBeforeEach(): ReturnType<fc.IRawProperty<Ts>['runBeforeEach']> {
    return this.inner.runBeforeEach();
  }
  runAfterEach(): ReturnType<fc.IRawProperty<Ts>['runAfterEach']> {
    return this.inner.runAfterEach();
  }

  /** Passes a run's outcome through; the first failure starts the shrink's budget. */
  private seen<R>(r: R): R {
    if (!this.shrinking && r !== null && !fc.PreconditionFailure.isFailure(r)) {
      this.shrinking = true;
      this.stopAt = Date.now() + this.budgetMs;
    }
    return r;
  }
}

/**
 * Runs `property` for the runs `opts` and the environment ask for, within the time budget, and
 * reports the runs completed as a diagnostic of `t`. Throws fast-check's report on a
 * counterexample (with the failure as `cause`), and an error when fewer runs than the floor
 * completed.
 */
export async function assertProperty<Ts>(t: TestContext, property: fc.IRawProperty<Ts>, opts: PropertyRuns<Ts>): Promise<void> {
  const { runs, scale, floor: floorOpt, ...params } = opts;
  const { asked, floor, budgetMs } = plan({ runs, scale, floor: floorOpt });
  const started = Date.now();
  const details = await fc.check(new Budgeted(property, budgetMs), { ...params, numRuns: asked });
  const secs = ((Date.now() - started) / 1000).toFixed(2);
  const stopped = details.interrupted ? `, stopped by the ${budgetMs} ms budget` : '';
  if (details.counterexample !== null) t.diagnostic(`failed at run ${details.numRuns} of ${asked}, shrunk ${details.numShrinks} times, in ${secs} s${stopped}`);
  else t.diagnostic(`${details.numRuns} of ${asked} runs in ${secs} s (floor ${floor}${stopped})`);
  if (details.failed) throw new Error(await fc.asyncDefaultReportMessage(details), { cause: details.errorInstance });
  if (details.numRuns < floor) {
    throw new Error(
      `only ${details.numRuns} of ${asked} runs completed in the ${budgetMs} ms budget, under the floor of ${floor}: ` +
        `the property got slower, or FC_BUDGET_MS is too small for this machine (seed ${details.seed})`,
    );
  }
}

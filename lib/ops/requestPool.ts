import {
  asyncScheduler,
  catchError,
  connect,
  defer,
  filter,
  finalize,
  map,
  merge,
  mergeMap,
  of,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
import { groupByPlayer, type Settleable } from './groupByPlayer.js';
import type { WorkerPool } from './workerPool.js';

export interface RequestPoolConfig<J, R> {
  /** The player a job belongs to. */
  key: (job: J) => string;
  /** The job's work (the upstream call); runs inside a worker. */
  work: (job: J) => Observable<R>;
  /** The answer for a job refused at admission (ERROR OVERLOADED). Never queued. */
  reject: (job: J) => R;
  /** The answer for a job whose work errored (work should map its own errors; this is the backstop). */
  fail: (job: J, err: unknown) => R;
  /** The global pool (--workers), shared with anything else that calls upstream. */
  pool: WorkerPool;
  /** In flight at once for one player (--player-concurrency); 1 keeps order. */
  playerConcurrency: number;
  /** Jobs admitted but not yet holding a worker, at most (--queue-max). */
  queueMax: number;
  /** How long an idle player's group lingers, ms. */
  lingerMs: number;
  /** Called with the job count in the system (admitted, not settled) whenever it changes. */
  onDepth?: (admitted: number) => void;
  scheduler?: SchedulerLike;
}

interface Envelope<J> extends Settleable {
  readonly job: J;
}
interface Rejected<J> {
  readonly job: J;
  readonly rejected: true;
}

/**
 * The request path's worker pool: admission control, then per-player groups, each a
 * `mergeMap(work, playerConcurrency)`, each job leasing one of the global workers.
 * ```text
 * jobs:    -a-b-c-|        a, b: player 1; c: player 2; playerConcurrency = 1, workers = 2, work = 3 frames
 * result:  ----A-Cb--B|    b waits for a (same player); c runs beside a
 * ```
 * Bound: admitted − running ≤ queueMax; past it `reject(job)` is emitted at once. Nothing
 * else buffers: the per-group mergeMap queues and the pool's waiters are both inside that count.
 */
export function requestPool<J, R>(cfg: RequestPoolConfig<J, R>): OperatorFunction<J, R> {
  const { key, work, reject, fail, pool, playerConcurrency, queueMax, lingerMs, onDepth, scheduler = asyncScheduler } = cfg;
  if (!(playerConcurrency >= 1)) throw new TypeError('requestPool: playerConcurrency must be >= 1');
  if (!(queueMax >= 0)) throw new TypeError('requestPool: queueMax must be >= 0');
  return (source) =>
    defer(() => {
      let admitted = 0; // jobs in the system: waiting in a group, waiting for a worker, or running
      const settle = (env: Envelope<J>): void => {
        if (env.settled) return;
        env.settled = true;
        admitted--;
        onDepth?.(admitted);
        env.onSettled?.();
      };
      return source.pipe(
        // Admission decides once, in arrival order, before anything can queue.
        map((job): Envelope<J> | Rejected<J> => {
          if (admitted - pool.busy >= queueMax) return { job, rejected: true };
          admitted++;
          onDepth?.(admitted);
          return { job, settled: false, onSettled: null };
        }),
        connect((d$) =>
          merge(
            d$.pipe(
              filter((d): d is Rejected<J> => 'rejected' in d),
              map((d) => reject(d.job)),
            ),
            d$.pipe(
              filter((d): d is Envelope<J> => !('rejected' in d)),
              groupByPlayer({ key: (e) => key(e.job), lingerMs, scheduler }),
              mergeMap((group$) =>
                group$.pipe(
                  mergeMap(
                    (env) =>
                      work(env.job).pipe(
                        pool.lease(),
                        // Caught inside the flattening so one failed job never ends the pipeline.
                        catchError((err: unknown) => of(fail(env.job, err))),
                        finalize(() => settle(env)),
                      ),
                    playerConcurrency,
                  ),
                ),
              ),
            ),
          ),
        ),
      );
    });
}

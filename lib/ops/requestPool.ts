import { Observable, Subscription, asyncScheduler, filter, map, mergeMap, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { Fifo } from '../fifo.js';
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
  /**
   * New limits while running (a config reload): the pool is resized to `workers`, players' groups
   * run up to the new `playerConcurrency` (waiting jobs start at once when it grows), and
   * admission uses the new `queueMax`. Lowering a bound stops nothing that runs.
   */
  limits$?: Observable<PoolLimits>;
  /** How long an idle player's group lingers, ms. */
  lingerMs: number;
  /** Called with the job count in the system (admitted, not settled) whenever it changes. */
  onDepth?: (admitted: number) => void;
  scheduler?: SchedulerLike;
}

export interface PoolLimits {
  readonly workers: number;
  readonly playerConcurrency: number;
  readonly queueMax: number;
}

interface Envelope<J> extends Settleable {
  readonly job: J;
  /** key(job), computed once at admission. */
  readonly key: string;
}

/**
 * The request path's worker pool: admission control, then per-player groups, each running up
 * to `playerConcurrency` jobs at once in order (a mergeMap whose limit follows `limits$`), each
 * job leasing one of the global workers.
 * ```text
 * jobs:    -a-b-x-|        a, b: player 1; x: player 2; playerConcurrency = 1, workers = 2, work = 3 frames
 * result:  ----A--B(X|)    b waits for a (same player); x runs beside b
 * ```
 * Bound: admitted − running ≤ queueMax; past it `reject(job)` is emitted at once. Nothing
 * else buffers: the per-group queues and the pool's waiters are both inside that count.
 * A job that gets a worker at once (its player is under playerConcurrency and a worker is
 * free) never waits, so it is admitted even with queueMax = 0.
 * ```text
 * limits$: a----b          a: workers 1; b: workers 4 (a reload)
 * jobs:    -wxyz|          four players; work = 10 frames
 * result:  -----------W---(XYZ|)   x, y, z waited for the one worker; b started them at frame 5
 * ```
 */
export function requestPool<J, R>(cfg: RequestPoolConfig<J, R>): OperatorFunction<J, R> {
  const { key, work, reject, fail, pool, lingerMs, onDepth, limits$, scheduler = asyncScheduler } = cfg;
  checkLimits(cfg.playerConcurrency, cfg.queueMax);
  // Checked here too, not only by groupByPlayer: that one is built per subscription.
  if (!(lingerMs >= 0)) throw new TypeError('requestPool: lingerMs must be >= 0');
  // why not composed (defer): `closing` must be set before the chain below is torn down (see
  // there), so its finaliser is added to the subscriber before the chain subscribes to it.
  return (source) =>
    new Observable<R>((subscriber) => {
      // Set first on teardown: a job torn down frees its worker, and the pool hands it at once to
      // the next waiter, which may be a job of this same pipeline about to be torn down too; its
      // work must not start (an upstream call made and abandoned in the same tick).
      let closing = false;
      subscriber.add(() => (closing = true));
      let playerConcurrency = cfg.playerConcurrency;
      let queueMax = cfg.queueMax;
      // Groups with jobs waiting for their player's limit: a raised limit starts them.
      const blocked = new Set<() => void>();
      if (limits$)
        subscriber.add(
          limits$.subscribe((l) => {
            checkLimits(l.playerConcurrency, l.queueMax);
            queueMax = l.queueMax;
            playerConcurrency = l.playerConcurrency;
            if (l.workers !== pool.concurrency) pool.resize(l.workers);
            for (const drain of [...blocked]) drain();
          }),
        );
      let admitted = 0; // jobs in the system: waiting in a group, waiting for a worker, or running
      // Admitted jobs per player. An entry at 0 stays until the map holds more than twice the
      // keys in use (plus a floor), then zeros are swept: deleting and re-adding a busy player's
      // key on every request churned the Map's table on the hot path.
      const perKey = new Map<string, number>();
      let sweepAt = 1024;
      const settle = (env: Envelope<J>): void => {
        if (env.settled) return;
        env.settled = true;
        admitted--;
        perKey.set(env.key, (perKey.get(env.key) ?? 1) - 1);
        if (perKey.size > sweepAt) {
          for (const [k, n] of perKey) if (n === 0) perKey.delete(k);
          sweepAt = Math.max(1024, 2 * perKey.size);
        }
        onDepth?.(admitted);
        env.onSettled?.();
      };
      /**
       * One job: wait for a worker, run `work`, answer `fail` instead of erroring (so one failed
       * job never ends the pipeline), free the worker and settle on the way out.
       * why not composed: as `defer ▸ lease ▸ catchError ▸ finalize` this was four subscribers
       * per request on the hot path; the semaphore's `acquire` makes it one.
       */
      const runJob = (env: Envelope<J>): Observable<R> =>
        new Observable<R>((jobSubscriber) => {
          let inner: Subscription | null = null;
          const failWith = (err: unknown): void => {
            jobSubscriber.next(fail(env.job, err));
            jobSubscriber.complete();
          };
          const done = pool.acquire(() => {
            // A worker freed by a job of this same pipeline being torn down goes to the next
            // waiter at once: its work must not start (a call made and abandoned in one tick).
            if (closing) return jobSubscriber.complete();
            let work$: Observable<R>;
            try {
              work$ = work(env.job);
            } catch (err) {
              return failWith(err);
            }
            inner = work$.subscribe({
              next: (v) => jobSubscriber.next(v),
              error: failWith,
              complete: () => jobSubscriber.complete(),
            });
          });
          return () => {
            inner?.unsubscribe();
            done();
            settle(env);
          };
        });
      source.pipe(
        // Admission decides once, in arrival order, before anything can queue. A refused job is
        // answered straight to the subscriber (never queued, never grouped); only admitted jobs
        // go on, keyed once.
        map((job): Envelope<J> | null => {
          const k = key(job);
          const mine = perKey.get(k) ?? 0;
          // Both hops below (group mergeMap, then the worker) are synchronous, so the counts seen
          // here are current: under its player's limit with a worker free, the job runs at once and
          // never waits. Without this, queueMax = 0 would refuse every job, even on an idle gate.
          const startsNow = mine < playerConcurrency && pool.busy < pool.concurrency;
          // admitted − busy is exactly the jobs waiting (in a group or for a worker).
          if (!startsNow && admitted - pool.busy >= queueMax) {
            subscriber.next(reject(job));
            return null;
          }
          admitted++;
          perKey.set(k, mine + 1);
          onDepth?.(admitted);
          return { job, key: k, settled: false, onSettled: null };
        }),
        filter((env): env is Envelope<J> => env !== null),
        groupByPlayer({ key: (e) => e.key, lingerMs, scheduler }),
        mergeMap((group$) => runGroup(group$)),
      ).subscribe(subscriber);

      /**
       * One player's jobs, up to `playerConcurrency` at once, in arrival order.
       * why not composed (`mergeMap(runJob, playerConcurrency)`): mergeMap's limit is fixed when the
       * group starts, and a busy player's group never ends, so a reloaded limit would never reach it.
       */
      function runGroup(group$: Observable<Envelope<J>>): Observable<R> {
        return new Observable<R>((gs) => {
          const waiting = new Fifo<Envelope<J>>();
          let active = 0;
          let ended = false; // the group's source completed
          const inners = new Subscription();
          const drain = (): void => {
            while (active < playerConcurrency && waiting.length > 0) {
              const env = waiting.shift()!;
              active++;
              let inner: Subscription | null = null;
              let finished = false;
              inner = runJob(env).subscribe({
                next: (v) => gs.next(v),
                complete: () => {
                  finished = true;
                  active--;
                  if (inner) inners.remove(inner);
                  drain();
                },
              });
              if (!finished) inners.add(inner);
            }
            if (waiting.length === 0) blocked.delete(drain);
            else blocked.add(drain);
            if (ended && active === 0 && waiting.length === 0) gs.complete();
          };
          const source = group$.subscribe({
            next: (env) => {
              waiting.push(env);
              drain();
            },
            error: (e: unknown) => gs.error(e),
            complete: () => {
              ended = true;
              drain();
            },
          });
          return () => {
            source.unsubscribe();
            blocked.delete(drain);
            inners.unsubscribe();
          };
        });
      }
    });
}

function checkLimits(playerConcurrency: number, queueMax: number): void {
  if (!(playerConcurrency >= 1)) throw new TypeError('requestPool: playerConcurrency must be >= 1');
  if (!(queueMax >= 0)) throw new TypeError('requestPool: queueMax must be >= 0');
}

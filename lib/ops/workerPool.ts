import { Observable, tap, type MonoTypeOperatorFunction } from 'rxjs';
import { Fifo } from '../fifo.js';

export interface WorkerPoolConfig {
  /** Most sources subscribed at once through `lease()` (--workers). */
  concurrency: number;
}

export interface WorkerPool {
  /**
   * Delays subscribing to the source until one of `concurrency` workers is free, FIFO; the
   * worker is released on complete, error or unsubscribe (so a cancelled wait frees nothing
   * it never held).
   * ```text
   * concurrency = 1
   * a:       ^---|            (subscribed at once)
   * b:       ....^--|         (waits for a to complete)
   * ```
   */
  lease<T>(): MonoTypeOperatorFunction<T>;
  /**
   * The same semaphore without an Observable, for the request path (one fewer subscriber per
   * request): calls `start` once a worker is free (synchronously when one is free now), and
   * returns `done`, which frees the worker or, while still waiting, withdraws from the queue.
   * `done` is idempotent.
   */
  acquire(start: () => void): () => void;
  /** Most workers held at once. */
  readonly concurrency: number;
  /**
   * Sets the most workers held at once (a reload of --workers). Growing starts waiters at once;
   * shrinking stops nothing: running work finishes, and no waiter starts until busy is under the new bound.
   */
  resize(concurrency: number): void;
  /** Workers held now (≤ concurrency). */
  readonly busy: number;
  /** Subscribers waiting for a worker. Not bounded here: admission control in front bounds it. */
  readonly waiting: number;
}

/**
 * A counting semaphore shared by many streams: the global worker pool across player groups.
 * why not composed: `mergeMap(f, n)` limits one stream; here every player group has its own
 * mergeMap (per-player order), and the global cap must span them all.
 */
interface Waiter {
  cancelled: boolean;
  start: () => void;
}

const checkConcurrency = (n: number): number => {
  if (!(Number.isInteger(n) && n > 0)) throw new TypeError('workerPool: concurrency must be a positive integer');
  return n;
};

export function workerPool(config: WorkerPoolConfig): WorkerPool {
  let concurrency = checkConcurrency(config.concurrency);
  let busy = 0; // workers held
  const queue = new Fifo<Waiter>(); // waiting subscribers, cancelled ones skipped lazily
  let waiting = 0; // entries in queue not cancelled

  const release = (): void => {
    busy--;
    startWaiters();
  };

  /** Starts waiters, oldest first, while workers are free. */
  const startWaiters = (): void => {
    while (busy < concurrency && queue.length > 0) {
      const w = queue.shift()!;
      if (w.cancelled) continue;
      waiting--;
      busy++;
      w.start();
    }
  };

  const lease =
    <T>(): MonoTypeOperatorFunction<T> =>
    (source) =>
      new Observable<T>((subscriber) => {
        let freed = false; // the worker was given back (or the wait withdrawn)
        let done: (() => void) | null = null; // from acquire; null until it returns
        let started = false; // a worker was granted and the source subscribed
        const free = (): void => {
          if (freed) return;
          freed = true;
          done?.();
        };
        // Subscribing `subscriber` itself (not a plain observer) links the chain to it before
        // the source starts, so a synchronous source sees `closed` as soon as the result is
        // unsubscribed. The worker is freed before complete/error is passed on (the next
        // waiter starts first), and on unsubscription only after the source is torn down
        // (tap's `finalize` runs after the teardown), so sources never overlap past the cap.
        const release = acquire(() => {
          started = true;
          source.pipe(tap({ error: free, complete: free, finalize: free })).subscribe(subscriber);
        });
        // A source that ended synchronously, inside acquire, could not free the worker yet.
        if (freed) release();
        else done = release;
        return () => {
          // Still waiting for a worker: withdraw. A held worker is freed by tap's finalize,
          // after the source is torn down (this teardown may run first: it was added earlier).
          if (!started) free();
        };
      });

  const acquire = (start: () => void): (() => void) => {
    let held = false; // this caller holds a worker
    let waiter: Waiter | null = null; // set while waiting for a worker
    if (busy < concurrency) {
      busy++;
      held = true;
      start();
    } else {
      waiter = {
        cancelled: false,
        start: () => {
          waiter = null;
          held = true;
          start();
        },
      };
      queue.push(waiter);
      waiting++;
    }
    return () => {
      if (waiter) {
        waiter.cancelled = true;
        waiter = null;
        waiting--;
      } else if (held) {
        held = false;
        release();
      }
    };
  };

  return {
    lease,
    acquire,
    get concurrency() {
      return concurrency;
    },
    resize(n: number) {
      concurrency = checkConcurrency(n);
      startWaiters();
    },
    get busy() {
      return busy;
    },
    get waiting() {
      return waiting;
    },
  };
}

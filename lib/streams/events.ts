import {
  EMPTY,
  Subject,
  asyncScheduler,
  defer,
  exhaustMap,
  filter,
  first,
  firstValueFrom,
  from,
  map,
  merge,
  of,
  race,
  repeat,
  startWith,
  take,
  tap,
  timer,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import { retryBackoff } from '../ops/retryBackoff.js';
import type { BackendEvent } from './backend.js';

export interface EventQueueConfig {
  /** Most events per POST /events. */
  batchMax: number;
  /** Most events waiting; past it the oldest are dropped (and counted). */
  queueMax: number;
  /**
   * How long the first event of a quiet spell waits for others before its POST goes, ms (0: at
   * once). A login storm then posts a batch per linger instead of one or two events per POST.
   */
  lingerMs?: number;
  /** Backoff between failed posts, ms. */
  baseBackoffMs: number;
  maxBackoffMs: number;
  scheduler?: SchedulerLike;
}

/**
 * The backend event queue (§3 POST /events): FIFO, so events reach the backend in order per
 * player; batched (a quiet queue's first event lingers `lingerMs` for company); each batch retried with capped backoff until it lands. Bounded by
 * `queueMax` (oldest dropped first: a backend down for long enough loses the oldest events,
 * never the gate's memory).
 */
export class EventQueue {
  private readonly queue: BackendEvent[] = [];
  /** Adapter from `enqueue` calls into the drain loop. */
  private readonly kick = new Subject<void>();
  private readonly changed = new Subject<void>();
  /** Events dropped because the queue was full. */
  dropped = 0;
  posted = 0;
  failures = 0;
  /** The drain loop: subscribe once (at the edge); it posts while there is anything queued. */
  readonly drain$: Observable<never>;

  constructor(
    private readonly post: (batch: readonly BackendEvent[]) => Promise<void>,
    private readonly cfg: EventQueueConfig,
    onError: (err: unknown, attempt: number) => void,
  ) {
    const scheduler = cfg.scheduler ?? asyncScheduler;
    let attempt = 0;
    const linger = cfg.lingerMs ?? 0;
    // When the next batch may go: at once when it is full (or there is no linger), else after the
    // linger, which ends early once a full batch is queued.
    const lingerOver$ = race(timer(linger, scheduler), this.kick.pipe(filter(() => this.queue.length >= cfg.batchMax))).pipe(take(1));
    const batchReady$ = (): Observable<unknown> => (linger === 0 || this.queue.length >= cfg.batchMax ? of(0) : lingerOver$);
    const postOnce$ = defer(() => {
      const batch = this.queue.slice(0, cfg.batchMax);
      const droppedBefore = this.dropped;
      // Overflow drops while the batch is in flight shift the front: remove only what is left of it.
      return from(this.post(batch)).pipe(map(() => Math.max(0, batch.length - (this.dropped - droppedBefore))));
    }).pipe(
      tap({ error: (e: unknown) => (this.failures++, onError(e, ++attempt)) }),
      retryBackoff({ maxRetries: Infinity, baseMs: cfg.baseBackoffMs, maxMs: cfg.maxBackoffMs, isRetryable: () => true, scheduler }),
      tap((n) => {
        attempt = 0;
        this.queue.splice(0, n);
        this.posted += n;
        this.changed.next();
      }),
      // More queued: a full batch goes at once, a partial one after the linger (a steady trickle
      // of logins must not become one POST per event).
      repeat({ delay: () => (this.queue.length === 0 ? EMPTY : batchReady$()) }),
    );
    // exhaustMap: kicks while a batch lingers or posts are ignored; `repeat` posts what came meanwhile.
    // startWith: events queued before the loop was subscribed get their wake-up too.
    this.drain$ = this.kick.pipe(
      startWith(undefined),
      filter(() => this.queue.length > 0),
      exhaustMap(() => batchReady$().pipe(exhaustMap(() => postOnce$))),
      filter(() => false),
    ) as Observable<never>;
  }

  get length(): number {
    return this.queue.length;
  }

  enqueue(ev: BackendEvent): void {
    if (this.queue.length >= this.cfg.queueMax) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push(ev);
    // The drain loop runs until the queue is empty, so only the first event wakes it (and a full
    // batch ends a linger early): no Subject emission per event.
    if (this.queue.length === 1 || this.queue.length === this.cfg.batchMax) this.kick.next();
  }

  /** Resolves true once the queue is empty, false after `timeoutMs`. */
  flushed(timeoutMs: number): Promise<boolean> {
    if (this.queue.length === 0) return Promise.resolve(true);
    return firstValueFrom(
      merge(
        this.changed.pipe(
          filter(() => this.queue.length === 0),
          map(() => true),
        ),
        timer(timeoutMs, this.cfg.scheduler ?? asyncScheduler).pipe(map(() => false)),
      ).pipe(first()),
    );
  }
}

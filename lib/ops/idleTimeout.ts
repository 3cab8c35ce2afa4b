import { Observable, asyncScheduler, tap, type MonoTypeOperatorFunction, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { GatewayError, type GatewayErrorCode } from '../errors.js';

export interface IdleTimeoutConfig {
  /** Longest silence between values, ms. Required, > 0. */
  idleMs: number;
  /** Error code raised on silence: GW_ERR_IDLE_TIMEOUT (sessions) or GW_ERR_HEARTBEAT_TIMEOUT (links). */
  code?: GatewayErrorCode;
  /** Default asyncScheduler; TestScheduler.run() virtualises it. */
  scheduler?: SchedulerLike;
}

/**
 * Errors with a GatewayError when the source is silent for `idleMs`, counted from subscription
 * and from each value. The session idle clock (REQUESTs only) and the 3× heartbeat watchdog of
 * one connection are both this operator.
 * ```text
 * frames:  -a--b-------c--|      idleMs = 4
 * result:  -a--b---#             # = GatewayError(GW_ERR_IDLE_TIMEOUT)
 * ```
 * Bound: one pending timer per subscription. Emits: `code` (default GW_ERR_IDLE_TIMEOUT).
 */
export function idleTimeout<T>({ idleMs, code = 'GW_ERR_IDLE_TIMEOUT', scheduler = asyncScheduler }: IdleTimeoutConfig): MonoTypeOperatorFunction<T> {
  if (!(idleMs > 0)) throw new TypeError('idleTimeout: idleMs must be > 0');
  // why not composed: `timeout({ each })` clears and re-arms a timer on every value, which is
  // every frame of every connection on the hot path. Here a value only notes the time; the one
  // timer, when it fires, errors if the silence is long enough or re-arms for what is left.
  return (source) =>
    new Observable<T>((subscriber) => {
      const watch = new QuietWatch(idleMs, code, scheduler, (sub: typeof subscriber, e) => sub.error(e), subscriber);
      // Source first, timer second (as RxJS `timeout` does): a value due at the very moment the
      // timer is due wins the tie.
      source.pipe(tap(() => watch.touch())).subscribe(subscriber);
      watch.arm();
      subscriber.add(watch);
    });
}

/**
 * The state machine behind `idleTimeout`, usable without an operator: each session holds one
 * for --idle-timeout (REQUESTs `touch` it). One scheduled action, re-armed lazily; its work is
 * a module function with the watch as state, so a session costs no closures here.
 */
export class QuietWatch<S = unknown> {
  /** Time of the last touch (or of creation). */
  private last: number;
  /** Touches so far, reported in the error like `timeout`'s `seen`. */
  private seen = 0;
  private action: Subscription | null = null;

  constructor(
    private idleMs: number,
    private readonly code: GatewayErrorCode,
    private readonly scheduler: SchedulerLike,
    /** Called with `subject` when the silence is long enough: one handler can serve every watch (no closure per session). */
    private readonly onExpire: (subject: S, e: GatewayError) => void,
    private readonly subject: S,
  ) {
    this.last = scheduler.now();
  }

  arm(): void {
    this.action = this.scheduler.schedule(checkQuiet, this.idleMs, this as QuietWatch);
  }

  /** A new silence bound (a reload of --idle-timeout): measured from the last touch, as before. */
  retime(idleMs: number): void {
    this.idleMs = idleMs;
    if (this.action === null) return;
    this.action.unsubscribe();
    this.action = this.scheduler.schedule(checkQuiet, Math.max(0, idleMs - (this.scheduler.now() - this.last)), this as QuietWatch);
  }

  touch(): void {
    this.last = this.scheduler.now();
    this.seen++;
  }

  unsubscribe(): void {
    this.action?.unsubscribe();
    this.action = null;
  }

  /** The timer fired: expire, or re-arm `action` for what is left of the silence. */
  tick(action: SchedulerAction<QuietWatch<S>>): void {
    const quiet = this.scheduler.now() - this.last;
    if (quiet >= this.idleMs) this.onExpire(this.subject, new GatewayError(this.code, `silent for ${this.idleMs}ms`, { seen: this.seen }));
    else action.schedule(this, this.idleMs - quiet);
  }
}

function checkQuiet(this: SchedulerAction<QuietWatch>, w?: QuietWatch): void {
  w?.tick(this);
}

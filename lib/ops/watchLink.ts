import { Observable, asyncScheduler, tap, type MonoTypeOperatorFunction, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { GatewayError } from '../errors.js';

export interface WatchLinkConfig<T> {
  /** Most time from subscription to the first value that `isHello` accepts, ms (--hello-timeout). */
  helloMs: number;
  /** Longest silence between any two values, ms (3 × --heartbeat). */
  silentMs: number;
  /** Which value is the HELLO. */
  isHello: (v: T) => boolean;
  scheduler?: SchedulerLike;
}

/**
 * One connection's two watchdogs in one operator: a HELLO must come within `helloMs`
 * (GW_ERR_HELLO_TIMEOUT), and any value counts as life, so `silentMs` without one errors with
 * GW_ERR_HEARTBEAT_TIMEOUT.
 * ```text
 * helloMs = 4, silentMs = 3
 * frames:  -p-p-p--|        (p = PING, never a HELLO)
 * result:  -p-p#             GW_ERR_HELLO_TIMEOUT at 4
 * frames:  -h-p-----p|      (h = HELLO)
 * result:  -h-p--#           GW_ERR_HEARTBEAT_TIMEOUT, 3 after the last frame
 * ```
 * why not composed: `timeout({ first })` on a filtered branch plus `timeout({ each })` is two
 * subscribers, a Subject for the branch and a timer re-armed on every frame, for every
 * connection; the gate holds tens of thousands. Here a frame only notes the time, and a single
 * timer per connection fires at the next deadline, re-arming itself when a frame came since.
 * Bound: one pending timer per subscription.
 */
export function watchLink<T>({ helloMs, silentMs, isHello, scheduler = asyncScheduler }: WatchLinkConfig<T>): MonoTypeOperatorFunction<T> {
  if (!(helloMs > 0)) throw new TypeError('watchLink: helloMs must be > 0');
  if (!(silentMs > 0)) throw new TypeError('watchLink: silentMs must be > 0');
  return (source) =>
    new Observable<T>((subscriber) => {
      const deadlines = new LinkDeadlines(helloMs, silentMs, scheduler, subscriber);
      // Source first, timer second (as RxJS `timeout` does): a value due at the very moment the
      // timer is due wins the tie.
      source.pipe(tap((v) => deadlines.frame(isHello(v)))).subscribe(subscriber);
      deadlines.arm();
      subscriber.add(deadlines);
    });
}

/**
 * The state machine behind `watchLink`, usable without an operator: the gate holds one per
 * connection inside its single per-link subscriber (see docs/architecture.md on memory). A
 * frame costs one clock read; one scheduled action per link, re-armed lazily, is the only timer.
 * The action's work is a static function with the instance as its state, so a link costs no
 * closures here.
 */
export class LinkDeadlines {
  private readonly start: number;
  /** Time of the last frame. */
  private last: number;
  private helloSeen = false;
  private action: Subscription | null = null;

  constructor(
    private readonly helloMs: number,
    private readonly silentMs: number,
    private readonly scheduler: SchedulerLike,
    /** Told when a deadline passes; an object, so a link can pass itself (no closure per link). */
    private readonly owner: { error(e: GatewayError): void },
  ) {
    this.start = this.last = scheduler.now();
  }

  /** Starts the clock (after subscribing to the source, so a frame due at a deadline wins). */
  arm(): void {
    this.action = this.scheduler.schedule(checkDeadlines, Math.min(this.helloMs, this.silentMs), this);
  }

  frame(isHello: boolean): void {
    this.last = this.scheduler.now();
    if (isHello) this.helloSeen = true;
  }

  unsubscribe(): void {
    this.action?.unsubscribe();
    this.action = null;
  }

  /** The timer fired: expire, or re-arm `action` for the next deadline. */
  tick(action: SchedulerAction<LinkDeadlines>): void {
    const now = this.scheduler.now();
    if (!this.helloSeen && now >= this.start + this.helloMs) this.owner.error(new GatewayError('GW_ERR_HELLO_TIMEOUT', `no HELLO within ${this.helloMs}ms`));
    else if (now >= this.last + this.silentMs) this.owner.error(new GatewayError('GW_ERR_HEARTBEAT_TIMEOUT', `silent for ${this.silentMs}ms`));
    else action.schedule(this, (this.helloSeen ? this.last + this.silentMs : Math.min(this.start + this.helloMs, this.last + this.silentMs)) - now);
  }
}

function checkDeadlines(this: SchedulerAction<LinkDeadlines>, d?: LinkDeadlines): void {
  d?.tick(this);
}

// Log lines that come once per session event (login, resume, detach, end) are worth reading one
// at a time and worthless by the ten thousand: a reconnect storm would spend more CPU writing
// them than serving the logins (issue 11). Past --log-sample lines a second they are counted
// instead, and one line a second says how many of each were left out.
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';

const WINDOW_MS = 1_000;

export class LogSampler {
  private windowStart = -Infinity;
  private used = 0;
  private readonly out = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    /** Lines per second written at most; 0: every line. */
    private perSecond: number,
    private readonly log: Logger,
    private readonly counter: Counter<'msg'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Writes `msg` at info unless this second's budget is spent (then it is counted). */
  info(obj: object, msg: string): void {
    if (this.on(msg)) this.log.info(obj, msg);
  }

  /**
   * True when a line `msg` at info is to be written now: callers build the line's object only
   * then (a storm must not build ten thousand objects a second for lines nobody writes).
   */
  on(msg: string): boolean {
    return this.log.isLevelEnabled('info') && this.allow(msg);
  }

  /** True when a line may be written now; false: counted as sampled out. */
  allow(msg: string): boolean {
    if (this.perSecond === 0) return true;
    const t = this.now();
    if (t - this.windowStart >= WINDOW_MS) this.roll(t);
    if (this.used < this.perSecond) {
      this.used++;
      return true;
    }
    this.out.set(msg, (this.out.get(msg) ?? 0) + 1);
    // The window's summary is due even if no line comes after the storm.
    this.timer ??= setTimeout(() => this.roll(this.now()), Math.max(0, this.windowStart + WINDOW_MS - t)).unref();
    return false;
  }

  /** Ends the window: what was left out is counted and said in one line. */
  private roll(t: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.out.size > 0) {
      const sampledOut: Record<string, number> = {};
      for (const [msg, n] of this.out) {
        this.counter.inc({ msg }, n);
        sampledOut[msg] = n;
      }
      this.out.clear();
      this.log.info({ sampledOut, perSecond: this.perSecond }, 'log lines sampled out');
    }
    this.windowStart = t;
    this.used = 0;
  }

  /** A reload of --log-sample. */
  setRate(perSecond: number): void {
    this.perSecond = perSecond;
  }

  /** Says what is pending now (shutdown). */
  flush(): void {
    if (this.out.size > 0) this.roll(this.now());
  }
}

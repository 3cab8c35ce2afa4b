/** One push kept for replay. */
export interface KeptPush {
  readonly seq: number;
  readonly route: number;
  /** Uncompressed body; owned (never a view of a receive buffer). */
  readonly body: Buffer;
}

/**
 * The per-session replay buffer (§2.4): pushes in seq order, trimmed by ACK, at most `max`
 * kept (the oldest dropped first). Remembers the highest seq ever dropped unacked, which is
 * what decides `gap` on resume. A deque over a plain array: no per-session preallocation,
 * so an idle session costs a few words.
 */
export class PushBuffer {
  private items: KeptPush[] = [];
  /** Index of the oldest kept push in `items`. */
  private head = 0;
  /** Highest seq the client ACKed. */
  acked = 0;
  /** Highest seq dropped by overflow before being ACKed (0 = none). */
  droppedUpTo = 0;
  /** Pushes dropped by overflow, ever. */
  dropped = 0;

  constructor(private readonly max: number) {
    if (!(max >= 1)) throw new TypeError('PushBuffer: max must be >= 1');
  }

  get size(): number {
    return this.items.length - this.head;
  }

  /** Seq of the newest kept push (0 when none is kept). */
  get newest(): number {
    return this.items.length > this.head ? this.items[this.items.length - 1]!.seq : 0;
  }

  /** Keeps a push; returns true when an older one had to be dropped to make room. */
  add(p: KeptPush): boolean {
    this.items.push(p);
    if (this.size <= this.max) return false;
    const old = this.items[this.head]!;
    this.items[this.head++] = undefined as unknown as KeptPush;
    this.droppedUpTo = old.seq;
    this.dropped++;
    this.compact();
    return true;
  }

  /** The client has everything up to `seq`: forget those pushes. */
  ack(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    while (this.head < this.items.length && this.items[this.head]!.seq <= seq) {
      this.items[this.head++] = undefined as unknown as KeptPush;
    }
    this.compact();
  }

  /** True when some push after `lastSeq` was dropped before the client had it. */
  gapAfter(lastSeq: number): boolean {
    return this.droppedUpTo > Math.max(lastSeq, this.acked);
  }

  /** Kept pushes with seq > lastSeq, in order. */
  after(lastSeq: number): KeptPush[] {
    const out: KeptPush[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const p = this.items[i]!;
      if (p.seq > lastSeq) out.push(p);
    }
    return out;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 32 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

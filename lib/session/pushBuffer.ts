/** One push kept for replay. */
export interface KeptPush {
  readonly seq: number;
  readonly route: number;
  /** Uncompressed body; owned (never a view of a receive buffer). */
  readonly body: Buffer;
}

/**
 * The per-session replay buffer (§2.4): pushes in seq order, trimmed by ACK, at most `max`
 * kept and at most `maxBytes` of bodies (the oldest dropped first). Remembers the highest seq it
 * no longer holds, whether ACKed or dropped, which is what decides `gap` on resume. A deque
 * over a plain array: no per-session preallocation, so an idle session costs a few words.
 */
export class PushBuffer {
  private items: KeptPush[] = [];
  /** Index of the oldest kept push in `items`. */
  private head = 0;
  /** Highest seq the client ACKed. */
  acked = 0;
  /**
   * Highest seq removed from the buffer, by ACK or by the bound (0 = none). Both remove from the
   * oldest end, so every push at or below it is gone and every one above it is still kept.
   */
  forgottenUpTo = 0;
  /** Pushes dropped by overflow, ever. */
  dropped = 0;

  /** Body bytes of the kept pushes. */
  bytes = 0;

  constructor(
    private max: number,
    /** Body bytes kept at most (the newest push is always kept, whatever its size). */
    private maxBytes = Infinity,
  ) {
    checkBounds(max, maxBytes);
  }

  get size(): number {
    return this.items.length - this.head;
  }

  /** Seq of the newest kept push (0 when none is kept). */
  get newest(): number {
    return this.items.length > this.head ? this.items[this.items.length - 1]!.seq : 0;
  }

  /** New bounds (a reload of --buffer-max, --buffer-max-bytes); returns how many of the oldest were dropped to meet them. */
  setBounds(max: number, maxBytes: number): number {
    checkBounds(max, maxBytes);
    this.max = max;
    this.maxBytes = maxBytes;
    return this.trim();
  }

  /** Keeps a push; returns how many older ones were dropped to make room (by count or bytes). */
  add(p: KeptPush): number {
    this.items.push(p);
    this.bytes += p.body.length;
    return this.trim();
  }

  private trim(): number {
    let dropped = 0;
    while (this.size > this.max || (this.bytes > this.maxBytes && this.size > 1)) {
      const old = this.items[this.head]!;
      this.items[this.head++] = undefined as unknown as KeptPush;
      this.bytes -= old.body.length;
      this.forgottenUpTo = old.seq;
      dropped++;
    }
    if (dropped > 0) {
      this.dropped += dropped;
      this.compact();
    }
    return dropped;
  }

  /** The client has everything up to `seq`: forget those pushes. */
  ack(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    while (this.head < this.items.length && this.items[this.head]!.seq <= seq) {
      const old = this.items[this.head]!;
      this.bytes -= old.body.length;
      this.forgottenUpTo = old.seq;
      this.items[this.head++] = undefined as unknown as KeptPush;
    }
    this.compact();
  }

  /**
   * True when some push with seq > `lastSeq` can no longer be replayed: dropped by the bound, or
   * forgotten after an ACK from a client that has since lost it (resuming below its own ACK).
   * False with no pushes yet, and for a `lastSeq` at or above the newest push.
   */
  gapAfter(lastSeq: number): boolean {
    return this.forgottenUpTo > Math.max(lastSeq, 0); // seqs start at 1: 0 = nothing forgotten
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

function checkBounds(max: number, maxBytes: number): void {
  if (!(max >= 1)) throw new TypeError('PushBuffer: max must be >= 1');
  if (!(maxBytes >= 0)) throw new TypeError('PushBuffer: maxBytes must be >= 0');
}

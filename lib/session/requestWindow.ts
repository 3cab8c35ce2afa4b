import { frame, type Frame, type FrameTypeCode } from '../frame.js';

/** What to do with an incoming REQUEST seq (§2.5). */
export type WindowVerdict =
  /** First time seen: run it. */
  | { readonly kind: 'new' }
  /** Seen and still running: its answer will come when it completes. */
  | { readonly kind: 'running' }
  /** Seen and answered: send this frame again. */
  | { readonly kind: 'done'; readonly answer: Frame }
  /** Below the window, or lower than a newer seq without having been seen: ERROR STALE_REQUEST. */
  | { readonly kind: 'stale' };

const NEW: WindowVerdict = { kind: 'new' };
const RUNNING_V: WindowVerdict = { kind: 'running' };
const STALE: WindowVerdict = { kind: 'stale' };

// Entry states.
const RUNNING = 1;
const DONE = 2;
/** Refused before it ran (OVERLOADED): a re-send may run it. */
const NOT_RUN = 3;

/** Fields of one entry in `meta`. */
const SEQ = 0;
/** state | type << 8 | route << 16 */
const INFO = 1;
const OFF = 2;
const LEN = 3;
const FIELDS = 4;

/**
 * The per-session request window (§2.5): the outcome of the last `size` request seqs, so a
 * REQUEST re-sent after a resume is answered from memory instead of running upstream twice.
 *
 * Entries sit in a ring in seq order (seqs must increase), as numbers in one Uint32Array, and
 * answer bodies are copied into one arena buffer per session. why not a Map of answer frames:
 * each kept answer was three or four heap objects that lived for `size` requests, long enough
 * to be promoted; at a few thousand requests a second they filled the old generation, and its
 * collections put 10–30 ms pauses on the request path (p99 5–10 ms at half the peak rate). Here
 * an answer costs a copy of its bytes and no object that outlives the request.
 *
 * Bounds: `size` entries, and the oldest leave early while the answers kept hold more than
 * `maxBytes` (the newest always stays). The arena is compacted when full and holds at most
 * about twice the bytes kept.
 */
export class RequestWindow {
  /** Ring of `size` entries × FIELDS; created on first use: most sessions sit idle. */
  private meta: Uint32Array | null = null;
  /** Ring index of the oldest entry, and how many there are. */
  private head = 0;
  private count = 0;
  /** Highest seq admitted. */
  private highest = 0;
  /** Answer bodies; entries point into it. */
  private arena: Buffer | null = null;
  /** Arena bytes written since the last compaction. */
  private used = 0;
  /** Body bytes of the answers kept. */
  private bytes = 0;

  constructor(
    private readonly size: number,
    /** Answer bytes kept at most: past it the oldest seqs leave the window early (re-sending one is then STALE_REQUEST). */
    private readonly maxBytes = Infinity,
  ) {
    if (!(size >= 1)) throw new TypeError('RequestWindow: size must be >= 1');
  }

  /** Classifies `seq` and, when new, records it as running. seq 0 (notify) is never windowed. */
  admit(seq: number): WindowVerdict {
    const i = seq > this.highest ? -1 : this.find(seq); // a new seq needs no search
    if (i >= 0) {
      const m = this.meta!;
      const info = m[i + INFO]!;
      switch (info & 0xff) {
        case NOT_RUN:
          m[i + INFO] = RUNNING;
          return NEW;
        case RUNNING:
          return RUNNING_V;
        default:
          // A copy: the arena moves when compacted.
          return { kind: 'done', answer: frame(((info >>> 8) & 0xff) as FrameTypeCode, seq, Buffer.from(this.arena!.subarray(m[i + OFF], m[i + OFF]! + m[i + LEN]!)), info >>> 16) };
      }
    }
    if (seq <= this.highest) return STALE;
    this.highest = seq;
    if (this.count === this.size) this.evictOldest();
    const m = (this.meta ??= new Uint32Array(this.size * FIELDS));
    const j = this.at(this.count++);
    m[j + SEQ] = seq;
    m[j + INFO] = RUNNING;
    m[j + LEN] = 0;
    return NEW;
  }

  /** Records the answer of a seq in the window (ignored if it already left). */
  complete(seq: number, answer: Frame): void {
    const i = this.find(seq);
    if (i < 0) return;
    const m = this.meta!;
    if ((m[i + INFO]! & 0xff) === DONE) this.bytes -= m[i + LEN]!;
    m[i + INFO] = RUNNING; // not DONE while the arena may be compacted below
    const len = answer.body.length;
    const off = this.alloc(len);
    this.arena!.set(answer.body, off);
    m[i + INFO] = DONE | (answer.type << 8) | (answer.route << 16);
    m[i + OFF] = off;
    m[i + LEN] = len;
    this.bytes += len;
    // Keep the newest seqs within the byte bound (the one just answered always stays).
    while (this.bytes > this.maxBytes && this.count > 1) this.evictOldest();
  }

  /** True while `seq` is in the window and has no answer yet. */
  isRunning(seq: number): boolean {
    const i = this.find(seq);
    return i >= 0 && (this.meta![i + INFO]! & 0xff) === RUNNING;
  }

  /** The seq was refused without running (OVERLOADED): a re-send of it runs, once. */
  forget(seq: number): void {
    const i = this.find(seq);
    if (i < 0) return;
    const m = this.meta!;
    if ((m[i + INFO]! & 0xff) === DONE) this.bytes -= m[i + LEN]!;
    m[i + INFO] = NOT_RUN;
  }

  get length(): number {
    return this.count;
  }

  /** Index in `meta` of `seq`'s entry, or -1. Seqs increase along the ring: the newest is checked first (the usual answer), then a binary search. */
  private find(seq: number): number {
    const n = this.count;
    if (n === 0) return -1;
    const m = this.meta!;
    const last = this.at(n - 1);
    if (m[last + SEQ] === seq) return last;
    let lo = 0;
    let hi = n - 2;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const j = this.at(mid);
      const s = m[j + SEQ]!;
      if (s === seq) return j;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Index in `meta` of the k-th oldest entry. */
  private at(k: number): number {
    return ((this.head + k) % this.size) * FIELDS;
  }

  private evictOldest(): void {
    const m = this.meta!;
    const j = this.head * FIELDS;
    if ((m[j + INFO]! & 0xff) === DONE) this.bytes -= m[j + LEN]!;
    this.head = (this.head + 1) % this.size;
    if (--this.count === 0) {
      this.head = 0;
      this.used = 0; // nothing points into the arena any more
    }
  }

  /** Room for `len` bytes in the arena; compacts (or grows) it when full. */
  private alloc(len: number): number {
    if (this.arena !== null && this.used + len <= this.arena.length) {
      const off = this.used;
      this.used += len;
      return off;
    }
    // The new arena holds the kept answers and this one with as much room again, so copying
    // stays amortized O(1) per byte; it shrinks as well once big answers have left.
    const next = Buffer.allocUnsafeSlow(Math.max(256, 2 * (this.bytes + len)));
    let used = 0;
    const m = this.meta!;
    for (let k = 0; k < this.count; k++) {
      const j = this.at(k);
      if ((m[j + INFO]! & 0xff) !== DONE) continue;
      const off = m[j + OFF]!;
      const n = m[j + LEN]!;
      next.set(this.arena!.subarray(off, off + n), used);
      m[j + OFF] = used;
      used += n;
    }
    this.arena = next;
    this.used = used + len;
    return used;
  }
}

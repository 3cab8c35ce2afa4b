import type { Frame } from './frame.js';

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
const RUNNING: WindowVerdict = { kind: 'running' };
const STALE: WindowVerdict = { kind: 'stale' };
/** Marks a seq that was refused before it ran (OVERLOADED): a re-send may run it. */
const NOT_RUN = Symbol('not run');

/**
 * The per-session request window (§2.5): the outcome of the last `size` request seqs, so a
 * REQUEST re-sent after a resume is answered from memory instead of running upstream twice.
 * A Map keeps insertion order, which is seq order because seqs must increase. Bound: `size`
 * entries (each answer at most --max-frame bytes).
 */
export class RequestWindow {
  /** seq → answer frame, null while running, NOT_RUN when refused before running. Created on first use: most sessions sit idle. */
  private entries: Map<number, Frame | null | typeof NOT_RUN> | null = null;
  /** Highest seq admitted. */
  private highest = 0;

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
    const entries = (this.entries ??= new Map<number, Frame | null | typeof NOT_RUN>());
    const e = entries.get(seq);
    if (e === NOT_RUN) {
      entries.set(seq, null);
      return NEW;
    }
    if (e !== undefined) return e === null ? RUNNING : { kind: 'done', answer: e };
    if (seq <= this.highest) return STALE;
    this.highest = seq;
    entries.set(seq, null);
    if (entries.size > this.size) this.evictOldest(entries);
    return NEW;
  }

  /** Records the answer of a running seq (ignored if it already left the window). */
  complete(seq: number, answer: Frame): void {
    const entries = this.entries;
    if (!entries?.has(seq)) return;
    entries.set(seq, answer);
    this.bytes += answer.body.length;
    // Keep the newest seqs within the byte bound (the one just answered always stays).
    while (this.bytes > this.maxBytes && entries.size > 1) this.evictOldest(entries);
  }

  private evictOldest(entries: Map<number, Frame | null | typeof NOT_RUN>): void {
    const oldest = entries.keys().next().value as number;
    const e = entries.get(oldest);
    if (e !== null && e !== NOT_RUN && e !== undefined) this.bytes -= e.body.length;
    entries.delete(oldest);
  }

  /** The seq was refused without running (OVERLOADED): a re-send of it runs, once. */
  forget(seq: number): void {
    if (this.entries?.has(seq)) this.entries.set(seq, NOT_RUN);
  }

  get length(): number {
    return this.entries?.size ?? 0;
  }
}

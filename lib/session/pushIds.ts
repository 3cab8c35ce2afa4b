/**
 * The client-chosen ids of a session's recent pushes (`id` on /v1/push and on batch items), so
 * a push the backend POSTs again (a retry after an answer it never got) is stored once.
 * Bounded: the ids of the last `max` pushes that carried one; an id older than that is taken
 * as new. A Map keeps insertion order, so the oldest id is its first key. A session creates
 * one on its first push with an id.
 */
export class PushIds {
  private readonly seqs = new Map<string, number>();

  constructor(private readonly max: number) {
    if (!(max >= 1)) throw new TypeError('PushIds: max must be >= 1');
  }

  /** The seq the push with this id got, if it is still remembered. */
  seqOf(id: string): number | undefined {
    return this.seqs.get(id);
  }

  remember(id: string, seq: number): void {
    if (this.seqs.size >= this.max) {
      const oldest = this.seqs.keys().next();
      if (!oldest.done) this.seqs.delete(oldest.value);
    }
    this.seqs.set(id, seq);
  }

  get size(): number {
    return this.seqs.size;
  }
}

/** How many push ids a session remembers: the last max(--buffer-max, PUSH_IDS_MIN) pushes with one. */
export const PUSH_IDS_MIN = 1024;

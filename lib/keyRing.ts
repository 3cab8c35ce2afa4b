/**
 * A secret that can be rolled without a flag day (`--api-key`, `--jwt-secret` on a reload):
 * the new value is accepted at once, and the previous one for `--key-grace` more, so backends
 * and token issuers can switch over while the gate runs. Each secret is also kept in the form
 * its checker compares (`encode`, run once per roll rather than per check).
 */
export class KeyRing<K = string> {
  private previous: string | null = null;
  private previousKey: K | null = null;
  /** When the previous secret stops being accepted (clock of `now`). */
  private previousUntil = 0;
  private currentKey: K | null;

  constructor(
    private current: string | null,
    private readonly now: () => number = Date.now,
    private readonly encode: (secret: string) => K = (s) => s as unknown as K,
  ) {
    this.currentKey = current === null ? null : encode(current);
  }

  /** Makes `next` the secret; the one it replaces stays accepted for `graceMs`. */
  roll(next: string | null, graceMs: number): void {
    if (next === this.current) return;
    this.previous = this.current;
    this.previousKey = this.currentKey;
    this.previousUntil = this.now() + graceMs;
    this.current = next;
    this.currentKey = next === null ? null : this.encode(next);
  }

  /** The secret set now; null = none. */
  get value(): string | null {
    return this.current;
  }

  /** The secrets accepted now, the current one first. A null in the list means "no secret" (open) is accepted. */
  accepted(): readonly (string | null)[] {
    return this.inGrace() ? [this.current, this.previous] : [this.current];
  }

  /** `accepted()` in encoded form. */
  keys(): readonly (K | null)[] {
    return this.inGrace() ? [this.currentKey, this.previousKey] : [this.currentKey];
  }

  private inGrace(): boolean {
    return this.previous !== this.current && this.now() < this.previousUntil;
  }
}

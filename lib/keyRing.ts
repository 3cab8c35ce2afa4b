/**
 * A secret that can be rolled without a flag day (`--api-key`, `--jwt-secret` on a reload):
 * the new value is accepted at once, and the previous one for `--key-grace` more, so backends
 * and token issuers can switch over while the gate runs.
 */
export class KeyRing {
  private previous: string | null = null;
  /** When the previous secret stops being accepted (clock of `now`). */
  private previousUntil = 0;

  constructor(
    private current: string | null,
    private readonly now: () => number = Date.now,
  ) {}

  /** Makes `next` the secret; the one it replaces stays accepted for `graceMs`. */
  roll(next: string | null, graceMs: number): void {
    if (next === this.current) return;
    this.previous = this.current;
    this.previousUntil = this.now() + graceMs;
    this.current = next;
  }

  /** The secret set now; null = none. */
  get value(): string | null {
    return this.current;
  }

  /** The secrets accepted now, the current one first. A null in the list means "no secret" (open) is accepted. */
  accepted(): readonly (string | null)[] {
    if (this.previous !== this.current && this.now() < this.previousUntil) return [this.current, this.previous];
    return [this.current];
  }
}

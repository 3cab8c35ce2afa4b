import { Observable } from 'rxjs';
import type { GateFrame } from './codec.js';

/**
 * The inbound side of a client link, shared by the TCP and WebSocket transports: `frames$` for
 * one subscriber at a time, ended once (complete, or error with the link's failure), and a
 * subscriber that comes after the end still learns how it ended. Browser-safe.
 */
export class LinkFrames {
  /** Closed by either side (or given up on). */
  ended = false;
  /** The error frames$ ends with, if any. */
  failure: unknown = null;
  private sink: { next(f: GateFrame): void; error(e: unknown): void; complete(): void } | null = null;

  readonly frames$ = new Observable<GateFrame>((s) => {
    if (this.ended) {
      if (this.failure !== null) s.error(this.failure);
      else s.complete();
      return;
    }
    this.sink = s;
    return () => {
      if (this.sink === s) this.sink = null;
    };
  });

  next(f: GateFrame): void {
    this.sink?.next(f);
  }

  /** Remembers the first error seen before the end, so frames$ ends with it. */
  noteFailure(err: unknown): void {
    this.failure ??= err;
  }

  finish(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    if (err !== null) this.failure = err;
    const s = this.sink;
    this.sink = null;
    if (this.failure !== null) s?.error(this.failure);
    else s?.complete();
  }

  /** The transport is being torn down: nobody listens any more. */
  detach(): void {
    this.sink = null;
  }
}

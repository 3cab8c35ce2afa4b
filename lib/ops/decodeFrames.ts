import { Observable, ignoreElements, tap, type OperatorFunction } from 'rxjs';
import type { Frame } from '../frame.js';
import { FrameDecoder } from '../frameDecoder.js';

export interface DecodeFramesConfig {
  /** Largest body accepted, bytes (--max-frame). */
  maxFrame: number;
}

/**
 * Turns a stream of TCP chunks, split anywhere, into frames. Malformed input errors the stream
 * with a GatewayError (GW_ERR_FRAME_*) after the frames that preceded it.
 * ```text
 * chunks:  -a---b--c---|       a+b hold frame 1, c holds frames 2 and 3
 * result:  -----1--(23)|
 * ```
 * Bound: at most 12 + maxFrame bytes buffered (FrameDecoder checks the length prefix first).
 */
export function decodeFrames({ maxFrame }: DecodeFramesConfig): OperatorFunction<Buffer, Frame> {
  if (!(maxFrame > 0)) throw new TypeError('decodeFrames: maxFrame must be > 0');
  // why not composed: mergeMap over an array would allocate one per chunk; the decoder emits
  // straight into the subscriber instead, and a decoder per subscription keeps it pure.
  return (source) =>
    new Observable<Frame>((subscriber) => {
      const decoder = new FrameDecoder(maxFrame);
      const emit = (f: Frame): void => subscriber.next(f);
      // Subscribing `subscriber` itself (not a plain observer) links the chain to it before the
      // source starts, so a synchronous source sees `closed` as soon as the result is
      // unsubscribed; a plain observer's subscription is only known once subscribe() returns.
      source
        .pipe(
          tap((chunk) => {
            const err = decoder.push(chunk, emit);
            if (err) subscriber.error(err);
          }),
          ignoreElements(),
        )
        .subscribe(subscriber);
    });
}

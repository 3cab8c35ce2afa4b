import { Fifo } from '../fifo.js';
import { Observable, Subscriber, type OperatorFunction } from 'rxjs';

export interface PaceByCreditConfig<T> {
  /** Units (bytes) that may be out at once: emitted and not yet given back by `credit$`. > 0. */
  budget: number;
  /** The units one value takes. */
  size: (v: T) => number;
}

/**
 * Credit-based flow control: emits source values while what is out (emitted, not yet credited
 * back) stays within `budget`, holds the rest until `credit$` gives units back. A value larger
 * than the budget still goes out alone, so nothing stalls. The gate's replay on resume is this:
 * kept pushes out to half of --outbound-max, each socket flush crediting its bytes back.
 * ```text
 * budget = 2, every value size 1
 * source:  (abcd|)
 * credit$: ----1---2
 * result:  (ab)c---(d|)
 * ```
 * why not composed: the queue and the count of units out are updated from two streams (values
 * and credits) and read on every step; as a scan over a merge the state would be rebuilt per
 * event and the completion rule (source done and queue empty) split across operators.
 * Bound: the queue holds at most what the source emitted and is not yet out (the gate's source
 * is a snapshot of the replay buffer: at most --buffer-max values).
 */
export function paceByCredit<T>(credit$: Observable<number>, { budget, size }: PaceByCreditConfig<T>): OperatorFunction<T, T> {
  if (!(budget > 0)) throw new TypeError('paceByCredit: budget must be > 0');
  return (source) =>
    new Observable<T>((subscriber) => {
      const queue = new Fifo<T>(); // values waiting for room
      let out = 0; // units emitted and not yet credited back
      let sourceDone = false;
      const drain = (): void => {
        while (queue.length > 0) {
          const v = queue.peek()!;
          let n: number;
          try {
            n = size(v);
          } catch (e) {
            subscriber.error(e);
            return;
          }
          if (out > 0 && out + n > budget) break;
          queue.shift();
          out += n;
          subscriber.next(v);
          if (subscriber.closed) return;
        }
        if (queue.length === 0 && sourceDone) subscriber.complete();
      };
      subscriber.add(
        credit$.subscribe({
          next: (n) => {
            out = Math.max(0, out - n);
            drain();
          },
          error: (e: unknown) => subscriber.error(e),
        }),
      );
      // A Subscriber added to ours before the source starts: a synchronous source sees `closed`
      // as soon as the result is unsubscribed (a plain observer would not).
      const input = new Subscriber<T>({
        next: (v: T) => {
          queue.push(v);
          drain();
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => {
          sourceDone = true;
          drain();
        },
      });
      subscriber.add(input);
      source.subscribe(input);
    });
}

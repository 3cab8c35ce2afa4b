/**
 * Bounded waiting for tests. Nothing here sleeps for a fixed time to "let things settle": every
 * wait is for a named condition, and fails after a bound with a message saying what it waited for.
 */

/** Polls after this many setImmediate turns switch to a short timer, so a long wait does not spin a core. */
const IMMEDIATE_POLLS = 20;
/** Interval of the timer-based polls, ms. */
const POLL_MS = 2;

/**
 * Resolves with the first value of `fn()` that is not `undefined`, `null` or `false`, polling on
 * setImmediate and then on a short timer. Rejects with `Error("timed out after Nms waiting for <what>")`
 * after `timeoutMs`, or with whatever `fn` throws.
 */
export function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    let polls = 0; // how many times fn has been called
    const poll = (): void => {
      let v: T | undefined | null | false;
      try {
        v = fn();
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      if (v !== undefined && v !== null && v !== false) {
        resolve(v);
        return;
      }
      if (Date.now() >= deadline) {
        reject(new Error(`timed out after ${timeoutMs}ms waiting for ${what}`));
        return;
      }
      if (++polls < IMMEDIATE_POLLS) setImmediate(poll);
      else setTimeout(poll, POLL_MS);
    };
    poll();
  });
}

/**
 * Settles like `p`, or rejects with `Error("timed out after <ms>ms waiting for <what>")` if `p` has not
 * settled within `ms`. The timer is cleared either way, so it never holds the process open.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Polls an async condition, one call at a time, until it holds; bounded like waitFor. */
export async function waitForAsync(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  let ok = false;
  let busy = false;
  await waitFor(
    what,
    () => {
      if (!busy) {
        busy = true;
        // A check that throws (a request to a process that is restarting) counts as not yet.
        void check()
          .then((v) => (ok = v), () => (ok = false))
          .finally(() => (busy = false));
      }
      return ok;
    },
    timeoutMs,
  );
}

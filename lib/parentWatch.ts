// Ends a child process with its parent, however the parent ended (SIGKILL included), so a
// benchmark or a test never leaves a gate, a backend or a baseline running on its own.
//
// Two ways to notice, one per kind of parent:
// - an IPC channel (`stdio: [..., 'ipc']`): the kernel closes it the moment the parent dies, and
//   node emits 'disconnect' at once. gate bench and the test helpers start every child this way;
//   the channel survives `taskset` because exec keeps inherited descriptors.
// - polling the parent's pid (`pollParent`), for a process whose parent did not give it a
//   channel (node's test runner and its test files, preloaded by scripts/run-tests.mjs).
import { readFileSync } from 'node:fs';

/** The environment variable gate bench sets on every child it starts (and reads back from /proc in tests). */
export const RUN_MARKER_ENV = 'GATE_BENCH_RUN';

/**
 * Calls `onGone` once when this process's IPC channel to its parent closes, also when it closed
 * before this call (a parent killed while the child was still loading its modules). Does nothing
 * (and returns false) for a process started without a channel. The channel is unref'd: it never
 * keeps the process alive by itself.
 */
export function onParentGone(onGone: () => void): boolean {
  // `process.connected` is undefined without a channel, false once it has closed.
  if (process.connected === false) {
    process.nextTick(onGone);
    return true;
  }
  const channel = process.channel;
  if (!channel) return false;
  process.once('disconnect', onGone);
  // Listening for 'disconnect' refs the channel; a command that is done must still exit.
  channel.unref();
  return true;
}

/** The current parent pid from /proc (process.ppid is read once at start and never changes). */
function currentParent(): number | null {
  try {
    // /proc/self/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    const stat = readFileSync('/proc/self/stat', 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/**
 * Calls `onGone` once when the parent this process started with is gone (it was re-parented),
 * checking every `everyMs`. The timer is unref'd. Returns the stopper.
 */
export function pollParent(onGone: () => void, everyMs = 250): () => void {
  const parent = process.ppid;
  const gone = (): boolean => {
    const now = currentParent();
    if (now !== null) return now !== parent;
    try {
      process.kill(parent, 0); // no /proc: is the original parent still there?
      return false;
    } catch {
      return true;
    }
  };
  const t = setInterval(() => {
    if (!gone()) return;
    clearInterval(t);
    onGone();
  }, everyMs);
  t.unref();
  return () => clearInterval(t);
}

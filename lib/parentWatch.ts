// Ends a child process with its parent, however the parent ended (SIGKILL included), so a
// benchmark or a test never leaves a gate, a backend or a baseline running on its own.
//
// The child notices through an IPC channel (`stdio: [..., 'ipc']`): the kernel closes it the
// moment the parent dies, and node emits 'disconnect' at once. gate bench and the test helpers
// start every child this way; the channel survives `taskset` because exec keeps inherited
// descriptors. (Processes whose parent gives them no channel, npm test's runner and test files,
// poll their parent instead: scripts/exit-with-parent.mjs.)
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';

/** The environment variable gate bench sets on every child it starts (and reads back from /proc in tests). */
export const RUN_MARKER_ENV = 'GATE_BENCH_RUN';

/** How often a child with a channel also checks that its parent is still its parent, ms. */
const PARENT_POLL_MS = 1_000;

/**
 * Calls `onGone` once when this process's IPC channel to its parent closes, also when it closed
 * before this call (a parent killed while the child was still loading its modules). As a
 * backstop it also polls the parent pid (re-parenting is certain when the parent dies, whatever
 * became of the channel). Does nothing (and returns false) for a process started without a
 * channel. Neither the channel nor the poll keeps the process alive by itself.
 */
export function onParentGone(onGone: () => void): boolean {
  let called = false;
  const once = (): void => {
    if (called) return;
    called = true;
    clearInterval(poll);
    onGone();
  };
  const parent = process.ppid;
  const poll = setInterval(() => {
    if (parentNow() !== parent) once();
  }, PARENT_POLL_MS);
  poll.unref();
  // `process.connected` is undefined without a channel, false once it has closed.
  if (process.connected === false) {
    process.nextTick(once);
    return true;
  }
  const channel = process.channel;
  if (!channel) {
    clearInterval(poll);
    return false;
  }
  process.once('disconnect', once);
  // Listening for 'disconnect' refs the channel; a command that is done must still exit. (Not a
  // --procs worker: node:cluster answers its listen() over the channel, and an unref'd channel
  // lets the worker exit while it waits.)
  if (!cluster.isWorker) channel.unref();
  return true;
}

/** This process's parent pid now, from /proc (process.ppid is read once at start); the start value elsewhere. */
function parentNow(): number {
  try {
    // /proc/self/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    const stat = readFileSync('/proc/self/stat', 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return process.ppid;
  }
}

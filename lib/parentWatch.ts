// Ends a child process with its parent, however the parent ended (SIGKILL included), so a
// benchmark or a test never leaves a gate, a backend or a baseline running on its own.
//
// The child notices through an IPC channel (`stdio: [..., 'ipc']`): the kernel closes it the
// moment the parent dies, and node emits 'disconnect' at once. gate bench and the test helpers
// start every child this way; the channel survives `taskset` because exec keeps inherited
// descriptors. (Processes whose parent gives them no channel, npm test's runner and test files,
// poll their parent instead: scripts/exit-with-parent.mjs.)

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

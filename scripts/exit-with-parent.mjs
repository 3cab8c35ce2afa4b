// Preloaded (`node --import`) into npm test's check and test runner, and through the runner's
// execArgv into every test file's process: each ends when the parent it started with is gone, so
// a killed `npm test` leaves no runner or test process behind, and the gates the tests start
// follow through their IPC channel (lib/parentWatch.ts). Plain JS with no imports of dist/, so it
// works before the first build.
import { readFileSync } from 'node:fs';

/** How often the parent is checked, ms. */
const EVERY_MS = 250;
const parent = process.ppid;

/** The current parent pid from /proc (node's process.ppid may be read once at start). */
function currentParent() {
  try {
    // /proc/self/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    const stat = readFileSync('/proc/self/stat', 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

function gone() {
  const now = currentParent();
  if (now !== null) return now !== parent;
  try {
    process.kill(parent, 0); // no /proc: is the original parent still there?
    return false;
  } catch {
    return true;
  }
}

const timer = setInterval(() => {
  if (!gone()) return;
  clearInterval(timer);
  process.stderr.write(`[exit-with-parent] parent ${parent} of ${process.pid} is gone; exiting\n`);
  process.exit(1);
}, EVERY_MS);
timer.unref();

// Preloaded into node's test runner and, through its execArgv, into every test file's process
// (scripts/run-tests.mjs): each ends when its parent is gone, so a killed `npm test` leaves no
// runner or test process behind, and their gates (started with an IPC channel) follow.
import { pollParent } from '../dist/lib/parentWatch.js';

pollParent(() => {
  process.stderr.write(`[exit-with-parent] parent of ${process.pid} is gone; exiting\n`);
  process.exit(1);
});

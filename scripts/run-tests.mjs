// Runs the compiled tests with node's test runner: marbles/ and spec/ (unit, integration, properties).
// `node scripts/run-tests.mjs props` runs only the property suites (with FC_RUNS from the environment);
// `node scripts/run-tests.mjs <file>…` runs those files.
//
// This process is the runner (node:test's run(), TAP on stdout), not a parent of `node --test`:
// started as `node --import ./scripts/exit-with-parent.mjs scripts/run-tests.mjs` (package.json), it
// and every test file's process (which inherit its execArgv) end when their parent is gone, so a
// killed `npm test` leaves nothing running; the gates the tests start follow through their IPC
// channel (lib/parentWatch.ts). Node 20's `node --test` runs no --import preload in the runner itself.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run } from 'node:test';
import { tap } from 'node:test/reporters';

/** Test files run at once: one per core of the 2-core machines we test on. */
const CONCURRENCY = 3;
/**
 * Started first, longest first: liveness mostly waits on timers (18 s of wall time, 2 s of CPU), so it
 * runs beside everything else; the heavy process-spawning files then overlap the many short ones
 * instead of ending the run alone. Files not listed follow in name order.
 */
const FIRST = ['liveness', 'cluster/killed', 'cluster/operations', 'cluster/twoGates', 'orphans', 'bench', 'process', 'cli', 'requests', 'churn', 'shutdown'];
const rank = (f) => {
  const i = FIRST.findIndex((n) => f.endsWith(`/${n}.spec.js`));
  return i === -1 ? FIRST.length : i;
};
/** Per test (node's default is none): a hung test fails with its name instead of hanging CI. */
const TEST_TIMEOUT_MS = 120_000;

const walk = (dir) =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? (n === 'helpers' ? [] : walk(p)) : [p];
  });
const only = process.argv[2];
const given = process.argv.slice(2).filter((a) => /\.m?js$/.test(a));
const files = given.length > 0 ? given : ['dist/marbles', 'dist/spec']
  .flatMap((d) => {
    try {
      return walk(d);
    } catch {
      return [];
    }
  })
  .filter((f) => f.endsWith('.spec.js'))
  .filter((f) => (only === 'props' ? f.endsWith('.prop.spec.js') : true))
  .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
if (files.length === 0) {
  console.error('run-tests: no compiled tests found under dist/ (did tsc run?)');
  process.exit(1);
}
const stream = run({ files, concurrency: CONCURRENCY, timeout: TEST_TIMEOUT_MS });
stream.on('test:fail', () => {
  process.exitCode = 1;
});
// Cluster-mode specs never pass by doing nothing: a file under spec/cluster/ that ran no passing
// test (Redis missing and the file mis-handling it, a filter that matched nothing) fails the run.
const clusterFiles = files.filter((f) => /[/\\]cluster[/\\][^/\\]+\.spec\.js$/.test(f));
const passes = new Map(clusterFiles.map((f) => [f, 0]));
stream.on('test:pass', (d) => {
  // Skipped and todo tests, and suites, report test:pass too: only a test that ran counts.
  if (d.skip !== undefined || d.todo !== undefined || d.details?.type === 'suite') return;
  for (const f of passes.keys()) if (d.file?.endsWith(f.replace(/^\.\//, ''))) passes.set(f, passes.get(f) + 1);
});
stream.on('end', () => {
  for (const [f, n] of passes)
    if (n === 0) {
      console.error(`run-tests: ${f} passed no test (cluster-mode tests must run: is redis-server installed?)`);
      process.exitCode = 1;
    }
});
stream.compose(tap).pipe(process.stdout);

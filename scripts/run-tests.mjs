// Runs the compiled tests with node's test runner: marbles/ and spec/ (unit, integration, properties).
// `node scripts/run-tests.mjs props` runs only the property suites (with FC_RUNS from the environment).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const walk = (dir) =>
  readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? (n === 'helpers' ? [] : walk(p)) : [p];
  });
const only = process.argv[2];
const files = ['dist/marbles', 'dist/spec']
  .flatMap((d) => { try { return walk(d); } catch { return []; } })
  .filter((f) => f.endsWith('.spec.js'))
  .filter((f) => (only === 'props' ? f.endsWith('.prop.spec.js') : true))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no compiled tests found under dist/ (did tsc run?)');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=120000', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);

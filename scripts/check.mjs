// The checks `npm test` runs before the tests: the strict type check (which also builds dist/)
// and the type-aware lint, side by side (each is single-threaded; on 2 cores this saves the
// shorter one's time). Each one's output is printed whole when it ends; exits 1 if either fails.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const preload = fileURLToPath(new URL('./exit-with-parent.mjs', import.meta.url));
const checks = [
  { name: 'tsc', args: [join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc'), '-p', 'tsconfig.json'] },
  { name: 'eslint', args: [join(dirname(require.resolve('eslint/package.json')), 'bin', 'eslint.js'), '.'] },
];
const results = await Promise.all(
  checks.map(
    ({ name, args }) =>
      new Promise((resolve) => {
        const started = Date.now();
        // The preload ends each check with this process, as it ends this one with npm.
        const child = spawn(process.execPath, ['--import', preload, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('close', (code, signal) => {
          process.stdout.write(`${name}: ${code === 0 ? 'ok' : `failed (${signal ?? `exit ${code}`})`} in ${((Date.now() - started) / 1000).toFixed(1)} s\n${out}`);
          resolve(code === 0);
        });
      }),
  ),
);
process.exit(results.every(Boolean) ? 0 : 1);

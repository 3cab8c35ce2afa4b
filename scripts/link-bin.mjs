// After `npm install` (prepare): link this package's own `gate` bin into node_modules/.bin, so
// `npx gate serve` in a checkout runs the built gate directly. Without it, npx would install the
// checkout into its cache (and build it again there) on every first run.
import { chmodSync, existsSync, lstatSync, mkdirSync, symlinkSync, unlinkSync } from 'node:fs';

const bin = 'dist/bin/gate.js';
const link = 'node_modules/.bin/gate';
if (!existsSync(bin)) {
  console.error(`link-bin: ${bin} is missing (did the build run?)`);
  process.exit(1);
}
chmodSync(bin, 0o755);
mkdirSync('node_modules/.bin', { recursive: true });
try {
  lstatSync(link);
  unlinkSync(link);
} catch {
  /* no old link */
}
symlinkSync('../../dist/bin/gate.js', link);

/**
 * No process left behind: every child `gate bench` or a test helper starts ends with its parent,
 * on a normal exit, on an error, on SIGTERM / SIGINT, and when the parent is SIGKILLed (the child
 * sees its IPC channel close: lib/parentWatch.ts). Each test marks its run with GATE_BENCH_RUN
 * and reads /proc to find what is still running.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RUN_MARKER_ENV } from '../lib/parentWatch.js';
import { GATE_BIN, childEnv } from './helpers/gateProcess.js';
import { listeningSockets, markedProcesses, waitForNoneMarked, type Proc } from './helpers/processes.js';
import { waitFor, withTimeout } from './helpers/wait.js';

/** Bound on the children of a run starting (node start-up, gate spawn; generous for a busy machine). */
const START_MS = 30_000;
/** Bound on the children ending once their parent is gone. */
const GONE_MS = 15_000;
/** Bound on a parent exiting after its signal. */
const EXIT_MS = 30_000;

const newMarker = (): string => `orphans-${randomBytes(6).toString('hex')}`;

/** A long churn run (it never ends on its own within a test) against a gate and a trivial backend it spawns. */
const LONG_CHURN = ['--scenario', 'churn', '--cycles', '1000000', '--concurrency', '4', '--json'];

/** Starts `gate bench …` without an IPC channel of its own (like a shell would), marked. */
function startBench(args: string[], marker: string): { child: ChildProcess; exited: Promise<number | null>; out: () => string } {
  const child = spawn(process.execPath, [GATE_BIN, 'bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv({ [RUN_MARKER_ENV]: marker }) });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, out: () => out };
}

const isGate = (p: Proc): boolean => p.cmdline.includes('gate.js serve');
const isBackend = (p: Proc): boolean => p.cmdline.includes('trivialBackend.js');

/**
 * The marked processes once `ready` holds for them. Matched by command line, not counted: a child
 * between fork and exec still shows its parent's command line and environment in /proc.
 */
const processesUp = (marker: string, what: string, ready: (ps: Proc[]) => boolean): Promise<Proc[]> =>
  waitFor(what, () => {
    const ps = markedProcesses(marker);
    return ready(ps) && ps;
  }, START_MS);

/** gate bench's gate serve and trivial backend are running (exec'd). */
const benchChildrenUp = (marker: string): Promise<Proc[]> =>
  processesUp(marker, "gate bench's gate and backend to start", (ps) => ps.some(isGate) && ps.some(isBackend));

describe('no process left behind', { concurrency: 2 }, () => {
  for (const signal of ['SIGKILL', 'SIGTERM', 'SIGINT'] as const) {
    it(`should end gate bench's gate and backend when the bench gets ${signal}`, async () => {
      const marker = newMarker();
      const b = startBench(LONG_CHURN, marker);
      try {
        await benchChildrenUp(marker);
        b.child.kill(signal);
        await withTimeout(b.exited, EXIT_MS, `gate bench to exit on ${signal}`);
        await waitForNoneMarked(marker, GONE_MS);
      } finally {
        b.child.kill('SIGKILL');
        await waitForNoneMarked(marker, GONE_MS).catch(() => undefined);
      }
    });
  }

  it('should end the backend when the bench fails because its gate died (the error path), and exit 1', async () => {
    const marker = newMarker();
    const b = startBench(['--scenario', 'request', '--requests', '100000000', '--connections', '2', '--backend', 'trivial', '--warmup', '0', '--json'], marker);
    try {
      const gate = (await benchChildrenUp(marker)).find(isGate);
      assert.ok(gate, 'the spawned gate');
      // Listening on TCP, WS and API: the bench's clients are connecting or running.
      await waitFor('the spawned gate to listen', () => listeningSockets(gate.pid) >= 3, START_MS);
      process.kill(gate.pid, 'SIGKILL');
      const code = await withTimeout(b.exited, EXIT_MS, 'gate bench to notice its gate died');
      assert.equal(code, 1, b.out());
      // Its clients see the links close mid-run, or (killed before they logged in) fail to connect.
      assert.match(b.out(), /closed by the server|closed before WELCOME|ECONNREFUSED|ECONNRESET/);
      await waitForNoneMarked(marker, GONE_MS);
    } finally {
      b.child.kill('SIGKILL');
      await waitForNoneMarked(marker, GONE_MS).catch(() => undefined);
    }
  });

  it('should end the suite\'s servers when `gate bench --suite` is SIGKILLed', async () => {
    const marker = newMarker();
    const b = startBench(['--suite', '--only', 'request', '--runs', '1', '--duration', '60s', '--no-pin', '--out', ''], marker);
    try {
      await benchChildrenUp(marker); // the trivial backend and the first server under test
      b.child.kill('SIGKILL');
      await withTimeout(b.exited, EXIT_MS, 'gate bench --suite to die');
      await waitForNoneMarked(marker, GONE_MS);
    } finally {
      b.child.kill('SIGKILL');
      await waitForNoneMarked(marker, GONE_MS).catch(() => undefined);
    }
  });

  it('should end a gate started by the test helper when the test process is SIGKILLed', async () => {
    const marker = newMarker();
    // A stand-in for a test file: it starts a gate with spawnGate (spec/helpers/gateProcess.ts) and waits.
    const helper = new URL('./helpers/gateProcess.js', import.meta.url).href;
    const code = `
      const { spawnGate } = await import(${JSON.stringify(helper)});
      const g = spawnGate(['serve', '--tcp', '127.0.0.1:0', '--ws', 'off', '--api', '127.0.0.1:0', '--auth', 'none'], { ${RUN_MARKER_ENV}: ${JSON.stringify(marker)} });
      await g.waitForLog('listening', ${START_MS});
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv({ [RUN_MARKER_ENV]: marker }) });
    let out = '';
    parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
    parent.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => parent.once('exit', resolve));
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          parent.stdout.on('data', () => out.includes('ready') && resolve());
          void exited.then(() => reject(new Error(`the stand-in test exited: ${out}`)));
        }),
        START_MS,
        `the stand-in test to start its gate (${out})`,
      );
      assert.equal(markedProcesses(marker).filter(isGate).length, 1, 'its gate is running');
      parent.kill('SIGKILL');
      await withTimeout(exited, EXIT_MS, 'the stand-in test to die');
      await waitForNoneMarked(marker, GONE_MS);
    } finally {
      parent.kill('SIGKILL');
      await waitForNoneMarked(marker, GONE_MS).catch(() => undefined);
    }
  });

  it('should end a redis-server started by the test helper when the test process is SIGKILLed', async () => {
    const marker = newMarker();
    const helper = new URL('./helpers/redisServer.js', import.meta.url).href;
    const code = `
      const { startRedis } = await import(${JSON.stringify(helper)});
      const r = await startRedis();
      process.stdout.write('ready ' + r.pid + '\\n');
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv({ [RUN_MARKER_ENV]: marker }) });
    let out = '';
    parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
    parent.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => parent.once('exit', resolve));
    try {
      await processesUp(marker, `the stand-in test's redis-server to start (${out})`, (ps) => out.includes('ready') && ps.some((p) => p.cmdline.startsWith('redis-server')));
      parent.kill('SIGKILL');
      await withTimeout(exited, EXIT_MS, 'the stand-in test to die');
      await waitForNoneMarked(marker, GONE_MS);
    } finally {
      parent.kill('SIGKILL');
      await waitForNoneMarked(marker, GONE_MS).catch(() => undefined);
    }
  });

  it('should end the test runner and its test processes with their parent (npm test\'s chain)', async () => {
    const marker = newMarker();
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'gate-orphans-'));
    const hang = join(dir, 'hang.test.mjs');
    writeFileSync(hang, "import { it } from 'node:test';\nit('hangs', () => new Promise(() => void setInterval(() => {}, 1000)));\n");
    // A stand-in for npm: it starts the runner as package.json does, on a test that never ends.
    const code = `
      const { spawn } = await import('node:child_process');
      spawn(process.execPath, ['--import', './scripts/exit-with-parent.mjs', 'scripts/run-tests.mjs', ${JSON.stringify(hang)}], { stdio: 'ignore' });
      setInterval(() => {}, 1000);`;
    const env = childEnv({ [RUN_MARKER_ENV]: marker });
    delete env.NODE_TEST_CONTEXT; // a runner, not a test file of ours
    const parent = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: root, stdio: 'ignore', env });
    const exited = new Promise((resolve) => parent.once('exit', resolve));
    try {
      await processesUp(marker, 'the runner and its test file to start', (ps) =>
        ps.some((p) => p.cmdline.includes('run-tests.mjs')) && ps.some((p) => p.cmdline.endsWith('hang.test.mjs') && !p.cmdline.includes('run-tests.mjs')),
      );
      parent.kill('SIGKILL');
      await withTimeout(exited, EXIT_MS, 'the stand-in for npm to die');
      await waitForNoneMarked(marker, GONE_MS);
    } finally {
      parent.kill('SIGKILL');
      await waitForNoneMarked(marker, GONE_MS).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

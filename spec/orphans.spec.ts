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
/** Bound on the children ending once their parent is gone (a gate takes at most 5 s; this is the safety net on a busy machine). */
const GONE_MS = 30_000;
/** Bound on a parent exiting after its signal. */
const EXIT_MS = 30_000;

/** A long churn run (it never ends on its own within a test) against a gate and a trivial backend it spawns. */
const LONG_CHURN = ['--scenario', 'churn', '--cycles', '1000000', '--concurrency', '4', '--json'];

/** A process started for a test, marked, with its output and exit. */
interface Run {
  readonly marker: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  out(): string;
}

/** Starts `node argv…` marked with a new GATE_BENCH_RUN, without an IPC channel of its own (as a shell would). */
function startMarked(argv: string[], o: { cwd?: string; runner?: boolean } = {}): Run {
  const marker = `orphans-${randomBytes(6).toString('hex')}`;
  const env = childEnv({ [RUN_MARKER_ENV]: marker });
  if (o.runner) delete env.NODE_TEST_CONTEXT; // a test runner, not a test file of ours
  const child = spawn(process.execPath, argv, { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { marker, child, exited, out: () => out };
}

const startBench = (args: string[]): Run => startMarked([GATE_BIN, 'bench', ...args]);
/** A stand-in for a test file (or npm): an ES module given as text, kept alive after `code` ran. */
const startStandIn = (code: string, o: { cwd?: string; runner?: boolean } = {}): Run =>
  startMarked(['--input-type=module', '-e', `${code}\nsetInterval(() => {}, 1000);`], o);

/**
 * Runs `body` on `run`, then (whatever happened) SIGKILLs the run's parent and waits for every
 * marked process to be gone, so a failing test leaves nothing behind either.
 */
async function withRun(run: Run, body: (run: Run) => Promise<void>): Promise<void> {
  try {
    await body(run);
  } finally {
    run.child.kill('SIGKILL');
    await waitForNoneMarked(run.marker, GONE_MS).catch(() => undefined);
  }
}

/** Signals the run's parent, waits for it to exit, and then for every process of the run to be gone. */
async function killAndCheck(run: Run, signal: NodeJS.Signals, what: string): Promise<number | null> {
  run.child.kill(signal);
  const code = await withTimeout(run.exited, EXIT_MS, `${what} to exit on ${signal}`);
  await waitForNoneMarked(run.marker, GONE_MS);
  return code;
}

const isGate = (p: Proc): boolean => p.cmdline.includes('gate.js serve');
const isBackend = (p: Proc): boolean => p.cmdline.includes('trivialBackend.js');

/**
 * The marked processes once `ready` holds for them. Matched by command line, not counted: a child
 * between fork and exec still shows its parent's command line and environment in /proc.
 */
const processesUp = (run: Run, what: string, ready: (ps: Proc[]) => boolean): Promise<Proc[]> =>
  waitFor(what, () => {
    const ps = markedProcesses(run.marker);
    return ready(ps) && ps;
  }, START_MS);

/** gate bench's gate serve and trivial backend are running (exec'd). */
const benchChildrenUp = (run: Run): Promise<Proc[]> =>
  processesUp(run, "gate bench's gate and backend to start", (ps) => ps.some(isGate) && ps.some(isBackend));

describe('no process left behind', { concurrency: 2 }, () => {
  for (const signal of ['SIGKILL', 'SIGTERM', 'SIGINT'] as const)
    it(`should end gate bench's gate and backend when the bench gets ${signal}`, () =>
      withRun(startBench(LONG_CHURN), async (b) => {
        await benchChildrenUp(b);
        await killAndCheck(b, signal, 'gate bench');
      }));

  it('should end the backend when the bench fails because its gate died (the error path), and exit 1', () =>
    withRun(startBench(['--scenario', 'request', '--requests', '100000000', '--connections', '2', '--backend', 'trivial', '--warmup', '0', '--json']), async (b) => {
      const gate = (await benchChildrenUp(b)).find(isGate);
      assert.ok(gate, 'the spawned gate');
      // Listening on TCP, WS and API: the bench's clients are connecting or running.
      await waitFor('the spawned gate to listen', () => listeningSockets(gate.pid) >= 3, START_MS);
      process.kill(gate.pid, 'SIGKILL');
      const code = await withTimeout(b.exited, EXIT_MS, 'gate bench to notice its gate died');
      assert.equal(code, 1, b.out());
      // Its clients see the links close mid-run, or (killed before they logged in) fail to connect,
      // or (killed between binding its ports and its `listening` line) the bench says so.
      assert.match(b.out(), /closed by the server|closed before WELCOME|ECONNREFUSED|ECONNRESET|gate was killed by SIGKILL before it was ready/);
      await waitForNoneMarked(b.marker, GONE_MS);
    }));

  it('should end the suite\'s servers when `gate bench --suite` is SIGKILLed', () =>
    withRun(startBench(['--suite', '--only', 'request', '--runs', '1', '--duration', '60s', '--no-pin', '--out', '']), async (b) => {
      await benchChildrenUp(b); // the trivial backend and the first server under test
      await killAndCheck(b, 'SIGKILL', 'gate bench --suite');
    }));

  it('should end a gate started by the test helper when the test process is SIGKILLed', () => {
    const helper = new URL('./helpers/gateProcess.js', import.meta.url).href;
    // spawnGate keeps the run marker of its parent's environment (childEnv).
    return withRun(
      startStandIn(`
        const { spawnGate } = await import(${JSON.stringify(helper)});
        await spawnGate(['serve', '--tcp', '127.0.0.1:0', '--ws', 'off', '--api', '127.0.0.1:0', '--auth', 'none']).waitForLog('listening', ${START_MS});
        process.stdout.write('ready\\n');`),
      async (t) => {
        await processesUp(t, "the stand-in test's gate to listen", (ps) => t.out().includes('ready') && ps.some(isGate));
        await killAndCheck(t, 'SIGKILL', 'the stand-in test');
      },
    );
  });

  it('should end a redis-server started by the test helper when the test process is SIGKILLed', () => {
    const helper = new URL('./helpers/redisServer.js', import.meta.url).href;
    return withRun(
      startStandIn(`
        const { startRedis } = await import(${JSON.stringify(helper)});
        await startRedis();
        process.stdout.write('ready\\n');`),
      async (t) => {
        await processesUp(t, "the stand-in test's redis-server to start", (ps) => t.out().includes('ready') && ps.some((p) => p.cmdline.startsWith('redis-server')));
        await killAndCheck(t, 'SIGKILL', 'the stand-in test');
      },
    );
  });

  it('should end the test runner and its test processes with their parent (npm test\'s chain)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gate-orphans-'));
    const hang = join(dir, 'hang.test.mjs');
    writeFileSync(hang, "import { it } from 'node:test';\nit('hangs', () => new Promise(() => void setInterval(() => {}, 1000)));\n");
    // A stand-in for npm: it starts the runner as package.json does, on a test that never ends.
    const npm = startStandIn(
      `const { spawn } = await import('node:child_process');
       spawn(process.execPath, ['--import', './scripts/exit-with-parent.mjs', 'scripts/run-tests.mjs', ${JSON.stringify(hang)}], { stdio: 'ignore' });`,
      { cwd: fileURLToPath(new URL('../../', import.meta.url)), runner: true },
    );
    try {
      await withRun(npm, async (n) => {
        await processesUp(n, 'the runner and its test file to start', (ps) =>
          ps.some((p) => p.cmdline.includes('run-tests.mjs')) && ps.some((p) => p.cmdline.endsWith('hang.test.mjs') && !p.cmdline.includes('run-tests.mjs')),
        );
        await killAndCheck(n, 'SIGKILL', 'the stand-in for npm');
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Runs `gate bench` as the real CLI with a run marker of its own: resolves with its exit and
 * output once it has exited and none of its processes is left (a safety net far above a quiet
 * run; when it trips it lists what was still running).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { RUN_MARKER_ENV } from '../../lib/parentWatch.js';
import { GATE_BIN, childEnv } from './gateProcess.js';
import { markedProcesses, waitForNoneMarked } from './processes.js';

/** Safety net on one bench run (about 10x a quiet run, node start-up and gate spawn included). */
const RUN_MS = 90_000;
/** After the bench exits, the most its children may take to be gone (they were stopped before it exited). */
const LEFT_BEHIND_MS = 10_000;

export function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const marker = `bench-spec-${randomBytes(6).toString('hex')}`;
    const child = spawn(process.execPath, [GATE_BIN, 'bench', ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: childEnv({ [RUN_MARKER_ENV]: marker }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      const running = markedProcesses(marker).map((p) => `${p.pid} ${p.cmdline}`);
      child.kill('SIGKILL');
      reject(new Error(`gate bench ${args.join(' ')} still running after ${RUN_MS} ms; processes of the run: ${running.join(' | ')}; stderr: ${stderr}`));
    }, RUN_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      // Whatever the outcome, the bench must not leave its gate or backend behind.
      waitForNoneMarked(marker, LEFT_BEHIND_MS).then(() => resolve({ code, stdout, stderr }), reject);
    });
  });
}

export function oneJson(stdout: string): Record<string, any> {
  const lines = stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line of JSON expected, got: ${stdout}`);
  return JSON.parse(lines[0]!);
}

/** Runs `gate bench` in this process (for refusals, which stop before anything is spawned). */

/**
 * Runs the built CLI (`node dist/bin/gate.js …`) as a child process for tests: collects stdout
 * lines (pino JSON) and stderr, waits for a log line or the exit with a bound, and always kills
 * what it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RUN_MARKER_ENV } from '../../lib/parentWatch.js';

/** The compiled CLI, relative to this compiled helper (dist/spec/helpers → dist/bin). */
export const GATE_BIN = fileURLToPath(new URL('../../bin/gate.js', import.meta.url));
/**
 * Safety net on a child's start-up line or exit, ms: node starts a gate in about 0.5 s, but a
 * machine with every core busy has been seen to take over 10 s. Only a failure waits this long.
 */
const START_EXIT_MS = 30_000;
/** How long a child gets to exit after SIGKILL before a test gives up on it, ms. */
const KILL_WAIT_MS = 5_000;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface GateProcess {
  readonly child: ChildProcess;
  /** Complete stdout lines so far. */
  readonly lines: string[];
  /** Everything written to stderr so far. */
  stderr(): string;
  readonly exited: Promise<Exit>;
  /** The first stdout line (past or future) parsing as JSON with `msg === msg`; rejects on exit or after `timeoutMs`. */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit, or rejects after `timeoutMs` (the child is then killed). */
  waitForExit(timeoutMs?: number): Promise<Exit>;
  /** SIGKILL if still running; resolves once it has exited. */
  kill(): Promise<void>;
}

/**
 * The environment without any GATE_* variable of the test runner's, plus `env`. The run marker
 * stays: scripts/stress-tests.sh sets it to find any process a round left behind.
 */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GATE_') || k === RUN_MARKER_ENV) out[k] = v;
  return { ...out, ...env };
}

/** `wrap`: a command that runs node (e.g. `['taskset', '-c', '0']`); its exec keeps the pid node's. */
export function spawnGate(args: string[], env: Record<string, string> = {}, wrap: string[] = []): GateProcess {
  const argv = [...wrap, process.execPath, GATE_BIN, ...args];
  // The IPC channel ends the child with this process, even when a SIGKILL gives no time for kill() (lib/parentWatch.ts).
  const child = spawn(argv[0]!, argv.slice(1), { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const stdout = child.stdout!; // piped above ('ipc' in the tuple loses spawn's typing)
  const stderr = child.stderr!;
  const lines: string[] = [];
  let partial = '';
  let err = '';
  let exit: Exit | null = null;
  const listeners = new Set<() => void>(); // re-checked on every new line and on exit
  const changed = (): void => {
    for (const l of [...listeners]) l();
  };
  stdout.setEncoding('utf8');
  stdout.on('data', (s: string) => {
    const parts = (partial + s).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    changed();
  });
  stderr.setEncoding('utf8');
  stderr.on('data', (s: string) => (err += s));
  const exited = new Promise<Exit>((resolve) =>
    child.once('close', (code, signal) => {
      if (partial) lines.push(partial);
      partial = '';
      exit = { code, signal };
      resolve(exit);
      changed();
    }),
  );
  const describe = (): string => `stdout: ${lines.slice(-10).join('\n') || '(none)'}; stderr: ${err || '(none)'}`;

  const waitForLog = (msg: string, timeoutMs = START_EXIT_MS): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        for (const line of lines) {
          let v: unknown;
          try {
            v = JSON.parse(line);
          } catch {
            continue;
          }
          if (typeof v === 'object' && v !== null && (v as { msg?: unknown }).msg === msg) {
            done();
            resolve(v as Record<string, unknown>);
            return;
          }
        }
        if (exit) {
          done();
          reject(new Error(`gate exited (${JSON.stringify(exit)}) before logging "${msg}"; ${describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs}ms waiting for the "${msg}" log line; ${describe()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });

  const waitForExit = (timeoutMs = START_EXIT_MS): Promise<Exit> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`timed out after ${timeoutMs}ms waiting for gate ${args.join(' ')} to exit; ${describe()}`));
      }, timeoutMs);
      void exited.then((e) => {
        clearTimeout(timer);
        resolve(e);
      });
    });

  return {
    child,
    lines,
    stderr: () => err,
    exited,
    waitForLog,
    waitForExit,
    async kill() {
      if (exit) return;
      child.kill('SIGKILL');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, KILL_WAIT_MS).unref())]);
    },
  };
}

/** `host:port` → port. */
export const portOf = (hostPort: unknown): number => {
  const m = /:(\d+)$/.exec(String(hostPort));
  if (!m) throw new Error(`not host:port: ${String(hostPort)}`);
  return Number(m[1]);
};

/**
 * A private redis-server for one test file or one benchmark run (gate bench --scenario chaos): a free loopback port, its own temp dir, no
 * persistence (`--save ''`, `--appendonly no`). It never outlives the process that started it:
 * `setpriv --pdeathsig KILL` has the kernel SIGKILL it when its parent dies (redis-server cannot
 * watch an IPC channel as our node children do), and `stop()` ends it at the end of the file.
 *
 * A test that needs Redis must not pass silently without it: `startRedis()` rejects with a clear
 * message when redis-server is missing (.ci/run installs it), so the test fails, not skips.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from '../../freePort.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Bound on redis-server starting to accept connections, ms. */
const START_MS = 15_000;
/** Bound on it exiting after SIGTERM before SIGKILL, ms. */
const STOP_MS = 5_000;

export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly pid: number;
  /** SIGKILL now (a crash, for tests of Redis trouble); resolves once it has exited. */
  kill(): Promise<void>;
  /** Ends it (SIGTERM, then SIGKILL after a bound) and removes its dir. */
  stop(): Promise<void>;
}

/** True when something on 127.0.0.1:`port` answers an inline PING with +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1_000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

let pdeathsig: boolean | null = null;
/** Whether util-linux's setpriv can set the parent-death signal here. */
function hasPdeathsig(): boolean {
  pdeathsig ??= spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true'], { stdio: 'ignore' }).status === 0;
  return pdeathsig;
}

/** Rejects after `ms` with a message naming what was awaited. */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/**
 * Starts redis-server (on `port` when given: a restart on the same address) with `env` (the
 * caller's run marker, so leftovers can be found).
 */
export async function startRedis(port?: number, env: NodeJS.ProcessEnv = process.env): Promise<RedisServer> {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0)
    throw new Error('redis-server is not installed: cluster-mode tests need it (apt-get install redis-server; .ci/run does this)');
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'gate-redis-'));
  const args = ['--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning',
    // Its title rewrite overwrites /proc/<pid>/environ, where the run marker (GATE_BENCH_RUN) finds leftovers.
    '--set-proc-title', 'no'];
  const argv = hasPdeathsig() ? ['setpriv', '--pdeathsig', 'KILL', 'redis-server', ...args] : ['redis-server', ...args];
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      const poll = (): void => {
        if (gone) return reject(new Error(`redis-server exited before listening on ${p}: ${out.trim()}`));
        void ping(p).then((ok) => (ok ? resolve() : setTimeout(poll, 20)));
      };
      poll();
    }),
    START_MS,
    `redis-server to answer PING on 127.0.0.1:${p} (${out.trim()})`,
  );
  const kill = async (): Promise<void> => {
    if (!gone) child.kill('SIGKILL');
    await exited;
  };
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    pid: child.pid!,
    kill,
    async stop() {
      if (!gone) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), STOP_MS);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Shared pieces of `gate bench`: child processes (gate, trivial backend, baselines) with CPU
// pinning, benchmark clients over TCP and WebSocket, latency summaries, the progress line.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { type RecordableHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { WebSocket } from 'ws';
import { FrameType, encodeFrame, frame, parseFrame, type Frame } from '../../frame.js';
import { RUN_MARKER_ENV } from '../../parentWatch.js';

/** Client sockets are spread over these source addresses: one address runs out of ports near 10,000 connections. */
export const SOURCE_ADDRESSES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'] as const;
/** File descriptors a bench process needs besides its client sockets (HTTP clients, pipes, stdio). */
export const FD_RESERVE_CLIENT = 128;
/** File descriptors a spawned gate needs besides its client sockets (upstream pool of --workers 256, api, listeners, logs). */
export const FD_RESERVE_GATE = 512;
/** Most a bench child may take to print its address line. */
const START_TIMEOUT_MS = 15_000;
/** Most a child gets to exit after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 3_000;

/**
 * This run's marker, set on every child as GATE_BENCH_RUN: inherited when a parent (a test) set
 * it, so whoever started the bench can find every process of the run in /proc.
 */
export const RUN_ID = process.env[RUN_MARKER_ENV] || `${process.pid}-${randomBytes(4).toString('hex')}`;

export type Transport = 'tcp' | 'ws';
export interface HostPort {
  host: string;
  port: number;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A measured phase: `start(ms)` begins it, and it ends after `ms` or as soon as `end()` is called,
 * whichever comes first (a run of fixed work, --requests or --pushes, ends when the work is done,
 * the time only a cap). Ended before it started, it never arms its timer.
 */
export class MeasuredPhase {
  readonly ended: Promise<void>;
  private resolve: () => void = () => undefined;
  private timer: NodeJS.Timeout | null = null;
  private over = false;

  /** `edge`: told when the measured phase starts and ends (CPU samplers read the server there). */
  constructor(private readonly edge?: (e: 'start' | 'end') => void) {
    this.ended = new Promise<void>((r) => (this.resolve = r));
  }

  start(ms: number): void {
    if (this.over) return;
    this.edge?.('start');
    this.timer = setTimeout(() => this.end(), ms);
  }

  end(): void {
    if (this.over) return;
    this.over = true;
    this.edge?.('end');
    if (this.timer) clearTimeout(this.timer);
    this.resolve();
  }
}

/** Soft limit on open files of this process (children inherit it); 20000 when unreadable. */
export function openFileLimit(): number {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m && m[1] !== 'unlimited') return Number(m[1]);
    if (m) return Number.MAX_SAFE_INTEGER;
  } catch {
    /* not Linux */
  }
  return 20_000;
}

/** A server's `GET /v1/stats` (its counts as numbers), bounded at 5 s; rejects on a non-200. */
export async function readServerStats(api: HostPort, apiKey: string | null): Promise<Record<string, number>> {
  const res = await request(`http://${api.host}:${api.port}/v1/stats`, {
    headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    headersTimeout: 5_000,
    bodyTimeout: 5_000,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET /v1/stats: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  const j = JSON.parse(text) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(j).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
}

/** USER_HZ: /proc/<pid>/stat counts CPU in 1/100 s. */
const TICK_US = 1_000_000 / 100;

/** CPU time of a process so far, µs (utime + stime); NaN when unreadable. */
export function cpuUs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_US;
  } catch {
    return NaN;
  }
}

/** Resident set of a process, bytes, from /proc (Linux); null elsewhere or when gone. */
export function rssBytes(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

let tasksetChecked: boolean | null = null;
export function hasTaskset(): boolean {
  if (tasksetChecked === null) {
    const r = spawnSync('taskset', ['-V'], { stdio: 'ignore' });
    tasksetChecked = r.status === 0;
  }
  return tasksetChecked;
}

/** Pins every thread of this process to `cpu` (the load generator's core). */
export function pinSelf(cpu: number): boolean {
  if (!hasTaskset()) return false;
  return spawnSync('taskset', ['-a', '-cp', String(cpu), String(process.pid)], { stdio: 'ignore' }).status === 0;
}

/** A taskset CPU list naming one CPU ("1", not "0,1" or "0-3"). */
export const singleCpu = (cpus: string): boolean => /^\d+$/.test(cpus.trim());

/**
 * The node flags every server the bench starts runs with (gate and baselines alike): the
 * settings docs/operations.md ("Tuning node") gives for a gate. A 64 MB young generation lets
 * a request's objects die young at 10k+ requests/s instead of being promoted (each major GC
 * then costs the loop 5–20 ms); on one core, V8's concurrent GC threads can only run by
 * pre-empting the main thread, which then waits for them at the end of each major GC.
 */
export function serverNodeFlags(cpus: string | null): string[] {
  return ['--max-semi-space-size=64', ...(cpus !== null && singleCpu(cpus) ? ['--single-threaded-gc'] : [])];
}

/** A child process we started, with its address line, and a bounded stop. */
export interface Child {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  readonly info: Record<string, unknown>;
  /** Lines of stderr matching the memory probe (`@@bench-mem {…}`), newest last. */
  readonly probes: Record<string, number>[];
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** CPU list for `taskset -c` (e.g. "1"); null = not pinned. */
  cpu: string | null;
  /** Extra node flags before the script. */
  nodeFlags?: string[];
  /** No tuning flags (serverNodeFlags): node as an operator starts it by default. */
  bare?: boolean;
}

const PROBE = '@@bench-mem ';

/**
 * Starts `node [flags] script args` (under `taskset -c cpu` when asked), reads stdout lines until
 * `ready(line)` returns the address object, then drains stdout. stderr goes to ours, except the
 * memory-probe lines (see memProbe.ts), which are collected.
 */
export function spawnChild(name: string, script: string, args: string[], o: SpawnOptions, ready: (j: Record<string, unknown>) => boolean): Promise<Child> {
  const useTaskset = o.cpu !== null && hasTaskset();
  const nodeArgs = [...(o.bare ? [] : serverNodeFlags(useTaskset ? o.cpu : null)), ...(o.nodeFlags ?? []), script, ...args];
  const cmd = useTaskset ? 'taskset' : process.execPath;
  const argv = useTaskset ? ['-c', o.cpu!, process.execPath, ...nodeArgs] : nodeArgs;
  // taskset execs node: the pid is node's, so /proc/<pid>/status is the server's memory.
  // The IPC channel is how the child notices this process is gone, however it ended (lib/parentWatch.ts).
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: { ...process.env, [RUN_MARKER_ENV]: RUN_ID } });
  const stdout = child.stdout!; // piped above ('ipc' in the tuple loses spawn's typing)
  const stderr = child.stderr!;
  const probes: Record<string, number>[] = [];
  let errBuf = '';
  stderr.on('data', (d: Buffer) => {
    errBuf += d.toString();
    for (let i = errBuf.indexOf('\n'); i >= 0; i = errBuf.indexOf('\n')) {
      const line = errBuf.slice(0, i);
      errBuf = errBuf.slice(i + 1);
      if (line.startsWith(PROBE)) {
        try {
          probes.push(JSON.parse(line.slice(PROBE.length)) as Record<string, number>);
        } catch {
          /* ignore */
        }
      } else if (line.trim() !== '') process.stderr.write(`[${name}] ${line}\n`);
    }
  });
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const stop = async (): Promise<void> => {
    if (exited) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exit;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      void stop();
      reject(new Error(`${name} did not start within ${START_TIMEOUT_MS / 1000} s`));
    }, START_TIMEOUT_MS);
    child.once('error', (e) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${name} ${signal ? `was killed by ${signal}` : `exited with status ${code}`} before it was ready`));
    });
    const onData = (d: Buffer): void => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0 && !done; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let j: Record<string, unknown>;
        try {
          j = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (ready(j)) {
          done = true;
          clearTimeout(timer);
          stdout.off('data', onData);
          stdout.resume(); // keep draining the logs so the child never blocks on a full pipe
          resolve({ name, child, pid: child.pid, info: j, probes, stop });
        }
      }
    };
    stdout.on('data', onData);
  });
}

const here = (rel: string): string => fileURLToPath(new URL(rel, import.meta.url));
/** Compiled paths (this file is dist/lib/cli/bench/common.js). */
export const PATHS = {
  gate: here('../../../bin/gate.js'),
  trivialBackend: here('../../../bench/trivialBackend.js'),
  baselineRelay: here('../../../bench/baselineRelay.js'),
  baselineFanout: here('../../../bench/baselineFanout.js'),
  baselineLogin: here('../../../bench/baselineLogin.js'),
  memProbe: here('./memProbe.js'),
};

export interface GateChild extends Child {
  tcp: HostPort;
  ws: HostPort;
  api: HostPort;
}

export function parseAddr(s: string): HostPort {
  const i = s.lastIndexOf(':');
  let host = s.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '0.0.0.0' || host === '' || host === '::') host = '127.0.0.1';
  return { host, port: Number(s.slice(i + 1)) };
}

/**
 * Starts `gate serve` on free loopback ports. `upstream` null = the embedded demo backend.
 * `--auth none` always (tokens are `bench-i`); the listening line tells the real ports.
 */
export async function spawnGate(upstream: string | null, o: SpawnOptions & { extra?: string[] } = { cpu: null }): Promise<GateChild> {
  const args = ['serve', '--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0', '--auth', 'none', '--log-level', 'info', '--gate-id', 'bench'];
  if (upstream) args.push('--upstream', upstream);
  args.push(...(o.extra ?? []));
  const c = await spawnChild('gate', PATHS.gate, args, o, (j) => j.msg === 'listening');
  return { ...c, tcp: parseAddr(String(c.info.tcp)), ws: parseAddr(String(c.info.ws)), api: parseAddr(String(c.info.api)) };
}

export async function spawnTrivialBackend(o: SpawnOptions): Promise<Child & { url: string }> {
  const c = await spawnChild('backend', PATHS.trivialBackend, [], o, (j) => typeof j.url === 'string');
  return { ...c, url: String(c.info.url) };
}

export async function spawnBaselineRelay(backend: string, o: SpawnOptions): Promise<Child & { tcp: HostPort; ws: HostPort }> {
  const c = await spawnChild('relay', PATHS.baselineRelay, ['--backend', backend], o, (j) => typeof j.tcp === 'string' && typeof j.ws === 'string');
  return { ...c, tcp: parseAddr(String(c.info.tcp)), ws: parseAddr(String(c.info.ws)) };
}

export async function spawnBaselineLogin(o: SpawnOptions): Promise<Child & { tcp: HostPort; ws: HostPort }> {
  const c = await spawnChild('login', PATHS.baselineLogin, [], o, (j) => typeof j.tcp === 'string' && typeof j.ws === 'string');
  return { ...c, tcp: parseAddr(String(c.info.tcp)), ws: parseAddr(String(c.info.ws)) };
}

export async function spawnBaselineFanout(o: SpawnOptions): Promise<Child & { tcp: HostPort; ws: HostPort; api: HostPort }> {
  const c = await spawnChild('fanout', PATHS.baselineFanout, [], o, (j) => typeof j.api === 'string');
  return { ...c, tcp: parseAddr(String(c.info.tcp)), ws: parseAddr(String(c.info.ws)), api: parseAddr(String(c.info.api)) };
}

// ------------------------------------------------------------------ clients

/** Shared by every TCP client's `onread`: a read is fully handled before the next one. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
const PREFIX = 4;
/** Largest frame body a bench client accepts. */
const MAX_FRAME = 16 * 1024 * 1024;

/** One logged-in benchmark client; frames after WELCOME go to `onFrame`. */
export interface BenchClient {
  readonly index: number;
  readonly playerId: string;
  send(f: Frame): void;
  /** Several frames in one write (TCP) or back to back (ws). */
  sendMany(fs: Frame[]): void;
  close(): void;
  /**
   * Cuts the link with a TCP reset: no TIME_WAIT left on the client's port (a storm of 15,000
   * cuts would otherwise hold 15,000 ports for a minute and slow every later bind).
   */
  reset(): void;
  onFrame: (f: Frame) => void;
  /** Called once when the link closes after login (the server went away, or close()). */
  onClose: () => void;
  /** Set when the link closed or failed after login. */
  closed: boolean;
  /** The WELCOME's body. */
  welcome: WelcomeInfo;
}

/** What a bench client keeps of its WELCOME (a resume needs the first three). */
export interface WelcomeInfo {
  sessionId: string;
  resumeToken: string;
  lastSeq: number;
  resumed: boolean;
  heartbeatMs: number;
}

/** A login the server refused (its BYE or ERROR code), as opposed to a link that failed. */
export class LoginRefused extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

const NO_WELCOME: WelcomeInfo = { sessionId: '', resumeToken: '', lastSeq: 0, resumed: false, heartbeatMs: 15_000 };

function welcomeOf(body: Buffer): WelcomeInfo {
  const w = JSON.parse(body.toString('utf8')) as Partial<WelcomeInfo>;
  return { sessionId: String(w.sessionId), resumeToken: String(w.resumeToken), lastSeq: Number(w.lastSeq ?? 0), resumed: w.resumed === true, heartbeatMs: Number(w.heartbeatMs ?? 15_000) };
}

function codeIn(body: Buffer): string {
  try {
    return String((JSON.parse(body.toString('utf8')) as { code?: unknown }).code);
  } catch {
    return 'unknown';
  }
}

/**
 * Connects, sends HELLO `{token: bench-<index>}` and resolves at WELCOME (rejects on BYE, error
 * or timeout). Frame bodies passed to `onFrame` are views of a shared read buffer: valid only
 * during the call.
 */
export function connectClient(transport: Transport, at: HostPort, index: number, timeoutMs = 15_000, o: { token?: string; resume?: { sessionId: string; resumeToken: string; lastSeq: number } } = {}): Promise<BenchClient> {
  if (!/^127\./.test(at.host) && at.host !== 'localhost') return Promise.reject(new Error(`bench clients only connect to 127.x addresses, not ${at.host}`));
  const localAddress = SOURCE_ADDRESSES[index % SOURCE_ADDRESSES.length]!;
  const playerId = o.token ?? `bench-${index}`;
  const hello = frame(FrameType.HELLO, 0, Buffer.from(JSON.stringify(o.resume ? { token: playerId, resume: o.resume } : { token: playerId })));
  return new Promise((resolve, reject) => {
    let welcomed = false;
    const timer = setTimeout(() => fail(new Error(`client ${index}: no WELCOME within ${timeoutMs} ms`)), timeoutMs);
    let destroy: () => void = () => undefined;
    const fail = (e: Error): void => {
      if (welcomed) return;
      welcomed = true; // settle once
      clearTimeout(timer);
      destroy();
      reject(e);
    };
    let client: BenchClient;
    const onFrame = (f: Frame): void => {
      if (welcomed) return client.onFrame(f);
      if (f.type === FrameType.WELCOME) {
        welcomed = true;
        clearTimeout(timer);
        try {
          client.welcome = welcomeOf(f.body);
        } catch {
          destroy();
          return reject(new LoginRefused(`client ${index}: WELCOME body is not JSON`, 'bad_welcome'));
        }
        resolve(client);
      } else if (f.type === FrameType.BYE || f.type === FrameType.ERROR) fail(new LoginRefused(`client ${index}: login refused: ${f.body.toString()}`, `${f.type === FrameType.BYE ? 'BYE' : 'ERROR'} ${codeIn(f.body)}`));
    };
    if (transport === 'tcp') {
      // `onread` reads straight into one shared buffer, past the stream machinery: with
      // 10,000 sockets each getting one small frame per read, that per-read cost is what
      // limits a load generator. Frames are handled inside the callback, so only a partial
      // frame left at the end of a read is copied.
      let pending: Buffer | null = null;
      let broken = false;
      const socket: Socket = netConnect({
        host: at.host,
        port: at.port,
        localAddress,
        onread: {
          buffer: READ_BUFFER,
          callback: (n: number, buf: Uint8Array): boolean => {
            if (broken) return false;
            const err = feed(buf as Buffer, n);
            if (err) {
              broken = true;
              socket.destroy(err);
              return false;
            }
            return true;
          },
        },
      });
      const feed = (chunk: Buffer, n: number): Error | null => {
        let buf = chunk.subarray(0, n);
        if (pending) {
          buf = Buffer.concat([pending, buf]);
          pending = null;
        }
        let off = 0;
        while (buf.length - off >= PREFIX) {
          const len = buf.readUInt32BE(off);
          if (len < 8 || len > MAX_FRAME + 8) return new Error(`client ${index}: bad frame length ${len}`);
          if (buf.length - off < PREFIX + len) break;
          onFrame({ type: buf[off + 4]!, flags: buf[off + 5]!, route: buf.readUInt16BE(off + 6), seq: buf.readUInt32BE(off + 8), body: buf.subarray(off + 12, off + PREFIX + len) });
          off += PREFIX + len;
        }
        if (off < buf.length) pending = Buffer.from(buf.subarray(off));
        return null;
      };
      socket.setNoDelay(true);
      destroy = () => socket.destroy();
      client = {
        index,
        playerId,
        onFrame: () => undefined,
        onClose: () => undefined,
        closed: false,
        welcome: NO_WELCOME,
        send: (f) => void socket.write(encodeFrame(f, true)),
        sendMany: (fs) => {
          if (fs.length === 1) return void socket.write(encodeFrame(fs[0]!, true));
          socket.write(Buffer.concat(fs.map((f) => encodeFrame(f, true))));
        },
        close: () => socket.destroy(),
        reset: () => void socket.resetAndDestroy(),
      };
      socket.on('error', (e) => fail(e));
      socket.on('close', () => {
        client.closed = true;
        if (welcomed) client.onClose();
        fail(new Error(`client ${index}: closed before WELCOME`));
      });
      socket.once('connect', () => socket.write(encodeFrame(hello, true)));
    } else {
      const ws = new WebSocket(`ws://${at.host}:${at.port}/`, { localAddress, perMessageDeflate: false, maxPayload: MAX_FRAME });
      ws.binaryType = 'nodebuffer';
      destroy = () => ws.terminate();
      client = {
        index,
        playerId,
        onFrame: () => undefined,
        onClose: () => undefined,
        closed: false,
        welcome: NO_WELCOME,
        send: (f) => ws.send(encodeFrame(f, false)),
        sendMany: (fs) => {
          for (const f of fs) ws.send(encodeFrame(f, false));
        },
        close: () => ws.terminate(),
        reset: () => {
          // ws keeps its socket private; a reset where it is reachable, a close where not.
          const raw = (ws as unknown as { _socket?: Socket | null })._socket;
          if (raw) raw.resetAndDestroy();
          else ws.terminate();
        },
      };
      ws.on('error', (e) => fail(e));
      ws.on('close', () => {
        client.closed = true;
        if (welcomed) client.onClose();
        fail(new Error(`client ${index}: closed before WELCOME`));
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary) return;
        let f: Frame;
        try {
          f = parseFrame(data, MAX_FRAME);
        } catch (e) {
          ws.terminate();
          return fail(e as Error);
        }
        onFrame(f);
      });
      ws.once('open', () => ws.send(encodeFrame(hello, false)));
    }
  });
}

/** Connects `n` clients, `parallel` at a time (the listen backlog is finite), all or nothing. */
export async function connectMany(transport: Transport, at: HostPort, n: number, parallel = 256, first = 0): Promise<BenchClient[]> {
  const out: BenchClient[] = new Array<BenchClient>(n);
  let next = 0;
  const failure: { e: Error | null } = { e: null };
  const worker = async (): Promise<void> => {
    while (next < n && !failure.e) {
      const i = next++;
      try {
        out[i] = await connectClient(transport, at, first + i);
      } catch (e) {
        failure.e ??= e as Error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  if (failure.e) {
    for (const c of out) c?.close();
    throw failure.e;
  }
  return out;
}

// ------------------------------------------------------------------ figures

export interface Latency {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

const msOf = (ns: number): number => Math.round(ns / 1e3) / 1e3;

/** Percentiles of a histogram of nanoseconds, in ms with µs resolution. */
export function latencyOf(h: RecordableHistogram): Latency {
  if (h.count === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  return { p50: msOf(h.percentile(50)), p90: msOf(h.percentile(90)), p99: msOf(h.percentile(99)), p999: msOf(h.percentile(99.9)), max: msOf(h.max) };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const fmt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');

/** A `key  value` table with aligned keys. */
export function table(rows: [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

/** The live progress line on a terminal: `fn()` gives the text, every second. Returns the stopper. */
export function progressLine(enabled: boolean, write: (s: string) => void, fn: () => string): () => void {
  if (!enabled) return () => undefined;
  const t = setInterval(() => write(`\r${fn()}\x1b[K`), 1_000);
  return () => {
    clearInterval(t);
    write('\r\x1b[K');
  };
}

/** Prometheus text: the value of the first sample of `name` (any labels). */
export function promValue(text: string, name: string): number | null {
  const re = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([0-9.eE+-]+)`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : null;
}

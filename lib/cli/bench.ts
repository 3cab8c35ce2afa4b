import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { parseDuration, parseHostPort, parseInt10, parseSize } from '../config.js';
import { isGatewayError } from '../errors.js';
import { FrameType, encodeFrame, frame, type Frame } from '../frame.js';
import { FrameDecoder } from '../frameDecoder.js';

/** Client sockets are spread over these source addresses: one address runs out of ports near 10,000 connections. */
const SOURCE_ADDRESSES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];

export interface RequestBenchOptions {
  /** Gate TCP address; null = spawn `gate serve` with the embedded demo backend. */
  tcp: { host: string; port: number } | null;
  connections: number;
  inflight: number;
  durationMs: number;
  bodyBytes: number;
  route: number;
  verify: boolean;
  json: boolean;
  progress: boolean;
}

export interface RequestBenchResult {
  scenario: 'request';
  transport: 'tcp';
  connections: number;
  inflight: number;
  bodyBytes: number;
  seconds: number;
  requests: number;
  rate: number;
  errors: number;
  mismatches: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  gateRssMb: number | null;
}

interface BenchClient {
  socket: Socket;
  decoder: FrameDecoder;
  nextSeq: number;
  sentAt: Map<number, bigint>;
}

/** Spawns `gate serve` (embedded demo backend) on free ports and resolves with its listening line. */
export async function spawnGate(extra: string[] = []): Promise<{ child: ChildProcess; tcp: string; ws: string; api: string }> {
  const bin = fileURLToPath(new URL('../../bin/gate.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'serve', '--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0', '--log-level', 'info', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('gate did not log "listening" within 10 s')), 10_000);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const j = JSON.parse(line) as { msg?: string; tcp: string; ws: string; api: string };
          if (j.msg === 'listening') {
            clearTimeout(timer);
            child.stdout.resume();
            child.stdout.removeAllListeners('data');
            child.stdout.on('data', () => undefined);
            resolve({ child, tcp: j.tcp, ws: j.ws, api: j.api });
          }
        } catch {
          /* not JSON: ignore */
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`gate exited with ${code} before listening`)));
  });
}

function connectClient(host: string, port: number, i: number, onFrame: (c: BenchClient, f: Frame) => void): Promise<BenchClient> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port, localAddress: SOURCE_ADDRESSES[i % SOURCE_ADDRESSES.length] });
    socket.setNoDelay(true);
    const c: BenchClient = { socket, decoder: new FrameDecoder(16 * 1024 * 1024), nextSeq: 1, sentAt: new Map() };
    let welcomed = false;
    socket.on('error', (e) => (welcomed ? undefined : reject(e)));
    socket.on('data', (chunk: Buffer) => {
      const err = c.decoder.push(chunk, (f) => {
        if (!welcomed && f.type === FrameType.WELCOME) {
          welcomed = true;
          resolve(c);
        } else if (!welcomed && f.type === FrameType.BYE) reject(new Error(`login refused: ${f.body.toString()}`));
        else onFrame(c, f);
      });
      if (err) socket.destroy(err);
    });
    socket.once('connect', () => socket.write(encodeFrame(frame(FrameType.HELLO, 0, Buffer.from(JSON.stringify({ token: `bench-${i}` }))), true)));
  });
}

const ms = (h: RecordableHistogram, p: number): number => Math.round(h.percentile(p) / 1e3) / 1e3;

/** The request scenario: N connections, each keeping `inflight` REQUESTs outstanding for the duration. */
export async function runRequestBench(o: RequestBenchOptions, log: (s: string) => void): Promise<RequestBenchResult> {
  let spawned: Awaited<ReturnType<typeof spawnGate>> | null = null;
  let target = o.tcp;
  if (!target) {
    spawned = await spawnGate();
    target = parseHostPort('tcp', spawned.tcp);
  }
  const hist = createHistogram();
  let done = 0;
  let errors = 0;
  let mismatches = 0;
  let running = true;
  const body = Buffer.alloc(o.bodyBytes, 0x61);
  const send = (c: BenchClient): void => {
    const seq = c.nextSeq++;
    c.sentAt.set(seq, process.hrtime.bigint());
    c.socket.write(encodeFrame(frame(FrameType.REQUEST, seq, body, o.route), true));
  };
  const onFrame = (c: BenchClient, f: Frame): void => {
    if (f.type === FrameType.PING) {
      c.socket.write(encodeFrame(frame(FrameType.PONG, f.seq), true));
      return;
    }
    if (f.type !== FrameType.RESPONSE && f.type !== FrameType.ERROR) return;
    const t0 = c.sentAt.get(f.seq);
    if (t0 === undefined) {
      mismatches++;
      return;
    }
    c.sentAt.delete(f.seq);
    hist.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
    done++;
    if (f.type === FrameType.ERROR) errors++;
    else if (o.verify && !f.body.equals(body)) mismatches++;
    if (running) send(c);
  };
  const clients: BenchClient[] = [];
  for (let i = 0; i < o.connections; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, o.connections - i) }, (_, k) => connectClient(target.host, target.port, i + k, onFrame)),
    );
    clients.push(...batch);
  }
  const t0 = process.hrtime.bigint();
  for (const c of clients) for (let k = 0; k < o.inflight; k++) send(c);
  let lastDone = 0;
  const progress = o.progress
    ? setInterval(() => {
        log(`\r${(done - lastDone).toLocaleString()} req/s  p50 ${ms(hist, 50)} ms  p99 ${ms(hist, 99)} ms  errors ${errors}   `);
        lastDone = done;
      }, 1_000)
    : null;
  await new Promise((r) => setTimeout(r, o.durationMs));
  running = false;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const requests = done;
  if (progress) clearInterval(progress);
  // Let the last in-flight requests land (bounded), so --verify sees every answer.
  const deadline = Date.now() + 5_000;
  while (clients.some((c) => c.sentAt.size > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const lost = clients.reduce((n, c) => n + c.sentAt.size, 0);
  let gateRssMb: number | null = null;
  if (spawned?.child.pid) gateRssMb = rssMb(spawned.child.pid);
  for (const c of clients) c.socket.destroy();
  if (spawned) {
    spawned.child.kill('SIGTERM');
    await new Promise((r) => spawned.child.once('exit', r));
  }
  return {
    scenario: 'request',
    transport: 'tcp',
    connections: o.connections,
    inflight: o.inflight,
    bodyBytes: o.bodyBytes,
    seconds: Math.round(seconds * 100) / 100,
    requests,
    rate: Math.round(requests / seconds),
    errors,
    mismatches: mismatches + lost,
    latencyMs: { p50: ms(hist, 50), p90: ms(hist, 90), p99: ms(hist, 99), p999: ms(hist, 99.9), max: Math.round(hist.max / 1e3) / 1e3 },
    gateRssMb,
  };
}

function rssMb(pid: number): number | null {
  try {
    // /proc is Linux-only; elsewhere the figure is simply omitted.
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

export function formatTable(r: RequestBenchResult): string {
  const rows: [string, string][] = [
    ['scenario', `${r.scenario} over ${r.transport}`],
    ['connections × in flight', `${r.connections} × ${r.inflight}`],
    ['body', `${r.bodyBytes} B`],
    ['duration', `${r.seconds} s`],
    ['requests', r.requests.toLocaleString()],
    ['throughput', `${r.rate.toLocaleString()} req/s`],
    ['latency p50 / p90 / p99 / p99.9', `${r.latencyMs.p50} / ${r.latencyMs.p90} / ${r.latencyMs.p99} / ${r.latencyMs.p999} ms`],
    ['latency max', `${r.latencyMs.max} ms`],
    ['errors / mismatches', `${r.errors} / ${r.mismatches}`],
    ['gate RSS', r.gateRssMb === null ? 'n/a' : `${r.gateRssMb} MB`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

export async function runBenchCommand(argv: string[], io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const cmd = new Command('gate bench')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: (s) => io.stdout.write(s) })
    .addOption(new Option('--scenario <name>', 'request').default('request'))
    .addOption(new Option('--tcp <host:port>', 'gate TCP address (default: spawn gate serve with the demo backend)'))
    .addOption(new Option('--connections <n>', 'client connections').default('100'))
    .addOption(new Option('--inflight <n>', 'requests in flight per connection').default('16'))
    .addOption(new Option('--duration <d>', 'how long to run').default('10s'))
    .addOption(new Option('--size <bytes>', 'request body size').default('64'))
    .addOption(new Option('--route <n>', 'route (5 = echo in the demo game)').default('5'))
    .addOption(new Option('--verify', 'check every answer arrived exactly once with the right body'))
    .addOption(new Option('--json', 'print the result as JSON'));
  let o: RequestBenchOptions;
  try {
    cmd.parse(argv, { from: 'user' });
    const v = cmd.opts<Record<string, string | boolean | undefined>>();
    if (v.scenario !== 'request') throw new Error(`--scenario: "${String(v.scenario)}" is not a known scenario (request)`);
    const connections = parseInt10('connections', String(v.connections), 1);
    if (connections > 15_000) throw new Error('--connections: at most 15000 (the open-file limit is 20000)');
    o = {
      tcp: typeof v.tcp === 'string' ? parseHostPort('tcp', v.tcp) : null,
      connections,
      inflight: parseInt10('inflight', String(v.inflight), 1),
      durationMs: Math.min(parseDuration('duration', String(v.duration), 100), 600_000),
      bodyBytes: parseSize('size', String(v.size), 0),
      route: parseInt10('route', String(v.route), 0),
      verify: v.verify === true,
      json: v.json === true,
      progress: io.stderr.isTTY === true && v.json !== true,
    };
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return 0;
    const msg = isGatewayError(e) || e instanceof Error ? e.message : String(e);
    io.stderr.write(`gate bench: ${msg.replace(/^error: /, '')}\n`);
    return 2;
  }
  try {
    const r = await runRequestBench(o, (s) => io.stderr.write(s));
    if (o.progress) io.stderr.write('\n');
    io.stdout.write(o.json ? `${JSON.stringify(r)}\n` : `${formatTable(r)}\n`);
    return r.mismatches > 0 && o.verify ? 1 : 0;
  } catch (e) {
    io.stderr.write(`gate bench: ${(e as Error).message}\n`);
    return 1;
  }
}

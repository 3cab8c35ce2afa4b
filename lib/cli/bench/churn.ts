// The `churn` scenario: many short connection lifetimes, `concurrency` at a time. Each cycle
// connects, says HELLO (token `churn-<i>`), waits for WELCOME, sends one REQUEST and waits for its
// RESPONSE, sends BYE {"code":"logout"} and waits for the gate to close the link. Afterwards the
// gate must hold nothing: /v1/stats back to 0 connections, sessions, in-flight and queued
// requests, and its heap (after full GCs, through memProbe.js) within HEAP_LIMIT of where it was.
import { createHistogram } from 'node:perf_hooks';
import { connect as netConnect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { FrameType, encodeFrame, frame, parseFrame, PREFIX_BYTES, type Frame } from '../../frame.js';
import { SOURCE_ADDRESSES, latencyOf, progressLine, readServerStats, sleep, type HostPort, type Latency, type Transport } from './common.js';
import type { MemorySample, MemorySource } from './memory.js';

/** Most one cycle may take, ms: past it the run fails. */
export const CYCLE_TIMEOUT_MS = 10_000;
/** Most /v1/stats may take to come back to zero after the last cycle, ms. */
const SETTLE_TIMEOUT_MS = 10_000;
/** Between /v1/stats polls, ms. */
const SETTLE_POLL_MS = 100;
/**
 * Wait after the stats settle, before a heap sample: a player's request group lingers 1 s after
 * its last request (GROUP_LINGER_MS in lib/gate.ts), holding a little memory until then.
 */
const LINGER_WAIT_MS = 1_300;
/** After the run, the heap is re-sampled this long while it is over the limit, ms. */
const HEAP_WAIT_MS = 10_000;
/** Largest heap (+ external) growth accepted over the run, bytes. */
export const HEAP_LIMIT = 10 * 1024 * 1024;
/** Cycles run before the baseline heap sample (JIT, buffer pools, upstream sockets, metric labels). */
const WARMUP_CYCLES = 100;
/** Largest frame body a churn client accepts. */
const MAX_FRAME = 1024 * 1024;
/** The REQUEST of each cycle (echoed by route 5 of the demo game and by the trivial backend). */
const ROUTE = 5;

export interface ChurnRunOptions {
  transport: Transport;
  at: HostPort;
  api: HostPort;
  apiKey: string | null;
  cycles: number;
  concurrency: number;
  /** The server's heap, after GC when it is a child started with memProbe.js. */
  memory: MemorySource;
  progress: boolean;
  log: (s: string) => void;
}

export interface ChurnStats {
  connections: number;
  sessions: number;
  inflight: number;
  queued: number;
}

export interface ChurnResult {
  scenario: 'churn';
  transport: Transport;
  cycles: number;
  concurrency: number;
  warmupCycles: number;
  seconds: number;
  /** Completed cycles per second (errors included: they ran to the end too). */
  rate: number;
  errors: number;
  errorCodes: Record<string, number>;
  /** Time of a whole cycle, connect to close. */
  cycleMs: Latency;
  /** /v1/stats once settled (or the last poll when it did not). */
  stats: ChurnStats;
  statsSettled: boolean;
  /** From the last cycle's end until /v1/stats read all zero, ms (the last poll's when not settled). */
  settleMs: number;
  /** Heap samples came right after full GCs (a spawned gate); otherwise /metrics, not judged. */
  gc: boolean;
  /** JS heap used + external, MB. */
  heapBeforeMb: number | null;
  heapAfterMb: number | null;
  heapGrowthMb: number | null;
  heapLimitMb: number;
  rssBeforeMb: number;
  rssAfterMb: number;
}

class CycleTimeout extends Error {}

type Stage = 'connect' | 'welcome' | 'response' | 'close';
const STAGE_WAIT: Record<Stage, string> = {
  connect: 'the connection',
  welcome: 'WELCOME',
  response: 'the RESPONSE',
  close: 'the gate to close the link after BYE logout',
};

/** One cycle's link, transport-neutral. */
interface Link {
  send(f: Frame): void;
  destroy(): void;
}

const hello = (i: number): Frame => frame(FrameType.HELLO, 0, Buffer.from(JSON.stringify({ token: `churn-${i}` })));
const BYE_LOGOUT = frame(FrameType.BYE, 0, Buffer.from(JSON.stringify({ code: 'logout' })));

function codeOf(f: Frame): string {
  try {
    return String((JSON.parse(f.body.toString()) as { code?: unknown }).code);
  } catch {
    return 'unknown';
  }
}

/**
 * Runs cycle `i`. Resolves with null when it went through, or an error code (ERROR answer, BYE
 * from the gate, a link closed early, a socket error); rejects with CycleTimeout past
 * CYCLE_TIMEOUT_MS. `active` holds the link's destroyer while it runs (for an aborted run).
 */
function cycle(transport: Transport, at: HostPort, i: number, active: Set<() => void>): Promise<string | null> {
  const localAddress = SOURCE_ADDRESSES[i % SOURCE_ADDRESSES.length]!;
  const body = Buffer.from(JSON.stringify({ i }));
  return new Promise((resolve, reject) => {
    let stage: Stage = 'connect';
    let error: string | null = null;
    let settled = false;
    let link: Link;
    const finish = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      active.delete(abort);
      link.destroy();
      if (err) reject(err);
      else resolve(error);
    };
    const abort = (): void => finish(null);
    const timer = setTimeout(
      () => finish(new CycleTimeout(`cycle ${i} (token churn-${i}) took more than ${CYCLE_TIMEOUT_MS / 1000} s: still waiting for ${STAGE_WAIT[stage]}`)),
      CYCLE_TIMEOUT_MS,
    );
    const onOpen = (): void => {
      stage = 'welcome';
      link.send(hello(i));
    };
    const onFrame = (f: Frame): void => {
      if (f.type === FrameType.PING) return link.send(frame(FrameType.PONG, f.seq));
      if (stage === 'welcome' && f.type === FrameType.WELCOME) {
        stage = 'response';
        link.send(frame(FrameType.REQUEST, 1, body, ROUTE));
      } else if (stage === 'response' && f.seq === 1 && (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR)) {
        if (f.type === FrameType.ERROR) error ??= `ERROR ${codeOf(f)}`;
        else if (!f.body.equals(body)) error ??= 'response body differs from the request';
        stage = 'close';
        link.send(BYE_LOGOUT);
      } else if (f.type === FrameType.BYE && stage !== 'close') error ??= `BYE ${codeOf(f)} during ${stage}`;
    };
    const onClose = (): void => {
      if (stage !== 'close') error ??= `closed while waiting for ${STAGE_WAIT[stage]}`;
      finish(null);
    };
    const onError = (e: Error & { code?: string }): void => {
      if (stage !== 'close') error ??= `socket ${e.code ?? e.message}`;
    };

    if (transport === 'tcp') {
      let pending: Buffer | null = null;
      const socket: Socket = netConnect({ host: at.host, port: at.port, localAddress });
      socket.setNoDelay(true);
      link = { send: (f) => void socket.write(encodeFrame(f, true)), destroy: () => socket.destroy() };
      socket.once('connect', onOpen);
      socket.on('data', (chunk: Buffer) => {
        const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
        pending = null;
        let off = 0;
        while (buf.length - off >= PREFIX_BYTES) {
          const len = buf.readUInt32BE(off);
          if (len < 8 || len > MAX_FRAME + 8) {
            error ??= `bad frame length ${len}`;
            socket.destroy();
            return;
          }
          if (buf.length - off < PREFIX_BYTES + len) break;
          const at0 = off + PREFIX_BYTES;
          onFrame({ type: buf[at0]!, flags: buf[at0 + 1]!, route: buf.readUInt16BE(at0 + 2), seq: buf.readUInt32BE(at0 + 4), body: buf.subarray(at0 + 8, at0 + len) });
          off += PREFIX_BYTES + len;
        }
        if (off < buf.length) pending = Buffer.from(buf.subarray(off));
      });
      socket.on('error', onError);
      socket.once('close', onClose);
    } else {
      const ws = new WebSocket(`ws://${at.host}:${at.port}/`, { localAddress, perMessageDeflate: false, maxPayload: MAX_FRAME });
      ws.binaryType = 'nodebuffer';
      link = { send: (f) => ws.send(encodeFrame(f, false)), destroy: () => ws.terminate() };
      ws.once('open', onOpen);
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary) return;
        try {
          onFrame(parseFrame(data, MAX_FRAME));
        } catch (e) {
          error ??= `bad frame: ${(e as Error).message}`;
          ws.terminate();
        }
      });
      ws.on('error', onError);
      ws.once('close', onClose);
    }
    active.add(abort);
  });
}

/**
 * Runs cycles `first .. first+n-1`, `concurrency` at a time. The first cycle past its time limit
 * stops the run: the others still open are cut and the timeout is thrown.
 */
async function runCycles(
  o: ChurnRunOptions,
  first: number,
  n: number,
  onDone: (error: string | null, ms: number) => void,
): Promise<void> {
  const active = new Set<() => void>();
  let next = 0;
  const failure: { e: Error | null } = { e: null };
  const lane = async (): Promise<void> => {
    while (next < n && !failure.e) {
      const i = first + next++;
      const t0 = performance.now();
      try {
        const err = await cycle(o.transport, o.at, i, active);
        if (!failure.e) onDone(err, performance.now() - t0);
      } catch (e) {
        if (!failure.e) {
          failure.e = e as Error;
          for (const cut of [...active]) cut();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, n) }, lane));
  if (failure.e) throw failure.e;
}

async function readStats(o: ChurnRunOptions): Promise<ChurnStats> {
  const j = await readServerStats(o.api, o.apiKey);
  return { connections: Number(j.connections), sessions: Number(j.sessions), inflight: Number(j.inflight), queued: Number(j.queued) };
}

const zero = (s: ChurnStats): boolean => s.connections === 0 && s.sessions === 0 && s.inflight === 0 && s.queued === 0;

/** Polls /v1/stats until everything is 0 or `timeoutMs` passed. */
async function settle(o: ChurnRunOptions, timeoutMs: number): Promise<{ stats: ChurnStats; settled: boolean; ms: number }> {
  const t0 = Date.now();
  for (;;) {
    const stats = await readStats(o);
    if (zero(stats)) return { stats, settled: true, ms: Date.now() - t0 };
    if (Date.now() - t0 >= timeoutMs) return { stats, settled: false, ms: Date.now() - t0 };
    await sleep(SETTLE_POLL_MS);
  }
}

const mb = (bytes: number): number => Math.round((bytes / 1048576) * 100) / 100;

export async function runChurn(o: ChurnRunOptions): Promise<ChurnResult> {
  // Warm-up, then the baseline once the gate is empty and the warm-up's request groups are gone.
  const warmupCycles = Math.min(WARMUP_CYCLES, o.cycles);
  await runCycles(o, o.cycles, warmupCycles, () => undefined).catch((e: Error) => {
    throw new Error(`warm-up (cycles ${o.cycles}..${o.cycles + warmupCycles - 1}): ${e.message}`, { cause: e });
  });
  const warm = await settle(o, SETTLE_TIMEOUT_MS);
  if (!warm.settled) throw new Error(`the gate did not come back to zero after ${warmupCycles} warm-up cycles: /v1/stats ${JSON.stringify(warm.stats)}`);
  await sleep(LINGER_WAIT_MS);
  const before = await o.memory.sample();

  const hist = createHistogram();
  const errorCodes: Record<string, number> = {};
  let done = 0;
  let errors = 0;
  let lastDone = 0;
  const stopProgress = progressLine(o.progress, o.log, () => {
    const r = done - lastDone;
    lastDone = done;
    return `churn/${o.transport}  ${done.toLocaleString('en-US')}/${o.cycles.toLocaleString('en-US')} cycles  ${r.toLocaleString('en-US')} cycles/s  p99 ${latencyOf(hist).p99} ms  errors ${errors}`;
  });
  const t0 = performance.now();
  try {
    await runCycles(o, 0, o.cycles, (err, ms) => {
      done++;
      hist.record(Math.max(1, Math.round(ms * 1e6)));
      if (err !== null) {
        errors++;
        errorCodes[err] = (errorCodes[err] ?? 0) + 1;
      }
    });
  } catch (e) {
    throw new Error(`${(e as Error).message} (${done} of ${o.cycles} cycles done, ${errors} errors)`, { cause: e });
  } finally {
    stopProgress();
  }
  const seconds = (performance.now() - t0) / 1000;

  const after = await settle(o, SETTLE_TIMEOUT_MS);
  // The heap: after the request groups' linger; re-sampled (bounded) while over the limit.
  await sleep(LINGER_WAIT_MS);
  let last: MemorySample = await o.memory.sample();
  const growth = (s: MemorySample): number | null => (before.heap === null || s.heap === null ? null : s.heap - before.heap);
  const deadline = Date.now() + HEAP_WAIT_MS;
  while ((growth(last) ?? 0) > HEAP_LIMIT && Date.now() < deadline) {
    await sleep(500);
    last = await o.memory.sample();
  }
  const g = growth(last);
  return {
    scenario: 'churn',
    transport: o.transport,
    cycles: done,
    concurrency: o.concurrency,
    warmupCycles,
    seconds: Math.round(seconds * 100) / 100,
    rate: Math.round(done / seconds),
    errors,
    errorCodes,
    cycleMs: latencyOf(hist),
    stats: after.stats,
    statsSettled: after.settled,
    settleMs: after.ms,
    gc: before.gc && last.gc,
    heapBeforeMb: before.heap === null ? null : mb(before.heap),
    heapAfterMb: last.heap === null ? null : mb(last.heap),
    heapGrowthMb: g === null ? null : mb(g),
    heapLimitMb: mb(HEAP_LIMIT),
    rssBeforeMb: mb(before.rss),
    rssAfterMb: mb(last.rss),
  };
}

/** Heap growth is judged only on samples taken after a full GC. */
export function churnOk(r: ChurnResult): boolean {
  const heapOk = !r.gc || r.heapGrowthMb === null || r.heapGrowthMb <= r.heapLimitMb;
  return r.errors === 0 && r.statsSettled && heapOk;
}

export function churnRows(r: ChurnResult): [string, string][] {
  const s = r.stats;
  const heap =
    r.heapBeforeMb === null || r.heapAfterMb === null || r.heapGrowthMb === null
      ? 'n/a'
      : `${r.heapBeforeMb} → ${r.heapAfterMb} MB (${r.heapGrowthMb >= 0 ? '+' : ''}${r.heapGrowthMb} MB; limit +${r.heapLimitMb} MB${r.gc ? ', after full GC' : ', /metrics without GC: not judged'})`;
  return [
    ['scenario', `churn over ${r.transport}: connect, HELLO, REQUEST, BYE logout, close`],
    ['cycles × concurrency', `${r.cycles.toLocaleString('en-US')} × ${r.concurrency} (after ${r.warmupCycles} warm-up cycles)`],
    ['duration', `${r.seconds} s`],
    ['throughput', `${r.rate.toLocaleString('en-US')} cycles/s`],
    ['cycle p50 / p99 / max', `${r.cycleMs.p50} / ${r.cycleMs.p99} / ${r.cycleMs.max} ms`],
    ['errors', r.errors === 0 ? '0' : `${r.errors} ${JSON.stringify(r.errorCodes)}`],
    [
      '/v1/stats after',
      `connections ${s.connections}, sessions ${s.sessions}, inflight ${s.inflight}, queued ${s.queued} (${r.statsSettled ? `zero after ${r.settleMs} ms` : `NOT zero after ${r.settleMs} ms`})`,
    ],
    ['server heap + external', heap],
    ['server RSS before / after', `${r.rssBeforeMb} / ${r.rssAfterMb} MB`],
  ];
}

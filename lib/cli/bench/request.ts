// The `request` scenario: N clients send REQUESTs and time the answers. Closed loop (each client
// keeps `inflight` outstanding) or open loop (`rate` requests/s in total, whatever the answers do).
import { createHistogram } from 'node:perf_hooks';
import { FrameType, frame, type Frame } from '../../frame.js';
import { connectMany, cpuUs, latencyOf, MeasuredPhase, median, progressLine, rssBytes, sleep, type BenchClient, type HostPort, type Latency, type Transport } from './common.js';

export interface RequestRunOptions {
  transport: Transport;
  at: HostPort;
  connections: number;
  /** Closed loop: requests outstanding per connection. */
  inflight: number;
  /** Open loop: requests per second across all connections; 0 = closed loop. */
  rate: number;
  bodyBytes: number;
  route: number;
  durationMs: number;
  /** Fixed work: the measured phase ends after this many answers (durationMs is then a cap); null = timed. */
  requests: number | null;
  /** Traffic runs this long before counting starts (sockets, JIT and pools warm). */
  warmupMs: number;
  verify: boolean;
  progress: boolean;
  log: (s: string) => void;
  /** Server process whose RSS is reported, if we know it. */
  serverPid?: number | undefined;
  /** Told when the measured phase starts and ends (the cluster suite samples CPU and Redis there). */
  onMeasure?: (edge: 'start' | 'end') => void;
}

export interface RequestResult {
  scenario: 'request';
  transport: Transport;
  mode: 'closed' | 'open';
  connections: number;
  inflight: number;
  targetRate: number | null;
  bodyBytes: number;
  route: number;
  seconds: number;
  /** --requests given: the answers the run had to count (it ended short of them if `requests` is less). */
  targetRequests: number | null;
  requests: number;
  rate: number;
  errors: number;
  errorCodes: Record<string, number>;
  latencyMs: Latency;
  verify: { checked: boolean; lost: number; duplicates: number; outOfOrder: number; badBodies: number } | null;
  /** Open loop: sends skipped because a connection already had OPEN_LOOP_CAP outstanding. */
  skipped: number;
  serverRssMb: number | null;
  /** The server's CPU (utime + stime) per answered request over the measured phase, µs; null when its pid is unknown. */
  serverCpuUsPerRequest: number | null;
}

/** Open loop: most requests outstanding on one connection before new sends are skipped (and counted). */
const OPEN_LOOP_CAP = 1_000;
/** After the run, answers still in flight get this long to land. */
const DRAIN_MS = 5_000;

interface ClientState {
  c: BenchClient;
  nextSeq: number;
  /** Next seq an in-order answer must carry. */
  nextAnswer: number;
  sentAt: Map<number, number>;
}

export async function runRequest(o: RequestRunOptions): Promise<RequestResult> {
  const hist = createHistogram();
  const body = Buffer.alloc(o.bodyBytes, 0x61);
  for (let i = 0; i < body.length; i++) body[i] = 0x61 + (i % 26);
  let counting = false;
  /** Only requests sent from here on are counted: a backlog built during warm-up stays out. */
  let countFrom = Infinity;
  let running = true;
  let done = 0;
  let errors = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let badBodies = 0;
  let skipped = 0;
  const errorCodes: Record<string, number> = {};
  const now = (): number => performance.now();
  // The server's CPU is read at the measured phase's edges, with the answers counted there.
  const cpu = { start: NaN, end: NaN, doneAtStart: 0, doneAtEnd: 0 };
  const phase = new MeasuredPhase((edge) => {
    if (edge === 'start') {
      cpu.start = cpuUs(o.serverPid);
      cpu.doneAtStart = done;
    } else {
      cpu.end = cpuUs(o.serverPid);
      cpu.doneAtEnd = done;
    }
    o.onMeasure?.(edge);
  });

  const send = (s: ClientState): void => {
    const seq = s.nextSeq++;
    s.sentAt.set(seq, now());
    s.c.send(frame(FrameType.REQUEST, seq, body, o.route));
  };
  const onAnswer = (s: ClientState, f: Frame): void => {
    const t0 = s.sentAt.get(f.seq);
    if (t0 === undefined) {
      duplicates++;
      return;
    }
    s.sentAt.delete(f.seq);
    if (f.seq !== s.nextAnswer) outOfOrder++;
    s.nextAnswer = f.seq + 1;
    if (counting && t0 >= countFrom) {
      hist.record(Math.max(1, Math.round((now() - t0) * 1e6)));
      if (++done === o.requests) {
        counting = false; // exactly --requests counted; the rest in flight only drain
        phase.end();
      }
    }
    if (f.type === FrameType.ERROR) {
      errors++;
      let code = 'unknown';
      try {
        code = String((JSON.parse(f.body.toString()) as { code?: unknown }).code);
      } catch {
        /* keep unknown */
      }
      errorCodes[code] = (errorCodes[code] ?? 0) + 1;
    } else if (o.verify && !f.body.equals(body)) badBodies++;
    if (running && o.rate === 0) send(s);
  };

  const clients = await connectMany(o.transport, o.at, o.connections);
  const states: ClientState[] = clients.map((c) => ({ c, nextSeq: 1, nextAnswer: 1, sentAt: new Map() }));
  // A link the server closes mid-run ends the run: its answers would never come, and a run of
  // fixed work would wait for them until the cap.
  let closing = false;
  let dropped = 0;
  for (const s of states)
    s.c.onClose = () => {
      if (closing) return;
      dropped++;
      phase.end();
    };
  for (const s of states)
    s.c.onFrame = (f) => {
      if (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR) onAnswer(s, f);
      else if (f.type === FrameType.PING) s.c.send(frame(FrameType.PONG, f.seq));
    };

  let ticker: NodeJS.Timeout | null = null;
  const start = now();
  if (o.rate === 0) {
    for (const s of states) for (let k = 0; k < o.inflight; k++) send(s);
  } else {
    // Open loop: every ms, send what the schedule says is due, round-robin over the connections.
    let sent = 0;
    let rr = 0;
    ticker = setInterval(() => {
      const due = Math.floor(((now() - start) * o.rate) / 1000) - sent;
      for (let k = 0; k < due; k++) {
        const s = states[rr++ % states.length]!;
        sent++;
        if (s.sentAt.size >= OPEN_LOOP_CAP) {
          if (counting) skipped++;
          continue;
        }
        send(s);
      }
    }, 1);
  }

  await sleep(o.warmupMs);
  hist.reset();
  phase.start(o.durationMs);
  counting = true;
  const t0 = now();
  countFrom = t0;
  let lastDone = 0;
  const stopProgress = progressLine(o.progress, o.log, () => {
    const r = done - lastDone;
    lastDone = done;
    const l = latencyOf(hist);
    return `request/${o.transport}  ${r.toLocaleString('en-US')} req/s  p50 ${l.p50} ms  p99 ${l.p99} ms  errors ${errors}`;
  });
  await phase.ended;
  const seconds = (now() - t0) / 1000;
  const requests = done;
  const latencyMs = latencyOf(hist);
  running = false;
  counting = false;
  if (ticker) clearInterval(ticker);
  stopProgress();
  const serverRss = rssBytes(o.serverPid);
  // Let the answers still in flight land (bounded), so --verify sees every one.
  const deadline = Date.now() + DRAIN_MS;
  while (states.some((s) => s.sentAt.size > 0) && Date.now() < deadline) await sleep(20);
  const lost = states.reduce((n, s) => n + s.sentAt.size, 0);
  closing = true;
  for (const s of states) s.c.close();
  if (dropped > 0) throw new Error(`${dropped} of ${states.length} connections closed by the server during the run`);
  return {
    scenario: 'request',
    transport: o.transport,
    mode: o.rate === 0 ? 'closed' : 'open',
    connections: o.connections,
    inflight: o.rate === 0 ? o.inflight : 0,
    targetRate: o.rate === 0 ? null : o.rate,
    bodyBytes: o.bodyBytes,
    route: o.route,
    seconds: Math.round(seconds * 100) / 100,
    targetRequests: o.requests,
    requests,
    rate: Math.round(requests / seconds),
    errors,
    errorCodes,
    latencyMs,
    verify: o.verify ? { checked: true, lost, duplicates, outOfOrder, badBodies } : null,
    skipped,
    serverRssMb: serverRss === null ? null : Math.round(serverRss / 1048576),
    serverCpuUsPerRequest: Number.isFinite(cpu.end - cpu.start) && cpu.doneAtEnd > cpu.doneAtStart ? Math.round(((cpu.end - cpu.start) / (cpu.doneAtEnd - cpu.doneAtStart)) * 10) / 10 : null,
  };
}

export function requestOk(r: RequestResult): boolean {
  return r.errors === 0 && (r.targetRequests === null || r.requests === r.targetRequests) && (!r.verify || (r.verify.lost === 0 && r.verify.duplicates === 0 && r.verify.outOfOrder === 0 && r.verify.badBodies === 0));
}

export function requestRows(r: RequestResult): [string, string][] {
  return [
    ['scenario', `request over ${r.transport}, ${r.mode} loop`],
    [r.mode === 'closed' ? 'connections × in flight' : 'connections, target rate', r.mode === 'closed' ? `${r.connections} × ${r.inflight}` : `${r.connections}, ${r.targetRate} req/s`],
    ['body, route', `${r.bodyBytes} B, ${r.route}`],
    ['duration', `${r.seconds} s`],
    ['requests', `${r.requests.toLocaleString('en-US')}${r.targetRequests === null ? '' : ` of ${r.targetRequests.toLocaleString('en-US')} asked`}`],
    ['throughput', `${r.rate.toLocaleString('en-US')} req/s`],
    ['latency p50 / p90 / p99 / p99.9', `${r.latencyMs.p50} / ${r.latencyMs.p90} / ${r.latencyMs.p99} / ${r.latencyMs.p999} ms`],
    ['latency max', `${r.latencyMs.max} ms`],
    ['errors', r.errors === 0 ? '0' : `${r.errors} ${JSON.stringify(r.errorCodes)}`],
    ...(r.skipped ? ([['skipped (connection over cap)', String(r.skipped)]] as [string, string][]) : []),
    [
      'verify',
      r.verify
        ? `lost ${r.verify.lost}, duplicates ${r.verify.duplicates}, out of order ${r.verify.outOfOrder}, bad bodies ${r.verify.badBodies}`
        : 'off (--verify checks every answer)',
    ],
    ['server RSS', r.serverRssMb === null ? 'n/a' : `${r.serverRssMb} MB`],
    ['server CPU per request', r.serverCpuUsPerRequest === null ? 'n/a (--server-pid gives it for a running gate)' : `${r.serverCpuUsPerRequest} µs`],
  ];
}

/**
 * Several short runs of one server as one, robust to bursts of a neighbour on a shared machine:
 * the rate and the server's CPU per request are the medians of the runs' (a burst inflates one
 * run's CPU, which a sum would carry whole); requests, seconds and errors are summed; the latency
 * is that of the median-rate run.
 */
export function mergeRuns(rs: readonly RequestResult[]): RequestResult {
  if (rs.length === 0) throw new Error('mergeRuns: no runs');
  const sum = (f: (r: RequestResult) => number): number => rs.reduce((n, r) => n + f(r), 0);
  const errorCodes: Record<string, number> = {};
  for (const r of rs) for (const [k, v] of Object.entries(r.errorCodes)) errorCodes[k] = (errorCodes[k] ?? 0) + v;
  const verified = rs.every((r) => r.verify !== null);
  const cpuKnown = rs.every((r) => r.serverCpuUsPerRequest !== null);
  const byRate = [...rs].sort((a, b) => a.rate - b.rate);
  return {
    ...rs[0]!,
    seconds: sum((r) => r.seconds),
    requests: sum((r) => r.requests),
    rate: median(rs.map((r) => r.rate)),
    errors: sum((r) => r.errors),
    errorCodes,
    latencyMs: byRate[byRate.length >> 1]!.latencyMs,
    verify: verified
      ? {
          checked: rs.every((r) => r.verify!.checked),
          lost: sum((r) => r.verify!.lost),
          duplicates: sum((r) => r.verify!.duplicates),
          outOfOrder: sum((r) => r.verify!.outOfOrder),
          badBodies: sum((r) => r.verify!.badBodies),
        }
      : null,
    skipped: sum((r) => r.skipped),
    serverRssMb: rs[rs.length - 1]!.serverRssMb,
    serverCpuUsPerRequest: cpuKnown ? median(rs.map((r) => r.serverCpuUsPerRequest!)) : null,
  };
}

// The `push` scenario: N logged-in clients; the bench POSTs /v1/push/batch (or /v1/broadcast) as
// fast as the server accepts, a bounded number of HTTP requests at a time, and counts the PUSH
// frames the clients receive per second. Each push carries its send time, so delivery latency
// is measured too. --verify: every client got seqs 1..k exactly once and in order, k being the
// last seq the API reported for it.
import { createHistogram } from 'node:perf_hooks';
import { Pool } from 'undici';
import { FrameType, frame, type Frame } from '../../frame.js';
import { connectMany, latencyOf, MeasuredPhase, progressLine, rssBytes, sleep, type BenchClient, type HostPort, type Latency, type Transport } from './common.js';

export interface PushRunOptions {
  transport: Transport;
  at: HostPort;
  /** Cluster fan-out: half of the clients connect here instead (another gate of the cluster). */
  alsoAt?: HostPort;
  api: HostPort;
  apiKey: string | null;
  clients: number;
  batch: number;
  via: 'batch' | 'broadcast';
  /** Push body size in bytes (at least the timestamp's ~12 bytes). */
  bodyBytes: number;
  route: number;
  durationMs: number;
  /** Fixed work: the measured phase ends after this many PUSH frames received (durationMs is then a cap); null = timed. */
  pushes: number | null;
  warmupMs: number;
  /** HTTP requests in flight to the push API. */
  apiInflight: number;
  verify: boolean;
  progress: boolean;
  log: (s: string) => void;
  serverPid?: number | undefined;
  /** Told when the measured phase starts and ends (the cluster suite samples CPU and Redis there). */
  onMeasure?: (edge: 'start' | 'end') => void;
}

export interface PushResult {
  scenario: 'push';
  transport: Transport;
  via: 'batch' | 'broadcast';
  clients: number;
  batch: number;
  bodyBytes: number;
  seconds: number;
  /** --pushes given: the pushes the run had to count (it ended short of them if `pushes` is less). */
  targetPushes: number | null;
  /** PUSH frames received in the measured window. */
  pushes: number;
  rate: number;
  /** API calls completed in the measured window, per second. */
  apiCallsPerSecond: number;
  apiErrors: number;
  buffered: number;
  latencyMs: Latency;
  verify: { checked: boolean; lost: number; duplicates: number; outOfOrder: number; disconnected: number } | null;
  serverRssMb: number | null;
}

/** A client ACKs once it is this many pushes past its last ACK (keeps the gate's replay buffer small). */
const ACK_EVERY = 32;
const DRAIN_MS = 10_000;

interface PushClient {
  c: BenchClient;
  /** Highest seq received with none missing below it. */
  last: number;
  acked: number;
  /** Highest seq the API reported for this player. */
  expected: number;
}

export async function runPush(o: PushRunOptions): Promise<PushResult> {
  const hist = createHistogram();
  let counting = false;
  let running = true;
  let received = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  const now = (): number => performance.now();
  const phase = new MeasuredPhase(o.onMeasure);

  const half = o.alsoAt ? Math.ceil(o.clients / 2) : o.clients;
  const clients = [
    ...(await connectMany(o.transport, o.at, half)),
    ...(o.alsoAt ? await connectMany(o.transport, o.alsoAt, o.clients - half, 256, half) : []),
  ];
  const states: PushClient[] = clients.map((c) => ({ c, last: 0, acked: 0, expected: 0 }));
  const onPush = (s: PushClient, f: Frame): void => {
    if (f.seq === s.last + 1) s.last = f.seq;
    else if (f.seq <= s.last) {
      duplicates++;
      return;
    } else {
      outOfOrder++;
      s.last = f.seq;
    }
    if (counting) {
      if (++received === o.pushes) {
        counting = false; // exactly --pushes counted; what is still on its way only drains
        running = false;
        phase.end();
      }
      // The body is the JSON text of the data: a number, or a string starting with the number.
      const t = parseFloat(f.body.toString('latin1', f.body[0] === 0x22 ? 1 : 0, Math.min(f.body.length, 24)));
      if (t > 0) hist.record(Math.max(1, Math.round((now() - t) * 1e6)));
    }
    if (s.last - s.acked >= ACK_EVERY) {
      s.acked = s.last;
      s.c.send(frame(FrameType.ACK, s.last));
    }
  };
  // A link the server closes mid-run ends the measured phase (it counts as disconnected below).
  let closing = false;
  for (const s of states)
    s.c.onClose = () => {
      if (!closing) phase.end();
    };
  for (const s of states)
    s.c.onFrame = (f) => {
      if (f.type === FrameType.PUSH) onPush(s, f);
      else if (f.type === FrameType.PING) s.c.send(frame(FrameType.PONG, f.seq));
    };

  // Request bodies: the per-player JSON prefix is built once; each call only adds its send time.
  const pad = Math.max(0, o.bodyBytes - 16);
  const data = (t: number): string => (pad === 0 ? t.toFixed(3) : `"${t.toFixed(3)} ${'x'.repeat(pad)}"`);
  const prefixes = states.map((s) => `{"playerId":${JSON.stringify(s.c.playerId)},"route":${o.route},"data":`);
  let cursor = 0;
  const nextBody = (): { body: string; first: number } => {
    const t = data(now());
    if (o.via === 'broadcast') return { body: `{"route":${o.route},"data":${t}}`, first: 0 };
    const first = cursor;
    const parts: string[] = new Array<string>(o.batch);
    for (let k = 0; k < o.batch; k++) parts[k] = `${prefixes[(first + k) % prefixes.length]}${t}}`;
    cursor = (first + o.batch) % prefixes.length;
    return { body: `{"messages":[${parts.join(',')}]}`, first };
  };

  const pool = new Pool(`http://${o.api.host}:${o.api.port}`, { connections: o.apiInflight, pipelining: 1, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`;
  let apiCalls = 0;
  let apiErrors = 0;
  let buffered = 0;
  let broadcasts = 0;
  let lastApiError = '';
  const path = o.via === 'batch' ? '/v1/push/batch' : '/v1/broadcast';
  const sender = async (): Promise<void> => {
    let failuresInARow = 0;
    while (running) {
      const { body, first } = nextBody();
      try {
        const res = await pool.request({ method: 'POST', path, headers, body });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode} ${text.slice(0, 200)}`);
        if (o.via === 'batch') {
          const results = (JSON.parse(text) as { results: ({ seq: number; status: string } | { error: string })[] }).results;
          for (let k = 0; k < results.length; k++) {
            const r = results[k]!;
            if ('seq' in r) {
              const s = states[(first + k) % states.length]!;
              if (r.seq > s.expected) s.expected = r.seq;
              if (r.status === 'buffered') buffered++;
            } else apiErrors++;
          }
        } else {
          const r = JSON.parse(text) as { sent: number; buffered: number; missing: number };
          buffered += r.buffered;
          broadcasts++;
        }
        if (counting) apiCalls++;
        failuresInARow = 0;
      } catch (e) {
        apiErrors++;
        lastApiError = (e as Error).message;
        if (++failuresInARow >= 10) throw new Error(`push API failing: ${lastApiError}`, { cause: e });
        await sleep(50);
      }
    }
  };
  const senders = Array.from({ length: o.apiInflight }, sender);
  const sendersDone = Promise.all(senders);
  const senderError: { e: Error | null } = { e: null };
  sendersDone.catch((e: unknown) => {
    senderError.e = e as Error;
    running = false;
    phase.end();
  });

  await sleep(o.warmupMs);
  hist.reset();
  phase.start(o.durationMs);
  counting = true;
  const t0 = now();
  let lastReceived = 0;
  const stopProgress = progressLine(o.progress, o.log, () => {
    const r = received - lastReceived;
    lastReceived = received;
    const l = latencyOf(hist);
    return `push/${o.transport} via ${o.via}  ${r.toLocaleString('en-US')} pushes/s  p50 ${l.p50} ms  p99 ${l.p99} ms  errors ${apiErrors}`;
  });
  await phase.ended;
  const seconds = (now() - t0) / 1000;
  const pushes = received;
  const calls = apiCalls;
  const latencyMs = latencyOf(hist);
  counting = false;
  running = false;
  stopProgress();
  const serverRss = rssBytes(o.serverPid);
  await sendersDone.catch(() => undefined);
  await pool.close();
  if (o.via === 'broadcast') for (const s of states) s.expected = broadcasts;
  // Let the pushes still on their way land (bounded), then check every client.
  const deadline = Date.now() + DRAIN_MS;
  while (states.some((s) => s.last < s.expected && !s.c.closed) && Date.now() < deadline) await sleep(20);
  let lost = 0;
  let disconnected = 0;
  closing = true;
  for (const s of states) {
    if (s.last < s.expected) lost += s.expected - s.last;
    if (s.c.closed) disconnected++;
    s.c.close();
  }
  if (senderError.e) throw senderError.e;
  return {
    scenario: 'push',
    transport: o.transport,
    via: o.via,
    clients: o.clients,
    batch: o.via === 'batch' ? o.batch : o.clients,
    bodyBytes: o.bodyBytes,
    seconds: Math.round(seconds * 100) / 100,
    targetPushes: o.pushes,
    pushes,
    rate: Math.round(pushes / seconds),
    apiCallsPerSecond: Math.round((calls / seconds) * 10) / 10,
    apiErrors,
    buffered,
    latencyMs,
    verify: o.verify ? { checked: true, lost, duplicates, outOfOrder, disconnected } : null,
    serverRssMb: serverRss === null ? null : Math.round(serverRss / 1048576),
  };
}

export function pushOk(r: PushResult): boolean {
  return r.apiErrors === 0 && (r.targetPushes === null || r.pushes === r.targetPushes) && (!r.verify || (r.verify.lost === 0 && r.verify.duplicates === 0 && r.verify.outOfOrder === 0 && r.verify.disconnected === 0));
}

export function pushRows(r: PushResult): [string, string][] {
  return [
    ['scenario', `push over ${r.transport} via ${r.via === 'batch' ? '/v1/push/batch' : '/v1/broadcast'}`],
    ['clients, pushes per call', `${r.clients}, ${r.batch}`],
    ['body', `${r.bodyBytes} B`],
    ['duration', `${r.seconds} s`],
    ['pushes received', `${r.pushes.toLocaleString('en-US')}${r.targetPushes === null ? '' : ` of ${r.targetPushes.toLocaleString('en-US')} asked`}`],
    ['throughput', `${r.rate.toLocaleString('en-US')} pushes/s (${r.apiCallsPerSecond} API calls/s)`],
    ['delivery latency p50 / p90 / p99', `${r.latencyMs.p50} / ${r.latencyMs.p90} / ${r.latencyMs.p99} ms`],
    ['API errors, buffered', `${r.apiErrors}, ${r.buffered}`],
    [
      'verify',
      r.verify
        ? `lost ${r.verify.lost}, duplicates ${r.verify.duplicates}, out of order ${r.verify.outOfOrder}, disconnected ${r.verify.disconnected}`
        : 'off (--verify checks every push)',
    ],
    ['server RSS', r.serverRssMb === null ? 'n/a' : `${r.serverRssMb} MB`],
  ];
}

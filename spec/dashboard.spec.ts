/**
 * The dashboard's HTTP side without a browser (lib/streams/dashboard.ts): the page and its
 * assets need no key, the live stream does; samples arrive once a second with the gate's
 * figures; many streams share one sampler; past the cap a stream gets 503; an open stream ends,
 * and does not hold the API open, when the gate shuts down.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import pino from 'pino';
import { defer, finalize, type Observable } from 'rxjs';
import type { GateConfig } from '../lib/config.js';
import { FrameType } from '../lib/frame.js';
import { startApi, type ApiServer } from '../lib/streams/api.js';
import { stats$, type StatsReading, type StatsSample } from '../lib/streams/stats.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp } from './helpers/testClient.js';
import { waitFor, waitForAsync, withTimeout } from './helpers/wait.js';

/** Bound on every wait in this file, ms (samples come once a second). */
const WAIT_MS = 15_000;
const KEY = 'dash-key';

async function gate(t: TestContext, over: Partial<GateConfig> = {}): Promise<Harness> {
  const h = await startGate(over);
  t.after(() => h.close());
  return h;
}

interface Stream {
  readonly status: number;
  readonly body: unknown;
  /** Every sample received so far, in order. */
  readonly samples: StatsSample[];
  /** Resolves when the server ended the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens /v1/stats/stream as the page does (fetch, a body reader, `data:` lines). */
async function openStream(t: TestContext, baseUrl: string, key: string | null): Promise<Stream> {
  const ctl = new AbortController();
  t.after(() => ctl.abort());
  const res = await fetch(`${baseUrl}/v1/stats/stream`, { headers: key ? { authorization: `Bearer ${key}` } : {}, signal: ctl.signal });
  const samples: StatsSample[] = [];
  if (res.status !== 200) return { status: res.status, body: await res.json(), samples, ended: Promise.resolve(), close: () => ctl.abort() };
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const ended = (async () => {
    let pending = '';
    for (;;) {
      let r;
      try {
        r = await reader.read();
      } catch {
        return; // aborted by close()
      }
      if (r.done) return;
      pending += r.value;
      let end;
      while ((end = pending.indexOf('\n\n')) >= 0) {
        for (const line of pending.slice(0, end).split('\n')) if (line.startsWith('data: ')) samples.push(JSON.parse(line.slice(6)));
        pending = pending.slice(end + 2);
      }
    }
  })();
  return { status: 200, body: null, samples, ended, close: () => ctl.abort() };
}

/** A second API listener on the harness's gate, with the dashboard options a test needs. */
async function extraApi(t: TestContext, h: Harness, opts: Parameters<typeof startApi>[3]): Promise<{ url: string; server: ApiServer }> {
  const server = await startApi(h.gate.gate, { host: '127.0.0.1', port: 0 }, pino({ level: 'silent' }), opts);
  t.after(() => server.close());
  return { url: `http://${server.address}`, server };
}

/** stats$ over a fake reading every 20 ms, counting its readings and its (un)subscriptions at the source. */
function countedStats() {
  const c = { reads: 0, activations: 0, teardowns: 0 };
  const read = (): StatsReading => {
    c.reads++;
    return {
      at: Date.now(),
      gateId: 'counted',
      counts: { requests: { ok: c.reads }, pushes: {}, upstreamBuckets: new Float64Array(14), slowConsumers: 0, protocolErrors: 0 },
      connections: { tcp: 0, ws: 0 },
      sessions: { online: 0, detached: 0, buffered: 0 },
      workers: { busy: 0, max: 1, queued: 0 },
      eventsQueued: 0,
      gates: null,
    };
  };
  const s$: Observable<StatsSample> = stats$(read, { periodMs: 20 });
  const counted$ = defer(() => {
    c.activations++;
    return s$.pipe(finalize(() => c.teardowns++));
  });
  return { c, stats$: counted$ };
}

describe('dashboard: page and assets', () => {
  it('should serve the page, its script, uPlot and the style sheets without a key, and nothing of the figures', async (t) => {
    const h = await gate(t, { apiKey: KEY });
    const page = await fetch(`${h.apiUrl}/dashboard`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await page.text();
    for (const asset of ['/dashboard/app.js', '/dashboard/uPlot.iife.min.js', '/dashboard/uPlot.min.css', '/dashboard/dashboard.css']) {
      assert.ok(html.includes(asset), `the page loads ${asset}`);
      const r = await fetch(`${h.apiUrl}${asset}`);
      assert.equal(r.status, 200, asset);
      assert.ok((await r.text()).length > 100, `${asset} has content`);
    }
    assert.ok(!html.includes(h.gate.gate.cfg.gateId), 'the page itself names nothing of the gate');
    assert.equal((await fetch(`${h.apiUrl}/dashboard/secret.txt`)).status, 404);
    assert.equal((await fetch(`${h.apiUrl}/dashboard/..%2Fpage.js`)).status, 404);
  });
});

describe('dashboard: /v1/stats/stream', () => {
  it('should answer 401 without the key or with a wrong one, as /v1/* does', async (t) => {
    const h = await gate(t, { apiKey: KEY });
    for (const key of [null, 'wrong']) {
      const s = await openStream(t, h.apiUrl, key);
      assert.equal(s.status, 401);
      assert.equal((s.body as { error: string }).error, 'unauthorized');
    }
  });

  it('should send a sample a second with the gate’s figures, requests/s and upstream percentiles included', async (t) => {
    const h = await gate(t, { apiKey: KEY, gateId: 'dash-1' });
    const c = await connectTcp(h.tcpPort);
    t.after(() => c.destroy());
    await c.hello({ token: 'ann' });
    const s = await openStream(t, h.apiUrl, KEY);
    assert.equal(s.status, 200);
    let seq = 0;
    const answered = (): number => c.frames.reduce((n, f) => n + (f.type === FrameType.RESPONSE ? 1 : 0), 0);
    // Requests, one at a time, go on until a sample shows them: however slow the machine, some settle inside one interval.
    const sample = await waitFor(
      'a sample with requests/s > 0',
      () => {
        if (answered() === seq) c.request(1, ++seq, { n: seq });
        return s.samples.find((x) => x.requests.perSec > 0);
      },
      WAIT_MS,
    );
    assert.equal(sample.gateId, 'dash-1');
    assert.deepEqual(sample.connections, { tcp: 1, ws: 0 });
    assert.equal(sample.sessions.online, 1);
    assert.ok(sample.requests.p50Ms !== null && sample.requests.p50Ms > 0, 'upstream p50 from the interval’s calls');
    assert.ok(sample.requests.p99Ms! >= sample.requests.p50Ms);
    assert.ok(sample.intervalMs > 0);
    assert.equal(typeof sample.eventsQueued, 'number', 'single node: the backend event queue’s depth');
    assert.equal(sample.gates, null, 'single node: no cluster table');
  });

  it('should sample once for many streams: five open streams cost one reading a period', async (t) => {
    const h = await gate(t);
    const { c, stats$: counted$ } = countedStats();
    const { url } = await extraApi(t, h, { stats$: counted$ });
    const streams = await Promise.all([1, 2, 3, 4, 5].map(() => openStream(t, url, null)));
    await waitFor('ten samples on every stream', () => streams.every((s) => s.samples.length >= 10), WAIT_MS);
    const seen = new Set(streams.flatMap((s) => s.samples.map((x) => x.at)));
    const reads = c.reads;
    // One baseline, one reading per sample made, and at most one sample made but not yet received.
    assert.ok(reads <= seen.size + 2, `${reads} readings for ${seen.size} distinct samples`);
    assert.ok(reads < 2 * 10, `five streams of ≥ 10 samples each took ${reads} readings, not one per stream`);
    assert.equal(c.activations, 1, 'one subscription to the sampler, shared by the five streams');
    for (const s of streams) s.close();
    await waitFor('the sampler unsubscribed once every stream closed', () => c.teardowns === 1, WAIT_MS);
  });

  it('should answer 503 {error, message} past the stream cap, and take a stream again once one closed', async (t) => {
    const h = await gate(t);
    const { stats$: counted$ } = countedStats();
    const { url } = await extraApi(t, h, { stats$: counted$, maxStatsStreams: 2 });
    const a = await openStream(t, url, null);
    const b = await openStream(t, url, null);
    assert.deepEqual([a.status, b.status], [200, 200]);
    const over = await openStream(t, url, null);
    assert.equal(over.status, 503);
    assert.equal((over.body as { error: string }).error, 'too_many_streams');
    assert.match((over.body as { message: string }).message, /2 stats streams/);
    a.close();
    // The server counts the stream closed when its socket's close event fires: asked again until then.
    await waitForAsync('a stream accepted again after one closed', async () => (await openStream(t, url, null)).status === 200, WAIT_MS);
  });

  it('should end open streams when the gate shuts down, without holding the API open', async (t) => {
    const h = await startGate({ apiKey: KEY });
    t.after(() => h.close());
    const streams = [await openStream(t, h.apiUrl, KEY), await openStream(t, h.apiUrl, KEY)];
    await waitFor('a first sample', () => streams.every((s) => s.samples.length > 0), WAIT_MS);
    await withTimeout(h.close(), WAIT_MS, 'the gate (and its API) to close with two streams open');
    await withTimeout(Promise.all(streams.map((s) => s.ended)), WAIT_MS, 'the streams to end');
    const r = await api(h, 'GET', '/v1/stats', undefined, { authorization: `Bearer ${KEY}` }).catch((e: Error) => e);
    assert.ok(r instanceof Error, 'the API is closed');
  });

  it('should close a connection busy when the API closes, so a dashboard asking again on it cannot hold the close', async (t) => {
    // What a dashboard open in a browser did: its stream ended at the close, it asked again on a
    // keep-alive connection that had been busy, and that new stream held the close forever.
    const h = await gate(t);
    const { server } = await extraApi(t, h, {});
    const [host, port] = [server.address.split(':')[0]!, Number(server.address.split(':')[1])];
    const sock = connect(port, host);
    t.after(() => sock.destroy());
    let got = '';
    sock.setEncoding('latin1').on('data', (d: string) => (got += d));
    const sockClosed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
    const body = JSON.stringify({ playerId: 'nobody', route: 1, data: {} });
    // The request is under way (the server answered 100 Continue), so the close does not count the connection idle.
    sock.write(`POST /v1/push HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nexpect: 100-continue\r\n\r\n`);
    await waitFor('100 Continue', () => got.includes('100 Continue'), WAIT_MS);
    const closing = server.close();
    await waitForAsync(
      'the listener to close (the close hook has run by then)',
      () =>
        new Promise<boolean>((resolve) =>
          connect(port, host)
            .on('connect', function (this: Socket) {
              this.destroy();
              resolve(false);
            })
            .on('error', () => resolve(true)),
        ),
      WAIT_MS,
    );
    sock.write(`${body}GET /v1/stats/stream HTTP/1.1\r\nhost: x\r\n\r\n`);
    try {
      await withTimeout(closing, WAIT_MS, 'the API to close while a connection was busy and a stream was asked for on it');
      await withTimeout(sockClosed, WAIT_MS, 'the connection to close');
    } finally {
      sock.destroy(); // on failure, lets the hooks' closes end
    }
    assert.match(got, /HTTP\/1\.1 404 [^]*connection: close/i, 'the answer under way is given, and closes its connection');
    assert.doesNotMatch(got, /text\/event-stream/, 'no stream opened after the close began');
  });
});

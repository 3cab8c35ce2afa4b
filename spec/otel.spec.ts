/**
 * --otlp (OpenTelemetry traces) against a real gate and an in-process OTLP/HTTP receiver: the span
 * tree of a REQUEST (client span → gate.request → one gate.upstream per attempt), the traceparent
 * the backend sees naming its attempt span, push API spans with their delivery counts, parent-based
 * sampling, a collector that refuses or never answers, and nothing at all with tracing off.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { otlpTracesUrl } from '../lib/config.js';
import { FrameType } from '../lib/frame.js';
import type { RequestTracer } from '../lib/requestTracer.js';
import { TRACES_FLUSH_MS } from '../lib/serve.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import type { FakeHandler, RecordedCall } from './helpers/fakeBackend.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './helpers/otlpReceiver.js';
import { connectTcp, type TestClient } from './helpers/testClient.js';
import { withTimeout } from './helpers/wait.js';

/** Bound on every wait in this file, ms. */
const WAIT_MS = 5_000;
const TP = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** The OTLP span kinds the gate uses. */
const SERVER = 2;
const CLIENT = 3;

/**
 * The fake backend for these gates: /connect names the player after the token; /rpc/7 answers 503
 * to the first attempt of every request (x-request-id) and echoes the retry; other routes echo.
 */
function backendFailingOnce(): FakeHandler {
  const seen = new Set<string>(); // x-request-ids /rpc/7 already failed once
  return (req) => {
    if (req.path === '/connect') return { status: 200, body: { playerId: (JSON.parse(req.body.toString()) as { token: string }).token } };
    if (req.path === '/rpc/7') {
      const id = String(req.headers['x-request-id']);
      if (!seen.has(id)) {
        seen.add(id);
        return { status: 503 };
      }
    }
    if (req.path.startsWith('/rpc/')) return { status: 200, body: req.body };
    return { status: 204 };
  };
}

const traceparentOf = (c: RecordedCall): RegExpExecArray => {
  const m = TP.exec(String(c.headers.traceparent));
  assert.ok(m, `traceparent header ${String(c.headers.traceparent)}`);
  return m;
};

/** A random W3C traceparent (the client's own span). */
function clientTraceparent(sampled: boolean): { header: string; traceId: string; spanId: string } {
  const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('').replace(/^0/, 'a');
  const traceId = hex(32);
  const spanId = hex(16);
  return { header: `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`, traceId, spanId };
}

/** Sends one REQUEST and waits for its RESPONSE. */
async function roundTrip(c: TestClient, route: number, seq: number): Promise<void> {
  c.request(route, seq, Buffer.from(`r${seq}`));
  const f = await c.next((x) => x.seq === seq && (x.type === FrameType.RESPONSE || x.type === FrameType.ERROR), WAIT_MS);
  assert.equal(f.type, FrameType.RESPONSE, `seq ${seq} answered`);
}

const tracerOf = (h: Harness): RequestTracer => {
  const t = h.gate.gate.tracer;
  assert.ok(t, 'the gate has a tracer');
  return t;
};

/** Exports every ended span now; the receiver has them once this resolves. */
const flush = (h: Harness): Promise<void> => withTimeout(tracerOf(h).flush(), WAIT_MS, 'the tracer to flush');

const spansOf = (r: OtlpReceiver, traceId: string): ReceivedSpan[] => r.spans.filter((s) => s.traceId === traceId);

async function metric(h: Harness, line: RegExp): Promise<number> {
  const text = await (await fetch(`${h.apiUrl}/metrics`)).text();
  const m = line.exec(text);
  assert.ok(m, `${String(line)} in /metrics`);
  return Number(m[1]);
}

// First in this file, before any gate with --otlp has loaded the SDK into this process.
describe('tracing off (no --otlp)', () => {
  it('should load no OpenTelemetry SDK module, call no collector, and forward the trace as before', async () => {
    const receiver = await startOtlpReceiver();
    // Were any exporter made, the SDK's own default would send here.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    const h = await startGate({}, backendFailingOnce());
    try {
      assert.equal(h.gate.gate.tracer, null);
      const c = await connectTcp(h.tcpPort);
      const parent = clientTraceparent(true);
      await c.hello({ token: 'off1', meta: { traceparent: parent.header } });
      await roundTrip(c, 7, 1);
      assert.equal((await api(h, 'POST', '/v1/push', { playerId: 'off1', route: 1, data: 'x' })).status, 200);
      const calls = h.backend.calls.filter((x) => x.path === '/rpc/7');
      assert.equal(calls.length, 2, 'a failed attempt and its retry');
      for (const call of calls) {
        const m = traceparentOf(call);
        assert.equal(m[1], parent.traceId, "the client's trace continues");
        assert.equal(m[3], '01', "the client's flags");
      }
      assert.equal(traceparentOf(calls[0]!)[0], traceparentOf(calls[1]!)[0], 'one traceparent per request, as before');
      await c.close();
      // The API package is prom-client's own dependency (its exemplars), loaded with or without tracing.
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@opentelemetry/') && !k.includes('@opentelemetry/api/'));
      assert.deepEqual(loaded, [], 'no OpenTelemetry SDK module loaded');
      await h.close();
      assert.deepEqual(receiver.requests, [], 'no call to the collector');
    } finally {
      await h.close();
      await receiver.close();
      delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    }
  });
});

describe('tracing on (--otlp, --otlp-sample 1)', () => {
  let receiver: OtlpReceiver;
  let h: Harness;
  before(async () => {
    receiver = await startOtlpReceiver();
    h = await startGate({ otlp: otlpTracesUrl('otlp', receiver.url), otlpSample: 1 }, backendFailingOnce());
  });
  after(async () => {
    await h.close();
    await receiver.close();
  });

  it('should make the span tree client → gate.request → one gate.upstream per attempt, and name the attempt span to the backend', async () => {
    const parent = clientTraceparent(true);
    const c = await connectTcp(h.tcpPort);
    const w = await c.hello({ token: 'p1', meta: { traceparent: parent.header } });
    await roundTrip(c, 7, 1);
    await flush(h);
    assert.ok(receiver.requests.every((r) => r.method === 'POST' && r.path === '/v1/traces'), JSON.stringify(receiver.requests));
    assert.match(receiver.requests[0]!.contentType, /^application\/json/);

    const spans = spansOf(receiver, parent.traceId);
    const request = spans.find((s) => s.name === 'gate.request');
    assert.ok(request, `a gate.request span in the client's trace; got ${spans.map((s) => s.name).join(', ')}`);
    assert.equal(request.parentSpanId, parent.spanId, "its parent is the client's span");
    assert.equal(request.kind, SERVER);
    assert.equal(request.attrs['gate.route'], 7);
    assert.equal(request.attrs['gate.seq'], 1);
    assert.equal(request.attrs['gate.session_id'], w.sessionId);
    assert.equal(request.attrs['gate.player_id'], 'p1');
    assert.equal(request.attrs['gate.outcome'], 'ok');
    assert.equal(request.attrs['gate.attempts'], 2);
    assert.ok(typeof request.attrs['gate.queued_ms'] === 'number' && request.attrs['gate.queued_ms'] >= 0, 'queued time in ms');
    assert.equal(request.status, 0, 'not an error');
    assert.equal(request.resource['service.name'], 'gate');
    assert.equal(request.resource['service.instance.id'], 'test-gate');

    const attempts = spans.filter((s) => s.name === 'gate.upstream').sort((a, b) => Number(a.attrs['gate.attempt']) - Number(b.attrs['gate.attempt']));
    assert.equal(attempts.length, 2, 'one span per attempt');
    for (const a of attempts) {
      assert.equal(a.parentSpanId, request.spanId, 'an attempt is a child of its request');
      assert.equal(a.kind, CLIENT);
      assert.equal(a.attrs['url.path'], '/rpc/7');
    }
    assert.deepEqual(attempts.map((a) => a.attrs['http.response.status_code']), [503, 200]);
    assert.equal(attempts[0]!.status, 2, 'the 503 attempt is an error');

    const calls = h.backend.calls.filter((x) => x.path === '/rpc/7' && x.headers['x-session-id'] === w.sessionId);
    assert.equal(calls.length, 2);
    calls.forEach((call, i) => {
      const m = traceparentOf(call);
      assert.equal(m[1], parent.traceId, 'the backend sees the trace id');
      assert.equal(m[2], attempts[i]!.spanId, `attempt ${i + 1}: the backend sees that attempt's span id`);
      assert.equal(m[3], '01', 'sampled');
    });
    await c.close();
  });

  it('should start a trace for a client that sent no traceparent, the same trace id on every attempt', async () => {
    const c = await connectTcp(h.tcpPort);
    const w = await c.hello({ token: 'p2' });
    await roundTrip(c, 7, 1);
    await flush(h);
    const calls = h.backend.calls.filter((x) => x.path === '/rpc/7' && x.headers['x-session-id'] === w.sessionId);
    assert.equal(calls.length, 2);
    const traceId = traceparentOf(calls[0]!)[1]!;
    assert.equal(traceparentOf(calls[1]!)[1], traceId);
    const request = spansOf(receiver, traceId).find((s) => s.name === 'gate.request');
    assert.ok(request, 'the request span, in the trace the backend saw');
    assert.equal(request.parentSpanId, '', 'a root span');
    assert.equal(request.attrs['gate.session_id'], w.sessionId);
    await c.close();
  });

  it('should export nothing for a client whose traceparent is not sampled, and forward its trace with flag 00', async () => {
    const parent = clientTraceparent(false);
    const c = await connectTcp(h.tcpPort);
    const w = await c.hello({ token: 'p3', meta: { traceparent: parent.header } });
    await roundTrip(c, 5, 1);
    // A sampled request after it, flushed with it: proof the export ran.
    const other = await connectTcp(h.tcpPort);
    const sampled = clientTraceparent(true);
    await other.hello({ token: 'p3b', meta: { traceparent: sampled.header } });
    await roundTrip(other, 5, 1);
    await flush(h);
    assert.ok(spansOf(receiver, sampled.traceId).some((s) => s.name === 'gate.request'), 'the sampled request was exported');
    assert.deepEqual(spansOf(receiver, parent.traceId), [], 'nothing of the unsampled trace');
    const call = h.backend.calls.find((x) => x.path === '/rpc/5' && x.headers['x-session-id'] === w.sessionId)!;
    const m = traceparentOf(call);
    assert.equal(m[1], parent.traceId);
    assert.notEqual(m[2], parent.spanId, 'a span id of its own');
    assert.equal(m[3], '00', 'not sampled');
    await c.close();
    await other.close();
  });

  it('should make a span per push API call with its deliveries, the caller\'s traceparent as parent', async () => {
    const c = await connectTcp(h.tcpPort);
    await c.hello({ token: 'pa' });
    const caller = clientTraceparent(true);
    assert.equal((await api(h, 'POST', '/v1/push', { playerId: 'pa', route: 3, data: 1 }, { traceparent: caller.header })).status, 200);
    assert.equal((await api(h, 'POST', '/v1/push/batch', { messages: [{ playerId: 'pa', route: 3, data: 2 }, { playerId: 'nobody', route: 3, data: 3 }] })).status, 200);
    assert.equal((await api(h, 'POST', '/v1/broadcast', { route: 4, data: 'all', playerIds: ['pa', 'nobody', 'nobody2'] })).status, 200);
    assert.equal((await api(h, 'POST', '/v1/kick', { playerId: 'nobody' })).status, 404);
    assert.equal((await api(h, 'POST', '/v1/push', { playerId: 'pa', route: 'bad', data: 1 })).status, 400);
    await flush(h);

    const push = spansOf(receiver, caller.traceId).find((s) => s.name === 'gate.push');
    assert.ok(push, "the push span, in the caller's trace");
    assert.equal(push.parentSpanId, caller.spanId);
    assert.equal(push.kind, SERVER);
    assert.deepEqual([push.attrs['gate.sent'], push.attrs['gate.buffered'], push.attrs['gate.missing'], push.attrs['gate.player_id']], [1, 0, 0, 'pa']);
    const byName = (n: string): ReceivedSpan[] => receiver.spans.filter((s) => s.name === n);
    const batch = byName('gate.push.batch').at(-1)!;
    assert.deepEqual([batch.attrs['gate.sent'], batch.attrs['gate.buffered'], batch.attrs['gate.missing'], batch.attrs['gate.messages']], [1, 0, 1, 2]);
    const broadcast = byName('gate.broadcast').at(-1)!;
    assert.deepEqual([broadcast.attrs['gate.sent'], broadcast.attrs['gate.missing']], [1, 2]);
    const kick = byName('gate.kick').at(-1)!;
    assert.deepEqual([kick.attrs['gate.kicked'], kick.attrs['gate.missing']], [false, 1]);
    const refused = byName('gate.push').find((s) => s.status === 2);
    assert.ok(refused, 'a push answered 400 ends its span as an error');
    assert.equal(await metric(h, /^gate_otlp_export_failures_total\{[^}]*\} (\d+)$/m), 0);
    await c.close();
  });
});

describe('--otlp-sample 0', () => {
  it('should trace no request without a client traceparent, yet follow a sampled client parent', async () => {
    const receiver = await startOtlpReceiver();
    const h = await startGate({ otlp: otlpTracesUrl('otlp', `${receiver.url}/v1/traces`), otlpSample: 0 }, backendFailingOnce());
    try {
      const c = await connectTcp(h.tcpPort);
      const w = await c.hello({ token: 's0' });
      await roundTrip(c, 5, 1);
      const sampled = clientTraceparent(true);
      const other = await connectTcp(h.tcpPort);
      await other.hello({ token: 's0b', meta: { traceparent: sampled.header } });
      await roundTrip(other, 5, 1);
      await flush(h);
      const m = traceparentOf(h.backend.calls.find((x) => x.path === '/rpc/5' && x.headers['x-session-id'] === w.sessionId)!);
      assert.equal(m[3], '00', 'forwarded as not sampled');
      assert.deepEqual(spansOf(receiver, m[1]!), [], 'no span of the unsampled request');
      assert.ok(spansOf(receiver, sampled.traceId).some((s) => s.name === 'gate.request'), 'parent-based: the sampled client is traced');
      assert.equal(receiver.spans.filter((s) => s.name === 'gate.request').length, 1, 'only that request');
      await c.close();
      await other.close();
    } finally {
      await h.close();
      await receiver.close();
    }
  });
});

describe('a collector that refuses or does not answer', () => {
  it('should count a refused export and the spans it held', async () => {
    const receiver = await startOtlpReceiver();
    receiver.answer = 400;
    const h = await startGate({ otlp: otlpTracesUrl('otlp', receiver.url), otlpSample: 1 }, backendFailingOnce());
    try {
      const c = await connectTcp(h.tcpPort);
      await c.hello({ token: 'r1' });
      await roundTrip(c, 5, 1);
      await assert.rejects(flush(h), 'the flush reports the failed export');
      assert.equal(await metric(h, /^gate_otlp_export_failures_total\{[^}]*\} (\d+)$/m), 1);
      assert.equal(await metric(h, /^gate_otlp_spans_dropped_total\{[^}]*reason="export_failed"[^}]*\} (\d+)$/m), 2, 'the request span and its attempt');
      await c.close();
    } finally {
      await h.close();
      await receiver.close();
    }
  });

  it(`should finish shutdown within ${TRACES_FLUSH_MS}ms of waiting for a collector that never answers`, async () => {
    const receiver = await startOtlpReceiver();
    receiver.answer = 'hang';
    const h = await startGate({ otlp: otlpTracesUrl('otlp', receiver.url), otlpSample: 1 }, backendFailingOnce());
    try {
      const c = await connectTcp(h.tcpPort);
      await c.hello({ token: 'h1' });
      await roundTrip(c, 5, 1);
      await c.close();
      const t0 = Date.now();
      await withTimeout(h.close(), TRACES_FLUSH_MS + WAIT_MS, 'shutdown with a silent collector');
      const took = Date.now() - t0;
      assert.ok(took >= TRACES_FLUSH_MS - 50, `waited for the collector (${took}ms)`);
      assert.ok(receiver.requests.length >= 1, 'the spans were posted');
    } finally {
      await h.close();
      await receiver.close();
    }
  });
});

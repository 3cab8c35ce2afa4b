import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { FrameType } from '../lib/frame.js';
import { createMetrics, finiteSamples } from '../lib/metrics.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, connectWs } from './helpers/testClient.js';

/** The value of one sample line (`name{labels} value`) in an exposition, or undefined. */
function sample(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').includes(labels)) return Number(m[3]);
  }
  return undefined;
}

/** A finite number as the exposition formats write one (no Nan, +Inf or -Inf). */
const FINITE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Sample lines whose value (the last token; `le="+Inf"` is a label) is not a finite number. */
function nonFinite(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#') && !FINITE.test(l.slice(l.lastIndexOf(' ') + 1)));
}

function promtoolCheck(text: string): void {
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.ok(!promtool.error, 'promtool is not installed (.ci/run installs the Debian package "prometheus")');
  assert.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);
}

describe('metrics', () => {
  let h: Harness;
  before(async () => {
    h = await startGate({}, (req) => (req.path === '/rpc/9' ? { status: 503 } : req.path === '/connect' ? { status: 200, body: { playerId: JSON.parse(req.body.toString()).token } } : { status: 200, body: req.body }));
  });
  after(() => h.close());

  it('should expose the contract metrics in a format promtool accepts, and move them', async () => {
    const before = (await api(h, 'GET', '/metrics')).body as string;
    const c = await connectTcp(h.tcpPort);
    await c.hello({ token: 'm1' });
    const w = await connectWs(h.wsPort);
    await w.hello({ token: 'm2' });
    c.request(1, 1, Buffer.from('a'));
    await c.next((f) => f.type === FrameType.RESPONSE);
    c.request(9, 2, Buffer.from('b'));
    await c.next((f) => f.type === FrameType.ERROR);
    await api(h, 'POST', '/v1/push', { playerId: 'm1', route: 1, data: 1 });
    await c.next((f) => f.type === FrameType.PUSH);
    const bad = await connectTcp(h.tcpPort);
    bad.sendRaw(Buffer.from([0, 0, 0, 1, 0]));
    await bad.closed;
    const res = await fetch(`${h.apiUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    for (const name of ['gate_connections', 'gate_sessions', 'gate_requests_total', 'gate_upstream_duration_seconds', 'gate_pushes_total', 'gate_request_queue_depth', 'gate_workers_busy', 'gate_upstream_requests_total', 'gate_push_buffered', 'gate_replayed_pushes_total', 'gate_push_buffer_drops_total', 'gate_slow_consumers_total', 'gate_protocol_errors_total', 'gate_backend_events_queued', 'nodejs_eventloop_lag_seconds', 'process_resident_memory_bytes'])
      assert.ok(text.includes(`# TYPE ${name} `), `missing ${name}`);
    assert.equal(sample(text, 'gate_connections', 'transport="ws"'), 1);
    assert.equal(sample(text, 'gate_sessions', 'state="online"'), 2);
    assert.equal(sample(text, 'gate_requests_total', 'outcome="ok"'), 1);
    assert.equal(sample(text, 'gate_requests_total', 'outcome="upstream_status"'), 1);
    assert.equal(sample(text, 'gate_upstream_requests_total', 'result="5xx"'), 1);
    // The histogram: cumulative buckets ending in +Inf = _count, and a positive _sum.
    assert.equal(sample(text, 'gate_upstream_duration_seconds_count', 'result="ok"'), 1);
    assert.equal(sample(text, 'gate_upstream_duration_seconds_bucket', 'le="+Inf",result="ok"'), 1);
    assert.equal(sample(text, 'gate_upstream_duration_seconds_bucket', 'le="10",result="UPSTREAM_STATUS"'), 1);
    assert.ok((sample(text, 'gate_upstream_duration_seconds_sum', 'result="ok"') ?? 0) > 0);
    assert.equal(sample(text, 'gate_pushes_total', 'status="sent"'), 1);
    assert.ok((sample(text, 'gate_protocol_errors_total', 'GW_ERR_FRAME_TOO_SHORT') ?? 0) >= 1);
    assert.equal(sample(before, 'gate_pushes_total', 'status="sent"'), undefined, 'counters start absent or at zero');
    assert.ok(!/player/i.test(text.split('\n').filter((l) => !l.startsWith('#')).join('\n')), 'no player ids in labels');

    assert.deepEqual(nonFinite(text), []);
    promtoolCheck(text);
    await c.close();
    await w.close();
  });

  it('should still answer with the gate metrics when process metrics fail (EMFILE at the open-file limit)', async () => {
    const reg = h.gate.gate.metrics.processRegistry;
    const orig = reg.metrics.bind(reg);
    reg.metrics = () => Promise.reject(Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' }));
    try {
      const res = await fetch(`${h.apiUrl}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.ok(text.includes('gate_connections'));
      assert.ok(!text.includes('process_resident_memory_bytes'));
    } finally {
      reg.metrics = orig;
    }
  });
});

describe('metrics before the first event-loop sample', () => {
  const src = { sessions: () => ({ online: 0, detached: 0, buffered: 0 }), queued: () => 0, busyWorkers: () => 0, eventsQueued: () => 0, refused: () => 0 };

  it('should drop the event-loop delay window, not print Nan, when it has no sample yet', async () => {
    // No macrotask runs between creating the histogram and this scrape, so it has no sample: prom-client
    // reads it as mean and stddev NaN and min 2^63 ns.
    const m = createMetrics('g-empty', src);
    const text = await m.text((e) => assert.fail(String(e)));
    assert.deepEqual(nonFinite(text), []);
    assert.ok(text.includes('# TYPE nodejs_eventloop_lag_mean_seconds gauge'), 'the family stays declared');
    assert.equal(sample(text, 'nodejs_eventloop_lag_mean_seconds'), undefined);
    assert.equal(sample(text, 'nodejs_eventloop_lag_min_seconds'), undefined, 'no 2^63 ns minimum from an empty window');
    assert.notEqual(sample(text, 'nodejs_eventloop_lag_seconds'), undefined, 'the setImmediate lag is always there');
    promtoolCheck(text);
    // Once the loop has been sampled the window is back, finite.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const later = await m.text((e) => assert.fail(String(e)));
    assert.deepEqual(nonFinite(later), []);
    for (const stat of ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99']) assert.ok((sample(later, `nodejs_eventloop_lag_${stat}_seconds`) ?? -1) >= 0, stat);
  });

  it('should answer /metrics with only finite sample values right after start and on back-to-back scrapes', async () => {
    const h = await startGate();
    try {
      const scrapes = [await (await fetch(`${h.apiUrl}/metrics`)).text(), await (await fetch(`${h.apiUrl}/metrics`)).text()];
      for (const text of scrapes) {
        assert.ok(text.includes('# TYPE nodejs_eventloop_lag_seconds gauge'));
        assert.deepEqual(nonFinite(text), []);
        promtoolCheck(text);
      }
    } finally {
      await h.close();
    }
  });

  it('should keep finite samples and HELP/TYPE lines and drop only non-finite ones', () => {
    const text = [
      '# HELP a_seconds A.',
      '# TYPE a_seconds gauge',
      'a_seconds{gate="g"} Nan',
      '# TYPE b gauge',
      'b{gate="g",x="a b"} +Inf',
      'b{gate="g",x="c"} -Inf',
      'b{gate="g",x="d"} 1.5e-7',
      '# TYPE h histogram',
      'h_bucket{le="+Inf",gate="g"} 3',
      '',
    ].join('\n');
    assert.equal(
      finiteSamples(text),
      ['# HELP a_seconds A.', '# TYPE a_seconds gauge', '# TYPE b gauge', 'b{gate="g",x="d"} 1.5e-7', '# TYPE h histogram', 'h_bucket{le="+Inf",gate="g"} 3', ''].join('\n'),
    );
    const clean = 'x 1\ny{le="+Inf"} 2\n';
    assert.equal(finiteSamples(clean), clean);
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { FrameType } from '../lib/frame.js';
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

    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.ok(!promtool.error, 'promtool is not installed (.ci/run installs the Debian package "prometheus")');
    assert.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);
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

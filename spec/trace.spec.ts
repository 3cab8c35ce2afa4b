import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { FrameType } from '../lib/frame.js';
import { childTraceparent } from '../lib/trace.js';
import { startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp } from './helpers/testClient.js';
import { waitFor } from './helpers/wait.js';

const TP = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

describe('tracing hook', () => {
  let h: Harness;
  const lines: Record<string, unknown>[] = [];
  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    h = await startGate(
      { upstreamRetries: 0 },
      (req) => (req.path === '/connect' ? { status: 200, body: { playerId: JSON.parse(req.body.toString()).token } } : req.path === '/rpc/5' ? { status: 500 } : { status: 200, body: req.body }),
      { logger: pino({ level: 'info' }, sink) },
    );
  });
  after(() => h.close());

  it('should continue the client trace from HELLO with a new span per request', async () => {
    const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const c = await connectTcp(h.tcpPort);
    await c.hello({ token: 't1', meta: { traceparent: parent } });
    c.request(1, 1, Buffer.from('a'));
    c.request(1, 2, Buffer.from('b'));
    await c.next((f) => f.type === FrameType.RESPONSE && f.seq === 2);
    const sent = h.backend.calls.filter((x) => x.path === '/rpc/1').map((x) => String(x.headers.traceparent));
    assert.equal(sent.length, 2);
    for (const tp of sent) {
      const m = TP.exec(tp);
      assert.ok(m, tp);
      assert.equal(m[1], '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.notEqual(m[2], '00f067aa0ba902b7');
    }
    assert.notEqual(sent[0], sent[1], 'a new span per request');
    await c.close();
  });

  it('should start a trace per request when the client sent none, and log it with the failure', async () => {
    const c = await connectTcp(h.tcpPort);
    await c.hello({ token: 't2' });
    c.request(5, 1, Buffer.from('x'));
    await c.next((f) => f.type === FrameType.ERROR);
    const call = h.backend.calls.find((x) => x.path === '/rpc/5')!;
    const tp = String(call.headers.traceparent);
    assert.match(tp, TP);
    const line = await waitFor('upstream failure log line', () => lines.find((l) => l.msg === 'upstream failure'));
    assert.equal(line.traceparent, tp);
    assert.equal(line.playerId, 't2');
    await c.close();
  });

  it('should ignore a malformed or all-zero parent', () => {
    assert.match(childTraceparent('garbage'), TP);
    assert.ok(!childTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01').includes('-00000000000000000000000000000000-'));
  });
});

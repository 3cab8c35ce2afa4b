import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { FrameType, encodeFrame, frame, type Frame } from '../lib/frame.js';
import { FrameDecoder } from '../lib/frameDecoder.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, json } from './helpers/testClient.js';
import { waitFor, withTimeout } from './helpers/wait.js';

/** A raw TCP client that logs in and then stops reading (a phone in a tunnel). */
async function slowReader(port: number, token: string): Promise<{ socket: Socket; read: () => Promise<Frame[]> }> {
  const socket = netConnect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(1 << 24);
  const onData = (c: Buffer): void => {
    decoder.push(c, (f) => frames.push({ ...f, body: Buffer.from(f.body) }));
  };
  socket.on('data', onData);
  socket.write(encodeFrame(frame(FrameType.HELLO, 0, Buffer.from(JSON.stringify({ token }))), true));
  await waitFor('WELCOME', () => frames.some((f) => f.type === FrameType.WELCOME));
  socket.pause();
  return {
    socket,
    // Reads everything the gate queued until it closes the socket.
    read: async () => {
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.resume();
      await withTimeout(closed, 10_000, 'the gate to close the slow consumer');
      return frames;
    },
  };
}

describe('backpressure', () => {
  let h: Harness;
  const release: (() => void)[] = [];
  before(async () => {
    h = await startGate({ outboundMax: 64 * 1024, bufferMax: 5000, playerQueueMax: 4 }, async (req) => {
      if (req.path === '/connect') return { status: 200, body: { playerId: (JSON.parse(req.body.toString()) as { token: string }).token } };
      if (req.path.startsWith('/rpc/') && req.body.toString() === 'hold') await new Promise<void>((r) => release.push(r));
      if (req.path.startsWith('/rpc/')) return { status: 200, body: req.body };
      return { status: 204 };
    });
  });
  after(async () => {
    for (const r of release) r();
    await h.close();
  });

  it('should drop a client that never reads as a slow consumer, buffer its pushes, and recover them on resume', async () => {
    const slow = await slowReader(h.tcpPort, 'slow-1');
    const fast = await connectTcp(h.tcpPort);
    await fast.hello({ token: 'fast-1' });
    const body = 'x'.repeat(8 * 1024);
    let seq = 0;
    let status = 'sent';
    // Bounded: the kernel's socket buffers absorb a few MB before --outbound-max (64 KiB) is reached.
    while (status === 'sent' && seq < 3000) {
      const r = await api(h, 'POST', '/v1/push', { playerId: 'slow-1', route: 1, data: body });
      seq = (r.body as { seq: number }).seq;
      status = (r.body as { status: string }).status;
      if (seq % 50 === 0) {
        // Other clients keep being served during the flood.
        fast.request(1, seq, Buffer.from('ping'));
        await fast.next((f) => f.type === FrameType.RESPONSE && f.seq === seq);
      }
    }
    assert.equal(status, 'buffered', `still "sent" after ${seq} pushes of 8 KiB`);
    const info = await api(h, 'GET', '/v1/players/slow-1');
    assert.equal(info.body.state, 'detached');
    for (let k = 0; k < 20; k++) await api(h, 'POST', '/v1/push', { playerId: 'slow-1', route: 1, data: body });
    const got = await slow.read();
    const bye = got.find((f) => f.type === FrameType.BYE);
    assert.ok(bye, 'the slow consumer got a BYE');
    assert.equal((json(bye) as { code: string }).code, 'slow_consumer');
    const pushes = got.filter((f) => f.type === FrameType.PUSH).map((f) => f.seq);
    const lastSeq = pushes.length ? pushes[pushes.length - 1]! : 0;
    assert.deepEqual(pushes, Array.from({ length: lastSeq }, (_, i) => i + 1), 'what arrived arrived in order');
    // Resume: everything after what the client got is replayed, nothing lost.
    const welcome = JSON.parse(got.find((f) => f.type === FrameType.WELCOME)!.body.toString()) as { sessionId: string; resumeToken: string };
    const again = await connectTcp(h.tcpPort);
    const w = await again.hello({ token: 'slow-1', resume: { sessionId: welcome.sessionId, resumeToken: welcome.resumeToken, lastSeq } });
    assert.equal(w.resumed, true);
    assert.equal(w.gap, false);
    const total = w.lastSeq;
    for (let s = lastSeq + 1; s <= total; s++) assert.equal((await again.next((f) => f.type === FrameType.PUSH)).seq, s);
    await again.close();
    await fast.close();
  });

  it('should stop reading a player past --player-queue-max and read again once answers drain', async () => {
    const c = await connectTcp(h.tcpPort);
    const w = await c.hello({ token: 'writer-1' });
    for (let s = 1; s <= 4; s++) c.request(1, s, Buffer.from('hold'));
    await waitFor('link paused', () => h.gate.gate.sessions.store.byPlayer('writer-1')?.pausedLink != null);
    for (let s = 5; s <= 12; s++) c.request(1, s, Buffer.from(`v${s}`));
    c.send(frame(FrameType.PING, 77));
    await waitFor('first held call', () => release.length >= 1);
    assert.equal(h.gate.gate.sessions.store.byPlayer('writer-1')!.unanswered, 4, 'nothing past the bound was read');
    let released = 0;
    const pong = c.next((f) => f.type === FrameType.PONG && f.seq === 77, 10_000).then(() => released);
    // Answer the held calls one by one (player concurrency 1: the next reaches the backend after).
    for (let k = 0; k < 4; k++) {
      await waitFor(`held call ${k + 1}`, () => release.length >= k + 1);
      released++;
      release[k]!();
    }
    assert.ok((await pong) >= 2, 'the PING sent while paused was read only after answers drained');
    for (let s = 5; s <= 12; s++) assert.equal((await c.next((f) => f.type === FrameType.RESPONSE && f.seq === s)).body.toString(), `v${s}`);
    assert.equal(h.gate.gate.sessions.store.byPlayer(w.playerId)!.pausedLink, null);
    release.length = 0;
    await c.close();
  });

  it('should answer RATE_LIMITED past --rate-limit and end a client that keeps going with BYE protocol_error', async () => {
    const rh = await startGate({ rateLimit: 5 });
    after(() => rh.close());
    const c = await connectTcp(rh.tcpPort);
    await c.hello({ token: 'rate-1' });
    for (let s = 1; s <= 5; s++) c.request(2, s, Buffer.from(`r${s}`));
    for (let s = 1; s <= 5; s++) assert.equal((await c.next((f) => f.seq === s && f.type !== FrameType.PUSH)).type, FrameType.RESPONSE);
    c.request(2, 6, Buffer.from('r6'));
    const limited = await c.next((f) => f.seq === 6);
    // The bucket refills at 5/s: the 6th arrives within the same second only if the machine is fast; accept either.
    if (limited.type === FrameType.ERROR) assert.equal((json(limited) as { code: string }).code, 'RATE_LIMITED');
    for (let s = 7; s <= 40; s++) c.request(2, s, Buffer.from(`r${s}`));
    const bye = await c.next((f) => f.type === FrameType.BYE);
    assert.equal((json(bye) as { code: string }).code, 'protocol_error');
    assert.ok(c.frames.some((f) => f.type === FrameType.ERROR && (json(f) as { code: string }).code === 'RATE_LIMITED'));
    await c.closed;
  });
});

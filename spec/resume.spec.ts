import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FrameType, frame, type Frame } from '../lib/frame.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, connectWs, json, type TestClient, type WelcomeBody } from './helpers/testClient.js';
import { waitFor } from './helpers/wait.js';

const isPush = (f: Frame): boolean => f.type === FrameType.PUSH;
const answerTo =
  (seq: number) =>
  (f: Frame): boolean =>
    (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR) && f.seq === seq;

/** A fake backend whose /rpc answers wait until the test releases them, by x-request-id. */
function heldBackend() {
  const held = new Map<string, () => void>();
  return {
    held,
    handler: async (req: { method: string; path: string; headers: Record<string, string | string[] | undefined>; body: Buffer }) => {
      if (req.path.startsWith('/rpc/') && req.body.toString() === 'hold') {
        const id = String(req.headers['x-request-id']);
        await new Promise<void>((resolve) => held.set(id, resolve));
        return { status: 200, body: `done ${id}` };
      }
      if (req.path === '/connect') return { status: 200, body: { playerId: (JSON.parse(req.body.toString()) as { token: string }).token } };
      if (req.path.startsWith('/rpc/')) return { status: 200, body: req.body };
      return { status: 204 };
    },
  };
}

for (const transport of ['tcp', 'ws'] as const) {
  describe(`resume and exactly-once over ${transport}`, () => {
    let h: Harness;
    const hb = heldBackend();
    const connect = (): Promise<TestClient> => (transport === 'tcp' ? connectTcp(h.tcpPort) : connectWs(h.wsPort));
    before(async () => {
      h = await startGate({ bufferMax: 3, requestWindow: 4 }, hb.handler);
    });
    after(() => h.close());

    const push = (playerId: string, n: number) => api(h, 'POST', '/v1/push', { playerId, route: 7, data: { n } });

    it('should buffer pushes while detached and replay them after lastSeq, in order, on resume', async () => {
      const a = await connect();
      const w = await a.hello({ token: `${transport}-r1` });
      assert.equal((await push(w.playerId, 1)).body.status, 'sent');
      assert.equal((await a.next(isPush)).seq, 1);
      await a.destroy();
      await waitFor('session detached', async () => (await api(h, 'GET', `/v1/players/${w.playerId}`)).body.state === 'detached');
      for (const n of [2, 3]) assert.deepEqual((await push(w.playerId, n)).body, { seq: n, status: 'buffered' });
      const b = await connect();
      const w2 = await b.hello({ token: `${transport}-r1`, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 1 } });
      assert.equal(w2.resumed, true);
      assert.equal(w2.sessionId, w.sessionId);
      assert.equal(w2.gap, false);
      assert.equal(w2.lastSeq, 3);
      const replayed = [await b.next(isPush), await b.next(isPush)];
      assert.deepEqual(replayed.map((f) => [f.seq, json(f)]), [[2, { n: 2 }], [3, { n: 3 }]]);
      assert.equal((await push(w.playerId, 4)).body.status, 'sent');
      assert.equal((await b.next(isPush)).seq, 4);
      await b.close();
    });

    it('should trim the buffer on ACK and report gap when an unacked push was dropped', async () => {
      const a = await connect();
      const w = await a.hello({ token: `${transport}-r2` });
      await a.destroy();
      await waitFor('detached', async () => (await api(h, 'GET', `/v1/players/${w.playerId}`)).body.state === 'detached');
      for (let n = 1; n <= 5; n++) await push(w.playerId, n); // bufferMax 3: 1 and 2 dropped
      assert.equal((await api(h, 'GET', `/v1/players/${w.playerId}`)).body.buffered, 3);
      const b = await connect();
      const w2 = await b.hello({ token: `${transport}-r2`, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 0 } });
      assert.equal(w2.resumed, true);
      assert.equal(w2.gap, true);
      assert.deepEqual([(await b.next(isPush)).seq, (await b.next(isPush)).seq, (await b.next(isPush)).seq], [3, 4, 5]);
      b.send(frame(FrameType.ACK, 4));
      await waitFor('ACK trims the buffer', async () => (await api(h, 'GET', `/v1/players/${w.playerId}`)).body.buffered === 1);
      await b.close();
    });

    it('should treat a wrong token, an unknown session and an ended session as a fresh login', async () => {
      const a = await connect();
      const w = await a.hello({ token: `${transport}-r3` });
      const b = await connect();
      const bad = await b.hello({ token: `${transport}-r3`, resume: { sessionId: w.sessionId, resumeToken: 'wrong', lastSeq: 0 } });
      assert.equal(bad.resumed, false);
      assert.notEqual(bad.sessionId, w.sessionId);
      const c = await connect();
      const unknown = await c.hello({ token: `${transport}-r3b`, resume: { sessionId: 'nope', resumeToken: 'x', lastSeq: 0 } });
      assert.equal(unknown.resumed, false);
      await api(h, 'POST', '/v1/kick', { playerId: `${transport}-r3b` });
      const d = await connect();
      const ended = await d.hello({ token: `${transport}-r3b`, resume: { sessionId: unknown.sessionId, resumeToken: unknown.resumeToken, lastSeq: 0 } });
      assert.equal(ended.resumed, false);
      for (const x of [a, b, c, d]) await x.close();
    });

    it('should keep an answer that lands while detached for the re-sent seq, calling upstream once', async () => {
      const a = await connect();
      const w = await a.hello({ token: `${transport}-r4` });
      a.request(1, 5, Buffer.from('hold'));
      const id = `${w.sessionId}.5`;
      await waitFor('backend holds the call', () => hb.held.has(id));
      await a.destroy();
      await waitFor('detached', async () => (await api(h, 'GET', `/v1/players/${w.playerId}`)).body.state === 'detached');
      hb.held.get(id)!();
      await waitFor('answer landed', async () => (await api(h, 'GET', '/v1/stats')).body.inflight === 0);
      const b = await connect();
      const w2 = await b.hello({ token: `${transport}-r4`, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 0 } });
      assert.equal(w2.resumed, true);
      b.request(1, 5, Buffer.from('hold'));
      const ans = await b.next(answerTo(5));
      assert.equal(ans.type, FrameType.RESPONSE);
      assert.equal(ans.body.toString(), `done ${id}`);
      assert.equal(h.backend.calls.filter((c) => c.headers['x-request-id'] === id).length, 1);
      await b.close();
    });

    it('should join a running duplicate, answer it once, and refuse stale seqs', async () => {
      const a = await connect();
      const w = await a.hello({ token: `${transport}-r5` });
      a.request(2, 10, Buffer.from('hold'));
      const id = `${w.sessionId}.10`;
      await waitFor('backend holds the call', () => hb.held.has(id));
      a.request(2, 10, Buffer.from('hold')); // duplicate while running: no second call
      a.request(2, 9, Buffer.from('x')); // lower than a seq already seen: stale
      const stale = await a.next(answerTo(9));
      assert.equal(stale.type, FrameType.ERROR);
      assert.equal((json(stale) as { code: string }).code, 'STALE_REQUEST');
      hb.held.get(id)!();
      assert.equal((await a.next(answerTo(10))).type, FrameType.RESPONSE);
      // The stored answer is sent again for a repeat; older than the window (4) is stale.
      a.request(2, 10, Buffer.from('hold'));
      assert.equal((await a.next(answerTo(10))).body.toString(), `done ${id}`);
      for (let s = 11; s <= 15; s++) a.request(2, s, Buffer.from(`e${s}`));
      for (let s = 11; s <= 15; s++) assert.equal((await a.next(answerTo(s))).body.toString(), `e${s}`);
      a.request(2, 11, Buffer.from('again'));
      assert.equal((json(await a.next(answerTo(11))) as { code: string }).code, 'STALE_REQUEST');
      assert.equal(h.backend.calls.filter((c) => c.headers['x-request-id'] === id).length, 1);
      assert.ok(!a.frames.some((f) => f.seq === 10 && f.type === FrameType.RESPONSE && a.frames.filter((g) => g === f).length > 1));
      await a.close();
    });
  });

  // A buffer larger than the pushes: whatever is missing below was trimmed by the ACK, not the bound.
  describe(`gap after an ACK over ${transport}`, () => {
    let h: Harness;
    const connect = (): Promise<TestClient> => (transport === 'tcp' ? connectTcp(h.tcpPort) : connectWs(h.wsPort));
    before(async () => {
      h = await startGate({ bufferMax: 16 }, heldBackend().handler);
    });
    after(() => h.close());

    const player = async (id: string) => (await api(h, 'GET', `/v1/players/${id}`)).body as { state?: string; buffered?: number };
    const push = (playerId: string, n: number) => api(h, 'POST', '/v1/push', { playerId, route: 7, data: { n } });

    /** The player gets pushes 1..8 live, ACKs 6 and loses its link: the gate keeps 7 and 8 only. */
    async function ackSixOfEight(token: string): Promise<WelcomeBody> {
      const a = await connect();
      const w = await a.hello({ token });
      for (let n = 1; n <= 8; n++) assert.equal((await push(w.playerId, n)).body.status, 'sent');
      for (let n = 1; n <= 8; n++) assert.equal((await a.next(isPush)).seq, n);
      a.send(frame(FrameType.ACK, 6));
      await waitFor('ACK trims the buffer', async () => (await player(w.playerId)).buffered === 2);
      await a.destroy();
      await waitFor('session detached', async () => (await player(w.playerId)).state === 'detached');
      return w;
    }

    /** Resumes from `lastSeq`, then pushes 9 live so that every replayed push is in before it. */
    async function resumeFrom(w: WelcomeBody, lastSeq: number): Promise<{ welcome: WelcomeBody; pushes: number[] }> {
      const b = await connect();
      const welcome = await b.hello({ token: w.playerId, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq } });
      assert.equal(welcome.resumed, true);
      assert.equal(welcome.lastSeq, 8);
      assert.equal((await push(w.playerId, 9)).body.seq, 9);
      await b.next((f) => isPush(f) && f.seq === 9);
      const pushes = b.frames.filter(isPush).map((f) => f.seq);
      await b.close();
      return { welcome, pushes };
    }

    it('should report gap when the client resumes below its own ACK, and replay only what is kept', async () => {
      const w = await ackSixOfEight(`${transport}-g1`);
      const { welcome, pushes } = await resumeFrom(w, 3);
      assert.equal(welcome.gap, true, '4..6 were forgotten after the ACK');
      assert.deepEqual(pushes, [7, 8, 9]);
    });

    it('should report no gap when the client resumes from its ACK', async () => {
      const w = await ackSixOfEight(`${transport}-g2`);
      const { welcome, pushes } = await resumeFrom(w, 6);
      assert.equal(welcome.gap, false);
      assert.deepEqual(pushes, [7, 8, 9]);
    });

    it('should take a lastSeq past the newest push as the newest: no gap, nothing replayed', async () => {
      const w = await ackSixOfEight(`${transport}-g3`);
      const { welcome, pushes } = await resumeFrom(w, 20);
      assert.equal(welcome.gap, false);
      assert.deepEqual(pushes, [9]);
    });
  });
}

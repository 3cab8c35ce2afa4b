/**
 * The request path over real sockets (CONTRACT §2.1, §2.2, §2.5, §3 POST /rpc): what the backend
 * receives, how its answers and failures come back, retries and timeouts, per-player order, the
 * global worker cap, queue admission, notifies and compression.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { GateConfig } from '../lib/config.js';
import { FLAG_DEFLATE, FrameType, type Frame } from '../lib/frame.js';
import { defaultHandler, type FakeHandler, type FakeReply, type RecordedCall } from './helpers/fakeBackend.js';
import { startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, connectWs, json, type ByeBody, type TestClient } from './helpers/testClient.js';
import { waitFor, withTimeout } from './helpers/wait.js';

type Transport = 'tcp' | 'ws';
const TRANSPORTS: readonly Transport[] = ['tcp', 'ws'];
/** Bound on any single wait in this file, ms. */
const WAIT_MS = 3_000;

const open = (h: Harness, t: Transport): Promise<TestClient> => (t === 'tcp' ? connectTcp(h.tcpPort) : connectWs(h.wsPort));

/**
 * A fresh gate (auth none, so a token is its playerId) in front of a fake backend whose /rpc
 * calls go to `rpc`; everything else gets the default answers. Always closed.
 */
async function withGate(over: Partial<GateConfig>, rpc: FakeHandler | undefined, fn: (h: Harness) => Promise<void>): Promise<void> {
  const handler: FakeHandler = (req) => (rpc && req.path.startsWith('/rpc/') ? rpc(req) : defaultHandler(req));
  const h = await startGate({ auth: 'none', shutdownGraceMs: 500, ...over }, handler);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

async function login(h: Harness, t: Transport, playerId: string, hello: object = {}): Promise<{ c: TestClient; sessionId: string }> {
  const c = await open(h, t);
  const w = await c.hello({ token: playerId, ...hello }, WAIT_MS);
  return { c, sessionId: w.sessionId };
}

const rpcCalls = (h: Harness): RecordedCall[] => h.backend.calls.filter((c) => c.path.startsWith('/rpc/'));

/** The answer (RESPONSE or ERROR) to request `seq`. */
const answer = (c: TestClient, seq: number): Promise<Frame> =>
  c.next((f) => (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR) && f.seq === seq, WAIT_MS);

async function expectError(c: TestClient, seq: number): Promise<{ code: string; message: string; status?: number }> {
  const f = await answer(c, seq);
  assert.equal(f.type, FrameType.ERROR, `expected ERROR for #${seq}, got type ${f.type}: ${f.body.toString('utf8')}`);
  const body = json(f) as { code: string; message: string; status?: number };
  assert.equal(typeof body.message, 'string');
  return body;
}

/** A promise a handler can wait on, released by the test (or at the end, so shutdown never waits on it). */
function latch(): { wait: Promise<void>; release: () => void } {
  let release!: () => void;
  const wait = new Promise<void>((r) => (release = r));
  return { wait, release };
}

for (const t of TRANSPORTS) {
  describe(`requests over ${t}`, () => {
    it('should forward a REQUEST as POST /rpc/{route} with the contract headers and answer with the body', () =>
      withGate({}, (req) => ({ status: 200, body: Buffer.concat([Buffer.from('re:'), req.body]) }), async (h) => {
        const { c, sessionId } = await login(h, t, 'alice');
        const body = Buffer.concat([randomBytes(300), Buffer.from([0, 0xff, 0xfe, 0x80])]);
        c.request(513, 9, body);
        const f = await answer(c, 9);
        assert.equal(f.type, FrameType.RESPONSE);
        assert.equal(f.route, 513);
        assert.equal(f.seq, 9);
        assert.equal(f.flags, 0);
        assert.deepEqual(f.body, Buffer.concat([Buffer.from('re:'), body]));
        const [call] = rpcCalls(h);
        assert.ok(call);
        assert.equal(call.method, 'POST');
        assert.equal(call.path, '/rpc/513');
        assert.equal(call.headers['x-gate-id'], 'test-gate');
        assert.equal(call.headers['x-player-id'], 'alice');
        assert.equal(call.headers['x-session-id'], sessionId);
        assert.equal(call.headers['x-request-id'], `${sessionId}.9`);
        assert.equal(call.headers['idempotency-key'], `${sessionId}.9`, 'the same key under the Idempotency-Key name');
        assert.equal(call.headers['content-type'], 'application/octet-stream');
        assert.deepEqual(call.body, body, 'the body reaches the backend byte for byte');
        await c.close();
      }));

    it('should forward an empty body and answer an empty RESPONSE for a 204', () =>
      withGate({}, () => ({ status: 204 }), async (h) => {
        const { c } = await login(h, t, 'alice');
        c.request(1, 1);
        const f = await answer(c, 1);
        assert.equal(f.type, FrameType.RESPONSE);
        assert.equal(f.body.length, 0);
        assert.equal(rpcCalls(h)[0]!.body.length, 0);
        await c.close();
      }));

    it('should answer a non-2xx with ERROR UPSTREAM_STATUS holding the status', () =>
      withGate({}, () => ({ status: 418, body: { error: 'teapot' } }), async (h) => {
        const { c } = await login(h, t, 'alice');
        c.request(4, 3, { brew: 'coffee' });
        const e = await expectError(c, 3);
        assert.equal(e.code, 'UPSTREAM_STATUS');
        assert.equal(e.status, 418);
        assert.equal(rpcCalls(h).length, 1, '418 is not retried');
        await c.close();
      }));

    it('should retry a 503 and then answer ERROR UPSTREAM_STATUS 503', () =>
      withGate({ upstreamRetries: 2 }, () => ({ status: 503 }), async (h) => {
        const { c } = await login(h, t, 'alice');
        c.request(1, 1, { x: 1 });
        const e = await expectError(c, 1);
        assert.equal(e.code, 'UPSTREAM_STATUS');
        assert.equal(e.status, 503);
        assert.equal(rpcCalls(h).length, 3, 'one attempt plus --upstream-retries 2');
        for (const call of rpcCalls(h)) assert.equal(call.headers['x-request-id'], rpcCalls(h)[0]!.headers['x-request-id'], 'retries keep the request id');
        await c.close();
      }));

    it('should answer the RESPONSE when a 503 is followed by a 200', () => {
      let seen = 0; // /rpc calls so far
      return withGate({ upstreamRetries: 2 }, (req) => (seen++ === 0 ? { status: 503 } : { status: 200, body: req.body }), async (h) => {
        const { c } = await login(h, t, 'alice');
        c.request(1, 1, { x: 'second time lucky' });
        const f = await answer(c, 1);
        assert.equal(f.type, FrameType.RESPONSE);
        assert.deepEqual(json(f), { x: 'second time lucky' });
        assert.equal(rpcCalls(h).length, 2);
        await c.close();
      });
    });

    it('should retry a dropped connection and then answer ERROR UPSTREAM_UNAVAILABLE', () =>
      withGate({ upstreamRetries: 2 }, () => ({ destroy: true }), async (h) => {
        const { c } = await login(h, t, 'alice');
        c.request(1, 1, { x: 1 });
        const e = await expectError(c, 1);
        assert.equal(e.code, 'UPSTREAM_UNAVAILABLE');
        assert.equal(e.status, undefined);
        assert.equal(rpcCalls(h).length, 3, 'one attempt plus --upstream-retries 2');
        await c.close();
      }));

    it('should answer ERROR UPSTREAM_TIMEOUT after one attempt that hangs, never retrying it', () =>
      withGate({ upstreamTimeoutMs: 100, upstreamRetries: 2 }, () => ({ hang: true }), async (h) => {
        const { c } = await login(h, t, 'alice');
        const started = Date.now();
        c.request(1, 1, { x: 1 });
        const e = await expectError(c, 1);
        assert.equal(e.code, 'UPSTREAM_TIMEOUT');
        assert.ok(Date.now() - started >= 90, `timed out after ${Date.now() - started}ms, before --upstream-timeout 100ms`);
        assert.equal(rpcCalls(h).length, 1, 'a timed-out attempt is not retried (the backend may have run it)');
        // The worker is free again: the next request is served.
        h.backend.setHandler((req) => (req.path.startsWith('/rpc/') ? { status: 200, body: req.body } : defaultHandler(req)));
        c.request(1, 2, { x: 2 });
        assert.equal((await answer(c, 2)).type, FrameType.RESPONSE);
        await c.close();
      }));

    it('should send one player’s requests in order, one at a time, with --player-concurrency 1', () => {
      let inflight = 0; // calls being answered now
      let maxInflight = 0;
      const N = 8;
      return withGate({ playerConcurrency: 1 }, (req) => {
        maxInflight = Math.max(maxInflight, ++inflight);
        const n = (JSON.parse(req.body.toString('utf8')) as { n: number }).n;
        // Early requests are the slow ones: a gate that ran them side by side would reorder them.
        return new Promise<FakeReply>((resolve) =>
          setTimeout(() => {
            inflight--;
            resolve({ status: 200, body: req.body });
          }, (N - n) * 4),
        );
      }, async (h) => {
        const { c, sessionId } = await login(h, t, 'alice');
        for (let n = 1; n <= N; n++) c.request(1, n, { n });
        const order: number[] = [];
        for (let n = 1; n <= N; n++) {
          const f = await c.next((x) => x.type === FrameType.RESPONSE || x.type === FrameType.ERROR, WAIT_MS);
          assert.equal(f.type, FrameType.RESPONSE);
          order.push(f.seq);
        }
        assert.deepEqual(order, [1, 2, 3, 4, 5, 6, 7, 8], 'answers in order');
        assert.deepEqual(
          rpcCalls(h).map((x) => x.headers['x-request-id']),
          order.map((n) => `${sessionId}.${n}`),
          'the backend sees the seqs in order',
        );
        assert.equal(maxInflight, 1, 'never two requests of one player at once');
        await c.close();
      });
    });

    it('should run two players’ requests at the same time', () => {
      const both = latch();
      let arrived = 0;
      return withGate({ playerConcurrency: 1, workers: 4 }, async (req) => {
        if (++arrived === 2) both.release();
        // Each call waits for the other: only a gate that runs both at once gets past this.
        const met = await Promise.race([both.wait.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), WAIT_MS))]);
        return met ? { status: 200, body: req.body } : { status: 500, body: 'the other player never arrived' };
      }, async (h) => {
        const a = await login(h, t, 'alice');
        const b = await login(h, t, 'bob');
        a.c.request(1, 1, { who: 'a' });
        b.c.request(1, 1, { who: 'b' });
        assert.equal((await answer(a.c, 1)).type, FrameType.RESPONSE);
        assert.equal((await answer(b.c, 1)).type, FrameType.RESPONSE);
        await a.c.close();
        await b.c.close();
      }).finally(() => both.release());
    });

    it('should cap upstream calls across players at --workers', () => {
      let inflight = 0;
      let maxInflight = 0;
      return withGate({ workers: 1, playerConcurrency: 4 }, (req) => {
        maxInflight = Math.max(maxInflight, ++inflight);
        return new Promise<FakeReply>((resolve) =>
          setTimeout(() => {
            inflight--;
            resolve({ status: 200, body: req.body });
          }, 15),
        );
      }, async (h) => {
        const players = await Promise.all(['p1', 'p2', 'p3'].map((p) => login(h, t, p)));
        for (const { c } of players) for (let n = 1; n <= 3; n++) c.request(1, n, { n });
        for (const { c } of players) for (let n = 1; n <= 3; n++) assert.equal((await answer(c, n)).type, FrameType.RESPONSE);
        assert.equal(rpcCalls(h).length, 9);
        assert.equal(maxInflight, 1, 'workers: 1 allows one upstream call at a time');
        for (const { c } of players) await c.close();
      });
    });

    it('should answer ERROR OVERLOADED at once with --queue-max 0 and the only worker busy', () => {
      const gate = latch();
      return withGate({ workers: 1, queueMax: 0 }, async (req) => {
        await gate.wait;
        return { status: 200, body: req.body };
      }, async (h) => {
        const { c } = await login(h, t, 'alice');
        const other = await login(h, t, 'bob');
        c.request(1, 1, { first: true });
        await h.backend.waitForCall((x) => x.path.startsWith('/rpc/'), 'the first request upstream', WAIT_MS);
        c.request(1, 2, { second: true });
        other.c.request(1, 1, { third: true });
        // Both refusals come while the only worker is still held: at once, not after the backend answers.
        assert.equal((await expectError(c, 2)).code, 'OVERLOADED');
        assert.equal((await expectError(other.c, 1)).code, 'OVERLOADED');
        gate.release();
        assert.equal((await answer(c, 1)).type, FrameType.RESPONSE, 'the running request still completes');
        assert.equal(rpcCalls(h).length, 1, 'refused requests never reach the backend');
        await c.close();
        await other.c.close();
      }).finally(() => gate.release());
    });

    it('should queue one and refuse the next with --queue-max 1', () => {
      const gate = latch();
      return withGate({ workers: 1, queueMax: 1 }, async (req) => {
        await gate.wait;
        return { status: 200, body: req.body };
      }, async (h) => {
        const { c } = await login(h, t, 'alice');
        c.request(1, 1, { n: 1 });
        await h.backend.waitForCall((x) => x.path.startsWith('/rpc/'), 'the first request upstream', WAIT_MS);
        c.request(1, 2, { n: 2 }); // waits for the worker
        c.request(1, 3, { n: 3 }); // past --queue-max
        assert.equal((await expectError(c, 3)).code, 'OVERLOADED');
        gate.release();
        assert.equal((await answer(c, 1)).type, FrameType.RESPONSE);
        assert.equal((await answer(c, 2)).type, FrameType.RESPONSE);
        assert.equal(rpcCalls(h).length, 2);
        await c.close();
      }).finally(() => gate.release());
    });

    it('should forward a notify (seq 0) without answering it', () =>
      withGate({}, (req) => ({ status: 200, body: req.body }), async (h) => {
        const { c, sessionId } = await login(h, t, 'alice');
        c.request(5, 0, { notify: true });
        c.request(5, 1, { after: true });
        // Per-player order: the notify's answer, if any, would come before this one.
        assert.equal((await answer(c, 1)).type, FrameType.RESPONSE);
        const calls = rpcCalls(h);
        assert.equal(calls.length, 2);
        assert.equal(calls[0]!.headers['x-request-id'], `${sessionId}.0`);
        assert.deepEqual(JSON.parse(calls[0]!.body.toString('utf8')), { notify: true });
        const seq0 = c.frames.filter((f) => f.seq === 0 && (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR));
        assert.equal(seq0.length, 0, 'a notify gets no RESPONSE or ERROR');
        await c.close();
      }));

    it('should inflate a compressed REQUEST body before forwarding it', () =>
      withGate({}, (req) => ({ status: 200, body: req.body }), async (h) => {
        const { c } = await login(h, t, 'alice');
        const plain = Buffer.from(JSON.stringify({ text: 'hello '.repeat(200) }));
        c.send({ type: FrameType.REQUEST, flags: FLAG_DEFLATE, route: 2, seq: 1, body: deflateRawSync(plain) });
        const f = await answer(c, 1);
        assert.equal(f.type, FrameType.RESPONSE);
        assert.deepEqual(rpcCalls(h)[0]!.body, plain, 'the backend gets the inflated bytes');
        assert.equal(f.flags, 0, 'no compression back without HELLO compress');
        assert.deepEqual(f.body, plain);
        await c.close();
      }));

    it('should answer a deflate bomb with BYE protocol_error and keep serving others', () =>
      withGate({ maxFrame: 4096 }, (req) => ({ status: 200, body: req.body }), async (h) => {
        const { c } = await login(h, t, 'bomber');
        const bomb = deflateRawSync(Buffer.alloc(1024 * 1024));
        assert.ok(bomb.length < 4096, 'the bomb itself fits in a frame');
        c.send({ type: FrameType.REQUEST, flags: FLAG_DEFLATE, route: 2, seq: 1, body: bomb });
        const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
        assert.equal((json(bye) as ByeBody).code, 'protocol_error');
        await withTimeout(c.closed, WAIT_MS, 'the gate to close after the bomb');
        assert.equal(rpcCalls(h).length, 0, 'nothing goes upstream');
        const { c: ok } = await login(h, t, 'bystander');
        ok.request(1, 1, { fine: true });
        assert.equal((await answer(ok, 1)).type, FrameType.RESPONSE);
        await ok.close();
      }));

    it('should answer BYE protocol_error for a compressed body that is not DEFLATE', () =>
      withGate({}, (req) => ({ status: 200, body: req.body }), async (h) => {
        const { c } = await login(h, t, 'garbler');
        c.send({ type: FrameType.REQUEST, flags: FLAG_DEFLATE, route: 2, seq: 1, body: Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]) });
        const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
        assert.equal((json(bye) as ByeBody).code, 'protocol_error');
      }));

    it('should compress a RESPONSE over 1 KiB for a client that asked for it', () =>
      withGate({}, (req) => {
        const { n } = JSON.parse(req.body.toString('utf8')) as { n: number };
        return { status: 200, body: Buffer.from('x'.repeat(n)) };
      }, async (h) => {
        const { c } = await login(h, t, 'zipper', { compress: true });
        c.request(1, 1, { n: 4000 });
        const big = await answer(c, 1);
        assert.equal(big.type, FrameType.RESPONSE);
        assert.equal(big.flags & FLAG_DEFLATE, FLAG_DEFLATE, 'a 4000-byte reply is compressed');
        assert.ok(big.body.length < 4000);
        assert.equal(inflateRawSync(big.body).toString('utf8'), 'x'.repeat(4000));
        c.request(1, 2, { n: 100 });
        const small = await answer(c, 2);
        assert.equal(small.flags, 0, 'a 100-byte reply is not');
        assert.equal(small.body.toString('utf8'), 'x'.repeat(100));
        const { c: plain } = await login(h, t, 'plain');
        plain.request(1, 1, { n: 4000 });
        const unzipped = await answer(plain, 1);
        assert.equal(unzipped.flags, 0, 'no compression without HELLO compress');
        assert.equal(unzipped.body.length, 4000);
        await c.close();
        await plain.close();
      }));
  });
}

describe('requests: gate state', () => {
  it('should leave nothing in flight or queued once every request is answered', () =>
    withGate({ workers: 2 }, (req) => ({ status: 200, body: req.body, delayMs: 5 }), async (h) => {
      const { c } = await login(h, 'tcp', 'alice');
      for (let n = 1; n <= 20; n++) c.request(1, n, { n });
      for (let n = 1; n <= 20; n++) await answer(c, n);
      const s = await waitFor('the pool to drain', () => {
        const st = h.gate.gate.stats();
        return st.inflight === 0 && st.queued === 0 && st;
      }, WAIT_MS);
      assert.equal(s.inflight, 0);
      await c.close();
    }));
});

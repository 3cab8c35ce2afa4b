/**
 * Graceful shutdown (CONTRACT §5), in process and through the CLI: not ready first, listeners
 * closed, the in-flight answer still delivered, BYE shutdown to every client, an `offline`
 * (reason shutdown) event per session, events flushed, DELETE /gates last, exit status 0.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { FrameType, type Frame } from '../lib/frame.js';
import { startGate } from './helpers/gateHarness.js';
import { defaultHandler, startFakeBackend, type FakeHandler, type RecordedCall } from './helpers/fakeBackend.js';
import { spawnGate, portOf } from './helpers/gateProcess.js';
import { connectTcp, connectWs, json, type TestClient } from './helpers/testClient.js';
import { waitFor, withTimeout } from './helpers/wait.js';

const WAIT_MS = 5_000;
/** The slow route's answer time: long enough to observe readiness and listeners while it runs. */
const SLOW_MS = 1_000;
const SLOW_ROUTE = 9;

const pathOf = (c: RecordedCall): string => c.path.split('?')[0]!;
const isBye = (f: Frame): boolean => f.type === FrameType.BYE;
const byeCode = (f: Frame): string => (json(f) as { code: string }).code;

/** Resolves with the error code once a TCP connect to `port` fails; a connect that succeeds is closed and retried. */
async function untilRefused(port: number, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const code = await new Promise<string | null>((resolve) => {
      const s = netConnect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(null);
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    if (code !== null) return code;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for connections to port ${port} to be refused`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('shutdown: in process', () => {
  it('should go unready, close listeners, deliver the in-flight answer, BYE everyone, send offline events, then DELETE /gates last', async (t) => {
    const handler: FakeHandler = (req) =>
      pathOf(req) === `/rpc/${SLOW_ROUTE}` ? { status: 200, body: Buffer.from('slow answer'), delayMs: SLOW_MS } : defaultHandler(req);
    const h = await startGate({ gateId: 'shut-gate' }, handler);
    t.after(() => h.close());
    const clients: TestClient[] = [];
    const open = async (c: TestClient, playerId: string): Promise<TestClient> => {
      t.after(() => c.destroy());
      await c.hello({ token: playerId });
      clients.push(c);
      return c;
    };
    const a = await open(await connectTcp(h.tcpPort), 'a');
    await open(await connectWs(h.wsPort), 'b');
    const gone = await connectTcp(h.tcpPort);
    t.after(() => gone.destroy());
    await gone.hello({ token: 'c' });
    await gone.destroy();
    await waitFor('c detached', () => h.gate.gate.sessions.player('c')?.state === 'detached', WAIT_MS);

    a.request(SLOW_ROUTE, 1, Buffer.from('go'));
    const rpc = await h.backend.waitForCall((c) => pathOf(c) === `/rpc/${SLOW_ROUTE}`, 'the slow request upstream', WAIT_MS);
    const done = h.gate.shutdown();

    // While the request is still in flight: not ready, and no new connections.
    const ready = await fetch(`${h.apiUrl}/readyz`);
    assert.equal(ready.status, 503, '/readyz is 503 while draining');
    assert.ok(await untilRefused(h.tcpPort, WAIT_MS));
    assert.ok(await untilRefused(h.wsPort, WAIT_MS));
    assert.equal(rpc.status, undefined, 'the slow request was still in flight when readiness and listeners were checked');
    assert.equal((await fetch(`${h.apiUrl}/healthz`)).status, 200, '/healthz stays 200 while draining');

    await withTimeout(done, SLOW_MS + WAIT_MS, 'shutdown() to resolve');

    // Every client got BYE shutdown, and the in-flight answer came before it.
    for (const c of clients) {
      const f = await c.next(isBye, WAIT_MS);
      assert.equal(byeCode(f), 'shutdown', `${c.transport} client got BYE shutdown`);
      await withTimeout(c.closed, WAIT_MS, `${c.transport} client to be closed by the gate`);
    }
    const resp = a.frames.findIndex((f) => f.type === FrameType.RESPONSE && f.seq === 1);
    assert.ok(resp >= 0, 'the in-flight RESPONSE was delivered');
    assert.equal(a.frames[resp]!.body.toString(), 'slow answer');
    assert.ok(a.frames.findIndex(isBye) > resp, 'BYE came after the RESPONSE');

    // Events: one offline (shutdown) per session, detached ones included, all accepted before DELETE.
    const calls = h.backend.calls;
    const del = calls.findIndex((c) => c.method === 'DELETE');
    assert.ok(del >= 0, 'DELETE /gates was sent');
    assert.equal(pathOf(calls[del]!), '/gates/shut-gate');
    assert.equal(calls[del]!.headers['x-gate-id'], 'shut-gate');
    assert.equal(del, calls.length - 1, `DELETE /gates is the last call; calls: ${calls.map((c) => `${c.method} ${pathOf(c)}`).join(', ')}`);
    const offline = h.backend.events({ acceptedOnly: true }).filter((e) => e.type === 'offline');
    assert.deepEqual(offline.map((e) => e.playerId).sort(), ['a', 'b', 'c']);
    for (const e of offline) assert.equal(e.reason, 'shutdown');
    const lastEvents = calls.map((c) => c.method === 'POST' && pathOf(c) === '/events').lastIndexOf(true);
    assert.ok(lastEvents < del, 'events were flushed before DELETE /gates');
    assert.equal((await fetch(`${h.apiUrl}/healthz`).catch(() => null))?.status ?? 'closed', 'closed', 'the API is closed at the end');
  });

  it('should flush events that the backend is slow to accept before DELETE /gates', async (t) => {
    let pendingAtDelete: number | null = null; // /events posts not yet answered when DELETE /gates arrived
    const handler: FakeHandler = (req) => {
      if (req.method === 'DELETE') pendingAtDelete = h.backend.calls.filter((c) => pathOf(c) === '/events' && c.status === undefined).length;
      return pathOf(req) === '/events' ? { status: 204, delayMs: 150 } : defaultHandler(req);
    };
    const h = await startGate({ gateId: 'slow-events' }, handler);
    t.after(() => h.close());
    for (const p of ['x', 'y']) {
      const c = await connectTcp(h.tcpPort);
      t.after(() => c.destroy());
      await c.hello({ token: p });
    }
    await withTimeout(h.gate.shutdown(), WAIT_MS, 'shutdown() to resolve');
    const calls = h.backend.calls;
    const del = calls.findIndex((c) => c.method === 'DELETE');
    assert.equal(del, calls.length - 1, 'DELETE /gates is last');
    const offline = h.backend.events({ acceptedOnly: true }).filter((e) => e.type === 'offline');
    assert.deepEqual(offline.map((e) => `${String(e.playerId)}:${String(e.reason)}`).sort(), ['x:shutdown', 'y:shutdown']);
    assert.equal(pendingAtDelete, 0, 'every /events post was answered before DELETE /gates was sent');
  });
});

describe('shutdown: CLI', () => {
  it('should log listening with real ports, and on SIGTERM send BYE shutdown, DELETE /gates and exit 0', async (t) => {
    const backend = await startFakeBackend();
    t.after(() => backend.close());
    const gate = spawnGate(['serve', '--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0', '--upstream', backend.url, '--gate-id', 'cli-gate']);
    t.after(() => gate.kill());
    const listening = await gate.waitForLog('listening');
    for (const k of ['tcp', 'ws', 'api']) {
      assert.match(String(listening[k]), /^127\.0\.0\.1:\d+$/, `listening.${k}`);
      assert.notEqual(portOf(listening[k]), 0, `listening.${k} holds the bound port`);
    }
    const c = await connectTcp(portOf(listening.tcp));
    t.after(() => c.destroy());
    const w = await c.hello({ token: 'p' });
    assert.equal(w.gateId, 'cli-gate');
    const ws = await connectWs(portOf(listening.ws));
    t.after(() => ws.destroy());
    await ws.hello({ token: 'q' });
    assert.equal((await fetch(`http://${String(listening.api)}/readyz`)).status, 200);

    gate.child.kill('SIGTERM');
    const exit = await gate.waitForExit(WAIT_MS * 2);
    assert.deepEqual(exit, { code: 0, signal: null }, `exit status; stderr: ${gate.stderr()}`);
    assert.equal(byeCode(await c.next(isBye, WAIT_MS)), 'shutdown');
    assert.equal(byeCode(await ws.next(isBye, WAIT_MS)), 'shutdown');
    const del = backend.calls.find((x) => x.method === 'DELETE');
    assert.ok(del, `DELETE /gates seen; calls: ${backend.calls.map((x) => `${x.method} ${pathOf(x)}`).join(', ')}`);
    assert.equal(pathOf(del), '/gates/cli-gate');
    const offline = backend.events({ acceptedOnly: true }).filter((e) => e.type === 'offline');
    assert.deepEqual(offline.map((e) => `${String(e.playerId)}:${String(e.reason)}`).sort(), ['p:shutdown', 'q:shutdown']);
    assert.equal(gate.stderr(), '', 'nothing on stderr');
  });

  it('should shut down the same way on SIGINT', async (t) => {
    const backend = await startFakeBackend();
    t.after(() => backend.close());
    const gate = spawnGate(['serve', '--tcp', '127.0.0.1:0', '--ws', 'off', '--api', '127.0.0.1:0', '--upstream', backend.url, '--gate-id', 'int-gate']);
    t.after(() => gate.kill());
    const listening = await gate.waitForLog('listening');
    assert.equal(listening.ws, null, '--ws off');
    const c = await connectTcp(portOf(listening.tcp));
    t.after(() => c.destroy());
    await c.hello({ token: 'p' });
    gate.child.kill('SIGINT');
    assert.deepEqual(await gate.waitForExit(WAIT_MS * 2), { code: 0, signal: null }, `exit status; stderr: ${gate.stderr()}`);
    assert.equal(byeCode(await c.next(isBye, WAIT_MS)), 'shutdown');
    assert.ok(backend.calls.some((x) => x.method === 'DELETE' && pathOf(x) === '/gates/int-gate'), 'DELETE /gates seen');
  });
});

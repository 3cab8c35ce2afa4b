/**
 * The control-plane client (lib/streams/backend.ts) against a scripted backend: what each call
 * sends, which failures it tries again (a refused or reset connection, 502/503/504) and which it
 * never does (a timeout: the backend may have run the call; /events and PUT /gates, whose callers
 * retry), and that a reply past 64 KiB is cut off.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { backendClient, BackendStatusError, type BackendClient } from '../lib/streams/backend.js';
import { startFakeBackend, type FakeBackend, type FakeHandler, type FakeReply } from './helpers/fakeBackend.js';
import { withTimeout } from './helpers/wait.js';

/** Bound on any one call in this file, ms (a retried call waits 100 + 200 ms between tries). */
const WAIT_MS = 10_000;
const HELLO = { token: 'tok', gateId: 'g1', sessionId: 's-1', remoteAddress: '127.0.0.1:5' };

async function setup(t: TestContext, handler: FakeHandler, o: { retries?: number; timeoutMs?: number } = {}): Promise<{ be: FakeBackend; client: BackendClient }> {
  const be = await startFakeBackend(handler);
  t.after(() => be.close());
  const client = backendClient({ baseUrl: `${be.url}/api/`, gateId: 'g1', policy: () => ({ timeoutMs: o.timeoutMs ?? 5_000, retries: o.retries ?? 2 }) });
  t.after(() => client.close());
  return { be, client };
}

/** Answers `first` to the first `n` calls, then the default 200. */
const failing = (n: number, first: FakeReply): FakeHandler => {
  let seen = 0;
  return (req) => (++seen <= n ? first : req.path.endsWith('/connect') ? { status: 200, body: { playerId: 'p1' } } : { status: 204 });
};

describe('backend client: control-plane calls over undici', () => {
  it('should POST /connect as JSON with x-gate-id and x-session-id under the base path, and read the player', async (t) => {
    const { be, client } = await setup(t, () => ({ status: 200, body: { playerId: 'alice' } }));
    assert.deepEqual(await client.connect(HELLO), { ok: true, playerId: 'alice' });
    const [c] = be.calls;
    assert.equal(c?.method, 'POST');
    assert.equal(c?.path, '/api/connect');
    assert.equal(c?.headers['x-gate-id'], 'g1');
    assert.equal(c?.headers['x-session-id'], 's-1');
    assert.match(String(c?.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(c.body.toString()), HELLO);
  });

  it('should turn 401/403, other statuses, non-JSON and a missing playerId into a refusal with its reason', async (t) => {
    const replies: FakeReply[] = [{ status: 403 }, { status: 409 }, { status: 200, body: 'not json' }, { status: 200, body: { player: 'x' } }];
    const { client } = await setup(t, () => replies.shift()!, { retries: 0 });
    assert.deepEqual(await client.connect(HELLO), { ok: false, reason: 'backend refused the login (403)' });
    assert.deepEqual(await client.connect(HELLO), { ok: false, reason: 'backend /connect answered 409' });
    assert.deepEqual(await client.connect(HELLO), { ok: false, reason: 'backend /connect answered non-JSON' });
    assert.deepEqual(await client.connect(HELLO), { ok: false, reason: 'backend /connect answered no playerId' });
  });

  it('should try /connect again after 503 and after a dropped connection, up to --upstream-retries more times', async (t) => {
    const { be, client } = await setup(t, failing(2, { status: 503 }), { retries: 2 });
    assert.deepEqual(await withTimeout(client.connect(HELLO), WAIT_MS, '/connect after two 503s'), { ok: true, playerId: 'p1' });
    assert.equal(be.calls.length, 3);

    const dropped = await setup(t, failing(1, { destroy: true }), { retries: 1 });
    assert.deepEqual(await withTimeout(dropped.client.connect(HELLO), WAIT_MS, '/connect after a dropped connection'), { ok: true, playerId: 'p1' });
    assert.equal(dropped.be.calls.length, 2);

    const none = await setup(t, failing(5, { status: 502 }), { retries: 0 });
    assert.deepEqual(await none.client.connect(HELLO), { ok: false, reason: 'backend /connect answered 502' });
    assert.equal(none.be.calls.length, 1, '--upstream-retries 0: one try');
  });

  it('should never try again after a timeout: the backend may have run the call', async (t) => {
    const { be, client } = await setup(t, () => ({ hang: true }), { retries: 3, timeoutMs: 300 });
    await assert.rejects(withTimeout(client.connect(HELLO), WAIT_MS, 'the /connect timeout'), /backend POST \/connect timed out after 300ms/);
    assert.equal(be.calls.length, 1);
  });

  it('should take the timeout and retries in force at each call (a reload changes them)', async (t) => {
    const be = await startFakeBackend(() => ({ hang: true }));
    t.after(() => be.close());
    const policy = { timeoutMs: 5_000, retries: 3 };
    const client = backendClient({ baseUrl: be.url, gateId: 'g1', policy: () => policy });
    t.after(() => client.close());
    policy.timeoutMs = 250;
    policy.retries = 0;
    await assert.rejects(withTimeout(client.connect(HELLO), WAIT_MS, 'the /connect timeout after the change'), /timed out after 250ms/);
    assert.equal(be.calls.length, 1);
  });

  it('should cut off a reply over 64 KiB instead of buffering it', async (t) => {
    const { client } = await setup(t, () => ({ status: 200, body: { playerId: 'x'.repeat(100 * 1024) } }));
    await assert.rejects(withTimeout(client.connect(HELLO), WAIT_MS, 'the oversized reply'), /answered more than 65536 bytes/);
  });

  it('should reject with the status when /events, PUT or DELETE /gates is not answered 2xx, posting /events and PUT once', async (t) => {
    const { be, client } = await setup(t, () => ({ status: 503 }), { retries: 2 });
    const events = [{ type: 'online' as const, playerId: 'p', sessionId: 's', gateId: 'g1', at: 1 }];
    await assert.rejects(client.postEvents(events), (e: unknown) => e instanceof BackendStatusError && e.status === 503 && /POST \/events answered 503/.test(e.message));
    assert.equal(be.calls.length, 1, 'the event queue retries a batch itself');
    assert.deepEqual(JSON.parse(be.calls[0]!.body.toString()), events);
    await assert.rejects(client.putGate({ gateId: 'g 1', tcp: null, ws: null, api: 'a', startedAt: 1, sessions: 0 }), BackendStatusError);
    assert.equal(be.calls[1]?.path, '/api/gates/g%201');
    assert.equal(be.calls.length, 2, 'the registration loop retries PUT itself');
    await assert.rejects(withTimeout(client.deleteGate('g1'), WAIT_MS, 'DELETE /gates'), BackendStatusError);
    assert.equal(be.calls.length, 5, 'DELETE /gates: tried 1 + 2 times');
    assert.equal(be.calls[4]?.method, 'DELETE');
  });

  it('should fail after its tries when nothing listens at the backend address', async (t) => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const client = backendClient({ baseUrl: `http://127.0.0.1:${port}`, gateId: 'g1', policy: () => ({ timeoutMs: 5_000, retries: 1 }) });
    t.after(() => client.close());
    await assert.rejects(withTimeout(client.connect(HELLO), WAIT_MS, 'the refused /connect'), (e: unknown) => /ECONNREFUSED/.test(String((e as Error & { code?: string }).code ?? (e as Error).message)));
  });
});

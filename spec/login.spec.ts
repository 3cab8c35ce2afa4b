/**
 * Login over real sockets (CONTRACT §2.3, §2.4, §3 /connect and /events): the three `--auth`
 * modes, the WELCOME body, replacement, REQUEST before WELCOME, malformed HELLO, logout, and the
 * backend's view of a session's life as POST /events bodies.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import type { GateConfig } from '../lib/config.js';
import { FrameType } from '../lib/frame.js';
import { defaultHandler, type FakeHandler } from './helpers/fakeBackend.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { ByeError, connectTcp, connectWs, json, type ByeBody, type TestClient } from './helpers/testClient.js';
import { waitFor, withTimeout } from './helpers/wait.js';

type Transport = 'tcp' | 'ws';
const TRANSPORTS: readonly Transport[] = ['tcp', 'ws'];
/** Bound on any single wait in this file, ms. */
const WAIT_MS = 3_000;
const JWT_SECRET = 'test-secret-at-least-32-bytes-long!!';

const open = (h: Harness, t: Transport): Promise<TestClient> => (t === 'tcp' ? connectTcp(h.tcpPort) : connectWs(h.wsPort));

/** Runs `fn` against a fresh gate and always closes it. */
async function withGate(over: Partial<GateConfig>, handler: FakeHandler | undefined, fn: (h: Harness) => Promise<void>): Promise<void> {
  const h = await startGate(over, handler);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

/** The HELLO is refused: resolves the BYE body, and checks the link is closed afterwards. */
async function expectBye(c: TestClient, hello: object): Promise<ByeBody> {
  const err = await c.hello(hello, WAIT_MS).then(
    (w) => assert.fail(`expected BYE, got WELCOME ${JSON.stringify(w)}`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ByeError, `expected a BYE, got ${String(err)}`);
  await withTimeout(c.closed, WAIT_MS, 'the gate to close the link after BYE');
  return err.body;
}

/** Events the backend has received for one player, as `type` or `type:reason`. */
const eventsOf = (h: Harness, playerId: string): string[] =>
  h.backend
    .events()
    .filter((e) => e.playerId === playerId)
    .map((e) => (e.reason === undefined ? JSON.stringify(e.type) : `${JSON.stringify(e.type)}:${JSON.stringify(e.reason)}`).replaceAll('"', ''));

const waitEvents = (h: Harness, playerId: string, n: number): Promise<string[]> =>
  waitFor(`${n} backend events for ${playerId} (have ${JSON.stringify(eventsOf(h, playerId))})`, () => {
    const ev = eventsOf(h, playerId);
    return ev.length >= n && ev;
  }, WAIT_MS);

const jwt = (claims: { sub?: string; exp?: number }, secret = JWT_SECRET): Promise<string> => {
  const t = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (claims.sub !== undefined) t.setSubject(claims.sub);
  if (claims.exp !== undefined) t.setExpirationTime(claims.exp);
  return t.sign(new TextEncoder().encode(secret));
};

for (const t of TRANSPORTS) {
  describe(`login over ${t}`, () => {
    describe('--auth none', () => {
      it('should take the token as the playerId', () =>
        withGate({ auth: 'none' }, undefined, async (h) => {
          const c = await open(h, t);
          const w = await c.hello({ token: 'alice' }, WAIT_MS);
          assert.equal(w.playerId, 'alice');
          assert.equal(h.backend.calls.filter((x) => x.path === '/connect').length, 0, '--auth none must not call /connect');
          await c.close();
        }));

      it('should refuse a HELLO without a token with BYE auth_failed', () =>
        withGate({ auth: 'none' }, undefined, async (h) => {
          const c = await open(h, t);
          assert.equal((await expectBye(c, {})).code, 'auth_failed');
        }));
    });

    describe('--auth upstream', () => {
      it('should log in as the player named by POST /connect', () =>
        withGate({ auth: 'upstream' }, (req) => (req.path === '/connect' ? { status: 200, body: { playerId: 'p-from-backend' } } : defaultHandler(req)), async (h) => {
          const c = await open(h, t);
          const w = await c.hello({ token: 'opaque-token' }, WAIT_MS);
          assert.equal(w.playerId, 'p-from-backend');
          const call = await h.backend.waitForCall((x) => x.path === '/connect', 'POST /connect', WAIT_MS);
          assert.equal(call.method, 'POST');
          assert.equal(call.headers['x-gate-id'], 'test-gate');
          const body = JSON.parse(call.body.toString('utf8')) as Record<string, unknown>;
          assert.equal(body.token, 'opaque-token');
          assert.equal(body.gateId, 'test-gate');
          assert.equal(body.sessionId, w.sessionId, '/connect should name the session the login will create');
          assert.equal(typeof body.remoteAddress, 'string');
          assert.match(String(body.remoteAddress), /127\.0\.0\.1/);
          await c.close();
        }));

      it('should answer BYE auth_failed when /connect answers 401', () =>
        withGate({ auth: 'upstream' }, (req) => (req.path === '/connect' ? { status: 401, body: { error: 'nope' } } : defaultHandler(req)), async (h) => {
          const c = await open(h, t);
          assert.equal((await expectBye(c, { token: 'bad' })).code, 'auth_failed');
          assert.equal(h.gate.gate.sessions.store.size, 0, 'a refused login must not leave a session');
        }));

      it('should answer BYE auth_failed when /connect names a playerId over 128 characters, as the other modes cap it', () =>
        withGate({ auth: 'upstream' }, (req) => (req.path === '/connect' ? { status: 200, body: { playerId: 'p'.repeat(129) } } : defaultHandler(req)), async (h) => {
          const c = await open(h, t);
          assert.equal((await expectBye(c, { token: 'long' })).code, 'auth_failed');
          assert.equal(h.gate.gate.sessions.store.size, 0);
        }));

      it('should answer BYE auth_failed when the backend is down', () =>
        withGate({ auth: 'upstream', upstreamRetries: 0 }, undefined, async (h) => {
          await h.backend.close();
          const c = await open(h, t);
          assert.equal((await expectBye(c, { token: 'alice' })).code, 'auth_failed');
          // The gate carries on: a later connection still gets an answer (auth_failed again, not a hang).
          const c2 = await open(h, t);
          assert.equal((await expectBye(c2, { token: 'bob' })).code, 'auth_failed');
        }));
    });

    describe('--auth jwt', () => {
      const over: Partial<GateConfig> = { auth: 'jwt', jwtSecret: JWT_SECRET };

      it('should log in as the sub of a good HS256 token', () =>
        withGate(over, undefined, async (h) => {
          const c = await open(h, t);
          const w = await c.hello({ token: await jwt({ sub: 'jwt-player', exp: Math.floor(Date.now() / 1000) + 60 }) }, WAIT_MS);
          assert.equal(w.playerId, 'jwt-player');
          await c.close();
        }));

      it('should refuse a token signed with the wrong secret', () =>
        withGate(over, undefined, async (h) => {
          const c = await open(h, t);
          const token = await jwt({ sub: 'mallory' }, 'some-other-secret-also-32-bytes-long');
          assert.equal((await expectBye(c, { token })).code, 'auth_failed');
        }));

      it('should refuse an expired token', () =>
        withGate(over, undefined, async (h) => {
          const c = await open(h, t);
          const token = await jwt({ sub: 'late', exp: Math.floor(Date.now() / 1000) - 60 });
          assert.equal((await expectBye(c, { token })).code, 'auth_failed');
        }));

      it('should refuse a token without sub', () =>
        withGate(over, undefined, async (h) => {
          const c = await open(h, t);
          assert.equal((await expectBye(c, { token: await jwt({}) })).code, 'auth_failed');
        }));

      it('should refuse a token that is not a JWT', () =>
        withGate(over, undefined, async (h) => {
          const c = await open(h, t);
          assert.equal((await expectBye(c, { token: 'not.a.jwt' })).code, 'auth_failed');
        }));
    });

    it('should send a WELCOME with every field of §2.1', () =>
      withGate({ heartbeatMs: 1234 }, undefined, async (h) => {
        const c = await open(h, t);
        const w = await c.hello({ token: 'alice' }, WAIT_MS);
        assert.equal(w.playerId, 'alice');
        assert.equal(typeof w.sessionId, 'string');
        assert.ok(w.sessionId.length > 0, 'sessionId must not be empty');
        assert.equal(typeof w.resumeToken, 'string');
        assert.ok(w.resumeToken.length >= 16, 'resumeToken should be long enough not to be guessed');
        assert.equal(w.gateId, 'test-gate');
        assert.equal(w.heartbeatMs, 1234);
        assert.equal(w.resumed, false);
        assert.equal(w.gap, false);
        assert.equal(w.lastSeq, 0);
        const welcome = c.frames.find((f) => f.type === FrameType.WELCOME)!;
        assert.equal(welcome.route, 0, 'control frames carry route 0');
        assert.equal(welcome.flags, 0);
        // Two sessions never share an id or a token.
        const c2 = await open(h, t);
        const w2 = await c2.hello({ token: 'bob' }, WAIT_MS);
        assert.notEqual(w2.sessionId, w.sessionId);
        assert.notEqual(w2.resumeToken, w.resumeToken);
        await c.close();
        await c2.close();
      }));

    it('should replace the first session when the same player logs in again', () =>
      withGate({}, undefined, async (h) => {
        const first = await open(h, t);
        const w1 = await first.hello({ token: 'dup' }, WAIT_MS);
        // The second login comes over the other transport: replacement is per player, not per listener.
        const second = await open(h, t === 'tcp' ? 'ws' : 'tcp');
        const w2 = await second.hello({ token: 'dup' }, WAIT_MS);
        assert.notEqual(w2.sessionId, w1.sessionId);
        const bye = await first.next((f) => f.type === FrameType.BYE, WAIT_MS);
        assert.equal((json(bye) as ByeBody).code, 'replaced');
        await withTimeout(first.closed, WAIT_MS, 'the replaced link to close');
        assert.deepEqual(await waitEvents(h, 'dup', 3), ['online', 'offline:replaced', 'online']);
        const ev = h.backend.events().filter((e) => e.playerId === 'dup');
        assert.deepEqual(
          ev.map((e) => e.sessionId),
          [w1.sessionId, w1.sessionId, w2.sessionId],
        );
        // The new session works and is the one the API knows.
        second.request(1, 1, { hi: true });
        assert.equal((await second.next((f) => f.seq === 1, WAIT_MS)).type, FrameType.RESPONSE);
        const p = await api(h, 'GET', '/v1/players/dup');
        assert.equal(p.status, 200);
        assert.equal(p.body.sessionId, w2.sessionId);
        await second.close();
      }));

    it('should answer a REQUEST before WELCOME with ERROR UNAUTHORIZED and that seq', () =>
      withGate({}, undefined, async (h) => {
        const c = await open(h, t);
        c.request(7, 42, { early: true });
        const e = await c.next((f) => f.type === FrameType.ERROR, WAIT_MS);
        assert.equal(e.seq, 42);
        assert.equal((json(e) as { code: string }).code, 'UNAUTHORIZED');
        assert.equal(h.backend.calls.filter((x) => x.path.startsWith('/rpc/')).length, 0, 'nothing goes upstream before login');
        // The link stays usable: a HELLO now still logs in.
        const w = await c.hello({ token: 'eager' }, WAIT_MS);
        assert.equal(w.playerId, 'eager');
        await c.close();
      }));

    it('should answer a HELLO whose body is not JSON with BYE protocol_error', () =>
      withGate({}, undefined, async (h) => {
        const c = await open(h, t);
        c.send({ type: FrameType.HELLO, flags: 0, route: 0, seq: 0, body: Buffer.from('{"token": "x"', 'utf8') });
        const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
        assert.equal((json(bye) as ByeBody).code, 'protocol_error');
        await withTimeout(c.closed, WAIT_MS, 'the gate to close after BYE protocol_error');
        const other = await open(h, t);
        assert.equal((await other.hello({ token: 'fine' }, WAIT_MS)).playerId, 'fine');
        await other.close();
      }));

    it('should end the session on a client BYE logout', () =>
      withGate({}, undefined, async (h) => {
        const c = await open(h, t);
        const w = await c.hello({ token: 'leaver' }, WAIT_MS);
        assert.equal((await api(h, 'GET', '/v1/players/leaver')).status, 200);
        c.send({ type: FrameType.BYE, flags: 0, route: 0, seq: 0, body: Buffer.from(JSON.stringify({ code: 'logout' })) });
        await withTimeout(c.closed, WAIT_MS, 'the gate to close after logout');
        assert.deepEqual(await waitEvents(h, 'leaver', 2), ['online', 'offline:logout']);
        const p = await api(h, 'GET', '/v1/players/leaver');
        assert.equal(p.status, 404, `session should be gone, got ${JSON.stringify(p.body)}`);
        // Ended for good: a resume of it is a fresh login.
        const again = await open(h, t);
        const w2 = await again.hello({ token: 'leaver', resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 0 } }, WAIT_MS);
        assert.equal(w2.resumed, false);
        assert.notEqual(w2.sessionId, w.sessionId);
        await again.close();
      }));

    it('should post online, detached, resumed, offline events in order', () =>
      withGate({}, undefined, async (h) => {
        const c = await open(h, t);
        const w = await c.hello({ token: 'life' }, WAIT_MS);
        await c.destroy();
        assert.deepEqual(await waitEvents(h, 'life', 2), ['online', 'detached:closed']);
        assert.equal((await api(h, 'GET', '/v1/players/life')).body.state, 'detached');
        const c2 = await open(h, t);
        const w2 = await c2.hello({ resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 0 } }, WAIT_MS);
        assert.equal(w2.resumed, true);
        assert.equal(w2.sessionId, w.sessionId);
        c2.send({ type: FrameType.BYE, flags: 0, route: 0, seq: 0, body: Buffer.from(JSON.stringify({ code: 'logout' })) });
        await withTimeout(c2.closed, WAIT_MS, 'the gate to close after logout');
        const types = (await waitEvents(h, 'life', 4)).map((e) => e.split(':')[0]);
        assert.deepEqual(types, ['online', 'detached', 'resumed', 'offline']);
        const ev = h.backend.events().filter((e) => e.playerId === 'life');
        for (const e of ev) {
          assert.equal(e.sessionId, w.sessionId);
          assert.equal(e.gateId, 'test-gate');
          assert.equal(typeof e.at, 'number');
        }
        assert.equal(ev[3]!.reason, 'logout');
        const posts = h.backend.calls.filter((x) => x.path === '/events');
        for (const p of posts) {
          assert.equal(p.headers['x-gate-id'], 'test-gate');
          assert.match(String(p.headers['content-type']), /application\/json/);
          assert.ok(Array.isArray(JSON.parse(p.body.toString('utf8'))), 'POST /events body is a JSON array');
        }
      }));
  });
}

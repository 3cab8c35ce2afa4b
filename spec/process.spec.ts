/**
 * The gate as a process among others (CONTRACT §1, §3): a port already in use makes `gate serve`
 * exit 1 with exactly one stderr line, whichever listener it is; and a backend that hangs, drops
 * the connection, is not listening at all or answers garbage costs the players whose requests
 * reach it at most --upstream-timeout each, while every other player keeps being answered at once.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { FrameType, type Frame } from '../lib/frame.js';
import { defaultHandler } from './helpers/fakeBackend.js';
import { startGate, type Harness } from './helpers/gateHarness.js';
import { spawnGate } from './helpers/gateProcess.js';
import { ByeError, connectTcp, connectWs, describeFrame, json, type TestClient } from './helpers/testClient.js';

/** Bound on a CLI run that should exit by itself, ms (node start-up included). */
const EXIT_MS = 30_000;
/** --upstream-timeout for the backend tests, ms. */
const UPSTREAM_TIMEOUT_MS = 1_000;
/** Slack over --upstream-timeout (plus retry backoff) for a stuck call's ERROR to arrive, ms. */
const SLACK_MS = 2_500;
/** --max-frame for the backend tests; the "oversized" reply is bigger. */
const MAX_FRAME = 4 * 1024;
/** The bad route (player A) and the good one (player B). */
const BAD_ROUTE = 1;
const GOOD_ROUTE = 2;

// ---- port in use --------------------------------------------------------------------------------

/** A TCP server holding a loopback port, closed when the test ends. */
async function occupyPort(t: TestContext): Promise<number> {
  const blocker: Server = createNetServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  return (blocker.address() as AddressInfo).port;
}

describe('process: a port in use', { concurrency: 3 }, () => {
  for (const listener of ['tcp', 'ws', 'api'] as const)
    it(`should exit 1 with exactly one stderr line when the --${listener} port is taken`, async (t) => {
      const port = await occupyPort(t);
      const at = (l: string): string => (l === listener ? `127.0.0.1:${port}` : '127.0.0.1:0');
      const p = spawnGate(['serve', '--tcp', at('tcp'), '--ws', at('ws'), '--api', at('api')]);
      t.after(() => p.kill());
      const exit = await p.waitForExit(EXIT_MS);
      const stderr = p.stderr();
      const lines = stderr.split('\n').filter((l) => l !== '');
      assert.deepEqual(exit, { code: 1, signal: null }, `exit; stderr: ${stderr}`);
      assert.equal(lines.length, 1, `exactly one stderr line, got: ${JSON.stringify(stderr)}`);
      assert.match(lines[0]!, new RegExp(`127\\.0\\.0\\.1:${port}\\b.*in use`));
      assert.doesNotMatch(stderr, /^\s+at\s/m, 'no stack trace');
      assert.equal(p.lines.filter((l) => l.includes('"msg":"listening"')).length, 0, 'never logged listening');
    });
});

// ---- bad backends -------------------------------------------------------------------------------

/** What the scripted backend does with a call to the bad route. */
type Misbehaviour = 'hang' | 'reset' | 'junk' | 'bad-headers' | 'oversized' | 'stall-body';

interface ScriptedBackend {
  readonly url: string;
  behave(m: Misbehaviour): void;
  close(): Promise<void>;
}

/**
 * A backend answering /rpc/GOOD_ROUTE by echoing, /events and /gates with 204, and the bad route
 * with the current misbehaviour. Written on node:http so it can also write raw junk on the socket.
 */
async function startScriptedBackend(): Promise<ScriptedBackend> {
  let mode: Misbehaviour = 'hang';
  const sockets = new Set<Socket>(); // destroyed on close, hung ones included
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0];
      if (path === `/rpc/${GOOD_ROUTE}`) {
        const body = Buffer.concat(parts);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        res.end(body);
        return;
      }
      if (path !== `/rpc/${BAD_ROUTE}`) {
        res.writeHead(204);
        res.end();
        return;
      }
      switch (mode) {
        case 'hang':
          return;
        case 'reset':
          req.socket.destroy();
          return;
        case 'junk':
          req.socket.write(Buffer.from('\x00\xff\x13 this is not HTTP at all \r\n\r\n\x7f'));
          return; // and keep the socket open
        case 'bad-headers':
          req.socket.write('HTTP/1.1 200 OK\r\ncontent-length: lots\r\n\r\nhello');
          return;
        case 'oversized':
          res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked: no length to judge up front
          res.end(Buffer.alloc(MAX_FRAME * 4, 0x61));
          return;
        case 'stall-body':
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 100 });
          res.write(Buffer.alloc(10));
          return; // the other 90 bytes never come
      }
    });
  };
  const server = createHttpServer({ keepAlive: true }, onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    behave: (m) => void (mode = m),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The answer (RESPONSE or ERROR) to REQUEST `seq`, with how long it took from `since`. */
async function answer(c: TestClient, seq: number, since: number, timeoutMs: number): Promise<{ f: Frame; ms: number }> {
  const f = await c.next((x) => x.seq === seq && (x.type === FrameType.RESPONSE || x.type === FrameType.ERROR), timeoutMs);
  return { f, ms: Date.now() - since };
}

const errorCode = (f: Frame): { code: string; status?: number } => json(f) as { code: string; status?: number };

/**
 * Player A sends `stuck` requests to the bad route; player B makes `rounds` round trips to the
 * good route. Where A's calls hang until --upstream-timeout (`expectA.atLeastMs`), every one of
 * B's answers must come while A's first call is still outstanding: B never waits behind A. (No
 * wall-clock bound on B: the order of events is the claim, whatever the machine's speed.) Then
 * every one of A's requests must have ended in the expected ERROR, and A itself must be answered
 * again on the good route.
 */
async function playersApart(
  t: TestContext,
  h: Harness,
  expectA: { code: string; status?: number; atLeastMs?: number },
  { stuck = 2, rounds = 5 } = {},
): Promise<void> {
  const a = await connectTcp(h.tcpPort, '127.0.0.1', { autoPong: true });
  const b = await connectWs(h.wsPort, '127.0.0.1', { autoPong: true });
  t.after(() => Promise.all([a.destroy(), b.destroy()]).then(() => undefined));
  await a.hello({ token: 'player-a' });
  await b.hello({ token: 'player-b' });

  const sentAt = Date.now();
  for (let i = 1; i <= stuck; i++) a.request(BAD_ROUTE, i, { a: i });
  const aAnswers = Array.from({ length: stuck }, (_, i) => answer(a, i + 1, sentAt, stuck * (UPSTREAM_TIMEOUT_MS + SLACK_MS)));
  for (const p of aAnswers) void p.catch(() => undefined); // awaited below; B's failures are reported first
  let aFirstDone = false;
  void aAnswers[0]!.then(() => (aFirstDone = true), () => undefined);

  for (let i = 1; i <= rounds; i++) {
    b.request(GOOD_ROUTE, i, { b: i });
    const { f } = await answer(b, i, Date.now(), stuck * (UPSTREAM_TIMEOUT_MS + SLACK_MS));
    assert.equal(f.type, FrameType.RESPONSE, `player B's request #${i}: ${describeFrame(f)}`);
    assert.deepEqual(json(f), { b: i });
    if (expectA.atLeastMs !== undefined) assert.equal(aFirstDone, false, `player B's request #${i} was answered only after player A's stuck call ended`);
  }

  let prev = 0;
  for (const [i, p] of aAnswers.entries()) {
    const { f, ms } = await p;
    assert.equal(f.type, FrameType.ERROR, `player A's request #${i + 1}: ${describeFrame(f)}`);
    const body = errorCode(f);
    assert.equal(body.code, expectA.code, `player A's request #${i + 1}: ${JSON.stringify(body)}`);
    if (expectA.status !== undefined) assert.equal(body.status, expectA.status);
    // With --player-concurrency 1 A's calls run one after another: each costs at most one timeout.
    assert.ok(ms - prev <= UPSTREAM_TIMEOUT_MS + SLACK_MS, `player A's request #${i + 1} took ${ms - prev}ms after the previous one`);
    if (expectA.atLeastMs !== undefined) assert.ok(ms - prev >= expectA.atLeastMs - 50, `player A's request #${i + 1} ended after ${ms - prev}ms, before the timeout`);
    prev = ms;
  }

  a.request(GOOD_ROUTE, stuck + 1, { again: true });
  const { f } = await answer(a, stuck + 1, Date.now(), UPSTREAM_TIMEOUT_MS + SLACK_MS);
  assert.equal(f.type, FrameType.RESPONSE, `player A on the good route afterwards: ${describeFrame(f)}`);
}

describe('process: a misbehaving backend route', () => {
  let backend: ScriptedBackend;
  let h: Harness;
  before(async () => {
    backend = await startScriptedBackend();
    h = await startGate({ auth: 'none', upstream: backend.url, upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS, maxFrame: MAX_FRAME, workers: 4 });
  });
  after(async () => {
    await h?.close();
    await backend?.close();
  });

  // Calls that time out run one at a time for A (--player-concurrency 1), so one of them is enough.
  const cases: { m: Misbehaviour; what: string; stuck?: number; expectA: { code: string; status?: number; atLeastMs?: number } }[] = [
    { m: 'hang', what: 'never answers', stuck: 1, expectA: { code: 'UPSTREAM_TIMEOUT', atLeastMs: UPSTREAM_TIMEOUT_MS } },
    { m: 'stall-body', what: 'sends headers and part of the body, then stalls', stuck: 1, expectA: { code: 'UPSTREAM_TIMEOUT', atLeastMs: UPSTREAM_TIMEOUT_MS } },
    { m: 'reset', what: 'drops the connection', expectA: { code: 'UPSTREAM_UNAVAILABLE' } },
    { m: 'junk', what: 'answers bytes that are not HTTP', expectA: { code: 'UPSTREAM_UNAVAILABLE' } },
    { m: 'bad-headers', what: 'answers a malformed HTTP header', expectA: { code: 'UPSTREAM_UNAVAILABLE' } },
    { m: 'oversized', what: 'answers 200 with a body over --max-frame', expectA: { code: 'UPSTREAM_STATUS', status: 502 } },
  ];
  for (const c of cases)
    it(`should keep answering player B promptly when player A's route ${c.what}`, async (t) => {
      backend.behave(c.m);
      await playersApart(t, h, c.expectA, { stuck: c.stuck ?? 3 });
    });
});

/**
 * A loopback port where connections are refused. Privileged ports below the ephemeral range: a
 * port merely freed by this process could be handed by the OS to another test's listener at once.
 */
async function refusedPort(): Promise<number> {
  for (const port of [1, 9, 13, 17, 19]) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
    });
    if (refused) return port;
  }
  return assert.fail('no refused loopback port among 1, 9, 13, 17, 19 (something listens on all of them)');
}

describe('process: a backend that is not there or not HTTP', () => {
  /** Both players hit the same dead backend: each gets its ERROR within the bound, neither waits on the other. */
  async function bothPromptlyRefused(t: TestContext, upstream: string): Promise<void> {
    // eventsFlushMs: shutdown would otherwise spend its full 5 s trying to post /events to the dead backend.
    const h = await startGate({ auth: 'none', upstream, upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS, upstreamRetries: 2, eventsFlushMs: 100 });
    t.after(() => h.close());
    const clients = await Promise.all([connectTcp(h.tcpPort), connectWs(h.wsPort)]);
    t.after(() => Promise.all(clients.map((c) => c.destroy())).then(() => undefined));
    await Promise.all(clients.map((c, i) => c.hello({ token: `dead-${i}` })));
    const since = Date.now();
    clients.forEach((c) => [1, 2, 3].forEach((seq) => c.request(GOOD_ROUTE, seq, { seq })));
    for (const [i, c] of clients.entries())
      for (const seq of [1, 2, 3]) {
        const { f, ms } = await answer(c, seq, since, 3 * (UPSTREAM_TIMEOUT_MS + SLACK_MS));
        assert.equal(f.type, FrameType.ERROR, `player ${i} request #${seq}: ${describeFrame(f)}`);
        // UNAVAILABLE, not TIMEOUT: the refusal was seen at once, never waited out (no wall-clock bound needed).
        assert.equal(errorCode(f).code, 'UPSTREAM_UNAVAILABLE', `player ${i} request #${seq} after ${ms}ms: ${JSON.stringify(errorCode(f))}`);
      }
  }

  it('should answer UPSTREAM_UNAVAILABLE at once when nothing listens on the backend port', async (t) => {
    const port = await refusedPort();
    await bothPromptlyRefused(t, `http://127.0.0.1:${port}`);
  });

  it('should answer UPSTREAM_UNAVAILABLE when the backend is a raw TCP server writing junk', async (t) => {
    const junk: Server = createNetServer((s) => {
      s.on('error', () => undefined);
      s.on('data', () => s.write('\x16\x03\x01 garbage, not an HTTP response\r\n\r\n'));
    });
    const sockets = new Set<Socket>();
    junk.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => junk.listen(0, '127.0.0.1', resolve));
    t.after(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          junk.close(() => resolve());
        }),
    );
    await bothPromptlyRefused(t, `http://127.0.0.1:${(junk.address() as AddressInfo).port}`);
  });
});

describe('process: a backend whose /connect hangs for one player', () => {
  it('should log other players in promptly and refuse the stuck one within its bound', async (t) => {
    const retries = 1;
    const h = await startGate({ auth: 'upstream', upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS, upstreamRetries: retries }, (req) =>
      req.path === '/connect' && req.body.toString('utf8').includes('"stuck"') ? { hang: true } : defaultHandler(req),
    );
    t.after(() => h.close());
    const stuck = await connectTcp(h.tcpPort);
    t.after(() => stuck.destroy());
    const since = Date.now();
    let stuckDone = false;
    const refused = stuck.hello({ token: 'stuck' }, (retries + 1) * (UPSTREAM_TIMEOUT_MS + SLACK_MS)).then(
      () => assert.fail('the stuck login should be refused'),
      (e: unknown) => ((stuckDone = true), e),
    );
    for (let i = 0; i < 5; i++) {
      const c = await (i % 2 ? connectWs(h.wsPort) : connectTcp(h.tcpPort));
      t.after(() => c.destroy());
      const w = await c.hello({ token: `prompt-${i}` }, (retries + 1) * (UPSTREAM_TIMEOUT_MS + SLACK_MS));
      assert.equal(w.playerId, `prompt-${i}`);
      // The order is the claim: each login completes while the stuck /connect still hangs.
      assert.equal(stuckDone, false, `login ${i} completed only after the stuck login ended`);
    }
    const e = await refused;
    assert.ok(e instanceof ByeError && e.code === 'auth_failed', `the stuck login ended with ${String(e)}`);
    // got retries a timed-out /connect: at most (1 + --upstream-retries) timeouts plus backoff.
    const took = Date.now() - since;
    assert.ok(took >= UPSTREAM_TIMEOUT_MS - 50, `refused after ${took}ms, before --upstream-timeout`);
    assert.ok(took <= (retries + 1) * UPSTREAM_TIMEOUT_MS + SLACK_MS, `refused after ${took}ms`);
  });
});

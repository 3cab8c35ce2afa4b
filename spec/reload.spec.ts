/**
 * Config hot reload through the CLI: `gate serve --config file`, the file rewritten, then SIGHUP
 * or POST /v1/admin/reload. Each live option's effect is seen from outside (a log line, the
 * backend's concurrency, a RATE_LIMITED, a key accepted or refused, the certificate a client is
 * shown); a bad file changes nothing; restart-only options are listed, not applied.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { FrameType, encodeFrame, parseFrame, type Frame } from '../lib/frame.js';
import { FrameDecoder } from '../lib/frameDecoder.js';
import { makeSelfSignedCert, type TestCert } from './helpers/certs.js';
import { defaultHandler, startFakeBackend, type FakeBackend, type FakeReply } from './helpers/fakeBackend.js';
import { portOf, spawnGate, type GateProcess } from './helpers/gateProcess.js';
import { connectTcp, json, type ByeBody, type TestClient } from './helpers/testClient.js';
import { waitFor } from './helpers/wait.js';

const WAIT_MS = 15_000;

/** A gate run from the CLI with a --config file the test rewrites. */
interface Running {
  readonly p: GateProcess;
  readonly dir: string;
  readonly file: string;
  tcpPort: number;
  /** The WS listener's port; 0 when it is off (the default here). */
  wsPort: number;
  apiUrl: string;
  write(options: Record<string, unknown>): void;
  /** SIGHUP, then the outcome's log line (the next `config reloaded*` or `config reload refused`). */
  hup(): Promise<Record<string, unknown>>;
  /** An API call with a bearer key. */
  call(method: string, path: string, key: string | null, body?: unknown): Promise<{ status: number; body: any }>;
}

const parsed = (line: string): Record<string, unknown> | null => {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
};
const isOutcome = (l: Record<string, unknown> | null): boolean => typeof l?.msg === 'string' && /^config reload/.test(l.msg);

async function startRunning(args: string[], options: Record<string, unknown>): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'gate-reload-'));
  const file = join(dir, 'gate.json');
  const write = (o: Record<string, unknown>): void => writeFileSync(file, JSON.stringify(o));
  write(options);
  const p = spawnGate(['serve', '--tcp', '127.0.0.1:0', '--ws', 'off', '--api', '127.0.0.1:0', '--config', file, ...args]);
  const listening = await p.waitForLog('listening');
  const r: Running = {
    p,
    dir,
    file,
    tcpPort: portOf(listening.tcp),
    wsPort: listening.ws ? portOf(listening.ws) : 0,
    apiUrl: `http://${String(listening.api)}`,
    write,
    async hup() {
      const seen = p.lines.filter((l) => isOutcome(parsed(l))).length;
      p.child.kill('SIGHUP');
      return waitFor<Record<string, unknown>>('the reload outcome log line', () => p.lines.map(parsed).filter(isOutcome)[seen], WAIT_MS);
    },
    async call(method, path, key, body) {
      const res = await fetch(`${r.apiUrl}${path}`, {
        method,
        headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
  };
  return r;
}

const stop = async (r: Running | undefined): Promise<void> => {
  if (!r) return;
  await r.p.kill();
  rmSync(r.dir, { recursive: true, force: true });
};

const login = async (port: number, player: string): Promise<TestClient> => {
  const c = await connectTcp(port, '127.0.0.1', { autoPong: true });
  await c.hello({ token: player }, WAIT_MS);
  return c;
};
const answer = (c: TestClient, seq: number): Promise<Frame> => c.next((f) => (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR) && f.seq === seq, WAIT_MS);
const errorCode = (f: Frame): string => (f.type === FrameType.ERROR ? String((json(f) as { code?: unknown }).code) : 'RESPONSE');
/** Two REQUESTs in one write, so both reach the gate together whatever the machine's speed. */
const twoRequests = (c: TestClient, seq: number): void =>
  c.sendRaw(
    Buffer.concat([0, 1].map((i) => encodeFrame({ type: FrameType.REQUEST, flags: 0, route: 1, seq: seq + i, body: Buffer.from('{}') }, true))),
  );

describe('reload: live options through SIGHUP and the API', () => {
  let backend: FakeBackend;
  let r: Running;
  /** Held /rpc/5 calls, answered when the test says so. */
  const held: ((reply: FakeReply) => void)[] = [];
  // The file as the tests rewrite it, one change after another.
  let cur: Record<string, unknown> = { logLevel: 'info', workers: 1, apiKey: 'key-one', keyGrace: '5m' };
  const set = (patch: Record<string, unknown>): void => {
    cur = { ...cur, ...patch };
    r.write(cur);
  };

  before(async () => {
    backend = await startFakeBackend((req) =>
      req.path === '/rpc/5' ? new Promise<FakeReply>((resolve) => held.push(resolve)) : req.path === '/rpc/9' ? { hang: true } : defaultHandler(req),
    );
    r = await startRunning(['--upstream', backend.url, '--auth', 'none'], cur);
  });
  after(async () => {
    for (const h of held) h({ status: 200, body: Buffer.from('late') });
    await stop(r);
    await backend.close();
  });

  it('should log at the new --log-level for what happens after the reload', async () => {
    const opened = (): number => r.p.lines.filter((l) => parsed(l)?.msg === 'connection opened').length;
    const before = await connectTcp(r.tcpPort);
    await before.hello({ token: 'lv-1' }, WAIT_MS);
    set({ logLevel: 'debug' });
    const outcome = await r.hup();
    assert.equal(outcome.msg, 'config reloaded');
    assert.deepEqual(outcome.applied, ['log-level']);
    assert.deepEqual(outcome.restartRequired, []);
    assert.equal(opened(), 0, 'no debug line was written at info');
    const later = await connectTcp(r.tcpPort);
    await waitFor('a debug "connection opened" line after the reload', () => opened() === 1, WAIT_MS);
    set({ logLevel: 'info' });
    assert.deepEqual((await r.hup()).applied, ['log-level']);
    await Promise.all([before.close(), later.close()]);
  });

  it('should start queued upstream calls at once when --workers grows from 1 to 4', async () => {
    const rpcCalls = (): number => backend.calls.filter((c) => c.path === '/rpc/5').length;
    const clients = await Promise.all(['w1', 'w2', 'w3', 'w4'].map((p) => login(r.tcpPort, p)));
    clients.forEach((c) => c.request(5, 1, {}));
    await waitForStats(r, (s) => s.inflight === 1 && s.queued === 3, 'one call running and three queued behind --workers 1');
    assert.equal(rpcCalls(), 1, 'the backend saw one call under --workers 1');
    set({ workers: 4 });
    assert.deepEqual((await r.hup()).applied, ['workers']);
    await waitFor('four calls at the backend at once', () => rpcCalls() === 4 && held.length === 4, WAIT_MS);
    for (const h of held.splice(0)) h({ status: 200, body: Buffer.from('ok') });
    for (const c of clients) assert.equal(errorCode(await answer(c, 1)), 'RESPONSE');
    await Promise.all(clients.map((c) => c.close()));
  });

  it('should apply --rate-limit to a link that was open before the reload', async () => {
    const c = await login(r.tcpPort, 'rate-1');
    twoRequests(c, 1);
    assert.deepEqual([errorCode(await answer(c, 1)), errorCode(await answer(c, 2))], ['RESPONSE', 'RESPONSE']);
    set({ rateLimit: '1/s' });
    assert.deepEqual((await r.hup()).applied, ['rate-limit']);
    twoRequests(c, 3);
    assert.deepEqual([errorCode(await answer(c, 3)), errorCode(await answer(c, 4))], ['RESPONSE', 'RATE_LIMITED']);
    await c.close();
  });

  it('should end an existing session by the new, shorter --idle-timeout', async () => {
    const c = await login(r.tcpPort, 'idle-1');
    set({ idleTimeout: '300ms', heartbeat: '20s' });
    assert.deepEqual((await r.hup()).applied, ['heartbeat', 'idle-timeout']);
    const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
    assert.equal((json(bye) as ByeBody).code, 'idle');
    // A link from now on is told the new heartbeat.
    const d = await connectTcp(r.tcpPort, '127.0.0.1', { autoPong: true });
    const w = await d.hello({ token: 'idle-2' }, WAIT_MS);
    assert.equal(w.heartbeatMs, 20_000);
    set({ idleTimeout: '30m' });
    assert.deepEqual((await r.hup()).applied, ['idle-timeout']);
    await Promise.all([c.close(), d.close()]);
  });

  it('should time a call out by the new --upstream-timeout', async () => {
    set({ upstreamTimeout: '200ms', upstreamRetries: 0 });
    assert.deepEqual((await r.hup()).applied, ['upstream-timeout', 'upstream-retries']);
    const c = await login(r.tcpPort, 'slow-1');
    c.request(9, 1, {});
    assert.equal(errorCode(await answer(c, 1)), 'UPSTREAM_TIMEOUT');
    await c.close();
  });

  it("should run a player's queued requests at once when --player-concurrency is raised", async () => {
    set({ rateLimit: 'off' }); // three REQUESTs at once would be refused past 1/s
    assert.deepEqual((await r.hup()).applied, ['rate-limit']);
    const c = await login(r.tcpPort, 'pc-1');
    const before = held.length;
    for (const seq of [1, 2, 3]) c.request(5, seq, {});
    await waitForStats(r, (s) => s.inflight === 1 && s.queued === 2, "one of the player's three requests running, two waiting for its turn");
    assert.equal(held.length, before + 1);
    set({ playerConcurrency: 3 });
    assert.deepEqual((await r.hup()).applied, ['player-concurrency']);
    await waitFor('all three at the backend at once', () => held.length === before + 3, WAIT_MS);
    for (const h of held.splice(0)) h({ status: 200, body: Buffer.from('ok') });
    for (const seq of [1, 2, 3]) assert.equal(errorCode(await answer(c, seq)), 'RESPONSE');
    set({ playerConcurrency: 1, rateLimit: '1/s' });
    assert.deepEqual((await r.hup()).applied, ['player-concurrency', 'rate-limit']);
    await c.close();
  });

  it('should trim kept pushes to a lowered --buffer-max at once', async () => {
    const c = await login(r.tcpPort, 'buf-1'); // never ACKs: every push stays kept
    for (let i = 0; i < 5; i++) assert.equal((await r.call('POST', '/v1/push', 'key-one', { playerId: 'buf-1', route: 3, data: { i } })).status, 200);
    const kept = async (): Promise<number> => ((await r.call('GET', '/v1/players/buf-1', 'key-one')).body as { buffered: number }).buffered;
    assert.equal(await kept(), 5);
    set({ bufferMax: 2 });
    assert.deepEqual((await r.hup()).applied, ['buffer-max']);
    assert.equal(await kept(), 2);
    set({ bufferMax: 1000 });
    await r.hup();
    await c.close();
  });

  it('should refuse connections past a lowered --max-connections and close new links by a shorter --hello-timeout', async () => {
    const open = ((await r.call('GET', '/v1/stats', 'key-one')).body as { connections: number }).connections;
    const keep = await login(r.tcpPort, 'mc-1');
    set({ maxConnections: open + 1, helloTimeout: '300ms' });
    assert.deepEqual((await r.hup()).applied, ['hello-timeout', 'max-connections']);
    // Past the bound: accepted by the kernel, closed at once by the gate, nothing sent.
    const refused = await connectTcp(r.tcpPort);
    const gone = await refused.next(undefined, WAIT_MS).then(
      (f) => `a frame: ${f.type}`,
      (e: Error) => e.message,
    );
    assert.match(gone, /closed/, 'the connection past --max-connections was closed without a frame');
    set({ maxConnections: 100000 });
    assert.deepEqual((await r.hup()).applied, ['max-connections']);
    // A link that sends no HELLO: BYE hello_timeout by the new bound (the old one was 10 s).
    const silent = await connectTcp(r.tcpPort);
    const bye = await silent.next((f) => f.type === FrameType.BYE, WAIT_MS);
    assert.equal((json(bye) as ByeBody).code, 'hello_timeout');
    set({ helloTimeout: '10s' });
    await r.hup();
    await Promise.all([keep.close(), refused.destroy(), silent.destroy()]);
  });

  it('should roll --api-key with the previous key accepted for --key-grace, and not after', async () => {
    set({ apiKey: 'key-two' });
    const reloaded = await r.call('POST', '/v1/admin/reload', 'key-one');
    assert.equal(reloaded.status, 200, JSON.stringify(reloaded.body));
    assert.deepEqual(reloaded.body, { reloaded: true, applied: ['api-key'], restartRequired: [] });
    assert.equal((await r.call('GET', '/v1/stats', 'key-two')).status, 200, 'the new key');
    assert.equal((await r.call('GET', '/v1/stats', 'key-one')).status, 200, 'the previous key within --key-grace');
    assert.equal((await r.call('GET', '/v1/stats', 'key-zero')).status, 401);
    set({ apiKey: 'key-three', keyGrace: '0' });
    assert.equal((await r.call('POST', '/v1/admin/reload', 'key-two')).status, 200);
    assert.equal((await r.call('GET', '/v1/stats', 'key-three')).status, 200);
    assert.equal((await r.call('GET', '/v1/stats', 'key-two')).status, 401, 'no grace: the previous key is refused at once');
    assert.equal((await r.call('GET', '/v1/stats', 'key-one')).status, 401);
  });

  it('should change nothing when the file has a bad value, and say which option and where', async () => {
    r.write({ ...cur, rateLimit: 'off', workers: 'lots' });
    const outcome = await r.hup();
    assert.equal(outcome.msg, 'config reload refused; the running configuration stays');
    assert.equal(outcome.option, 'workers');
    assert.equal(outcome.source, 'file');
    assert.match(String(outcome.err), /^--workers: "lots" is not a whole number \(from the --config file\)$/);
    const viaApi = await r.call('POST', '/v1/admin/reload', 'key-three');
    assert.equal(viaApi.status, 400);
    assert.equal(viaApi.body.error, 'bad_config');
    assert.equal(viaApi.body.option, 'workers');
    assert.equal(viaApi.body.source, 'file');
    // The rate limit set before is still on: the good value beside the bad one was not applied.
    const c = await login(r.tcpPort, 'rate-2');
    twoRequests(c, 1);
    assert.deepEqual([errorCode(await answer(c, 1)), errorCode(await answer(c, 2))], ['RESPONSE', 'RATE_LIMITED']);
    await c.close();
    // Not JSON at all: the same.
    writeFileSync(r.file, '{ "workers": ');
    const broken = await r.hup();
    assert.equal(broken.option, 'config');
    assert.match(String(broken.err), /is not valid JSON/);
  });

  it('should list options that need a restart and apply none of them', async () => {
    set({ maxFrame: '128kb', requestWindow: 64 });
    const res = await r.call('POST', '/v1/admin/reload', 'key-three');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { reloaded: true, applied: [], restartRequired: ['max-frame', 'request-window'] });
  });
});

describe('reload: the embedded demo backend follows a rolled --api-key', () => {
  let r: Running | undefined;
  after(() => stop(r));

  it('should keep delivering the demo game\'s pushes after the key changes with no grace', async () => {
    r = await startRunning([], { apiKey: 'demo-one' });
    const c = await login(r.tcpPort, 'demo-player');
    const chat = async (seq: number): Promise<void> => {
      c.request(2, seq, { text: `hi ${seq}` });
      await answer(c, seq);
      const p = await c.next((f) => f.type === FrameType.PUSH && f.route === 102, WAIT_MS);
      assert.match(p.body.toString('utf8'), new RegExp(`hi ${seq}`));
    };
    c.request(1, 1, { room: 'lobby' });
    assert.equal(errorCode(await answer(c, 1)), 'RESPONSE');
    await chat(2);
    r.write({ apiKey: 'demo-two', keyGrace: '0' });
    assert.deepEqual((await r.hup()).applied, ['api-key', 'key-grace']);
    assert.equal((await r.call('GET', '/v1/stats', 'demo-one')).status, 401, 'the old key is refused at once');
    await chat(3); // the demo backend pushed with the new key
    await c.close();
  });
});

describe('reload: --tls-cert and --tls-key rotate for new handshakes', () => {
  let a: TestCert;
  let b: TestCert;
  let r: Running | undefined;
  before(() => {
    a = makeSelfSignedCert('gate-reload-a-');
    b = makeSelfSignedCert('gate-reload-b-');
  });
  after(async () => {
    await stop(r);
    a.remove();
    b.remove();
  });

  /** Opens TLS trusting only `ca`: resolves with the socket once verified, rejects when the gate's certificate is not that one. */
  const tlsTo = (port: number, ca: Buffer): Promise<TLSSocket> =>
    new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca });
      s.once('error', reject);
      s.once('secureConnect', () => {
        s.off('error', reject);
        s.on('error', () => undefined);
        resolve(s);
      });
    });
  /** wss trusting only `ca`: resolves once the upgrade is done (the certificate verified), rejects otherwise. */
  const wssTo = (port: number, ca: Buffer): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${port}/`, { ca });
      ws.once('error', reject);
      ws.once('open', () => {
        ws.off('error', reject);
        ws.on('error', () => undefined);
        resolve(ws);
      });
    });
  /** One PING, one PONG on an open TLS link. */
  const ping = (s: TLSSocket, seq: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const decoder = new FrameDecoder(1 << 20);
      const onData = (chunk: Buffer): void => {
        decoder.push(chunk, (f) => {
          if (f.type === FrameType.PONG && f.seq === seq) {
            s.off('data', onData);
            resolve();
          }
        });
      };
      s.on('data', onData);
      s.once('close', () => reject(new Error('the link closed before the PONG')));
      s.write(encodeFrame({ type: FrameType.PING, flags: 0, route: 0, seq, body: Buffer.alloc(0) }, true));
    });

  it('should show new handshakes the new certificate and keep open connections', async () => {
    // The files the gate is given: renewed in place, as a certificate manager does.
    const dir = mkdtempSync(join(tmpdir(), 'gate-reload-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(a.certPath, cert);
    copyFileSync(a.keyPath, key);
    try {
      r = await startRunning(['--auth', 'none', '--ws', '127.0.0.1:0'], { tlsCert: cert, tlsKey: key });
      const open = await tlsTo(r.tcpPort, a.cert);
      const openWs = await wssTo(r.wsPort, a.cert);
      await assert.rejects(tlsTo(r.tcpPort, b.cert), /self[- ]signed|unable to verify|certificate/i, 'B is not served yet');
      copyFileSync(b.certPath, cert);
      copyFileSync(b.keyPath, key);
      const outcome = await r.hup();
      assert.deepEqual(outcome.applied, ['tls-cert', 'tls-key']);
      const fresh = await tlsTo(r.tcpPort, b.cert);
      await assert.rejects(tlsTo(r.tcpPort, a.cert), /self[- ]signed|unable to verify|certificate/i, 'A is no longer served');
      // The same on the wss listener: the new certificate for new upgrades, the old link kept.
      (await wssTo(r.wsPort, b.cert)).terminate();
      await assert.rejects(wssTo(r.wsPort, a.cert), /self[- ]signed|unable to verify|certificate/i, 'A is no longer served on wss');
      // The wss link made under A still answers: one PING, one PONG.
      const pong = new Promise<Frame>((resolve, reject) => {
        openWs.on('message', (data: Buffer) => resolve(parseFrame(data, 1 << 20)));
        openWs.once('close', () => reject(new Error('the wss link closed before the PONG')));
      });
      openWs.send(encodeFrame({ type: FrameType.PING, flags: 0, route: 0, seq: 9, body: Buffer.alloc(0) }, false), { binary: true });
      const f = await pong;
      assert.deepEqual([f.type, f.seq], [FrameType.PONG, 9]);
      openWs.terminate();
      await ping(open, 7); // the connection made under A lives on
      await ping(fresh, 8);
      open.destroy();
      fresh.destroy();
      // A key that does not match the certificate: refused, B still served.
      copyFileSync(a.keyPath, key);
      const refused = await r.hup();
      assert.equal(refused.option, 'tls-key');
      assert.match(String(refused.err), /does not match/);
      (await tlsTo(r.tcpPort, b.cert)).destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Polls /v1/stats (one call at a time) until `ok` holds for it. */
async function waitForStats(r: Running, ok: (s: { inflight: number; queued: number }) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  let last: unknown = null;
  while (Date.now() < deadline) {
    const s = (await r.call('GET', '/v1/stats', 'key-one')).body as { inflight: number; queued: number };
    if (ok(s)) return;
    last = s;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`timed out after ${WAIT_MS}ms waiting for ${what}; last /v1/stats: ${JSON.stringify(last)}`);
}

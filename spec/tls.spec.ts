/**
 * TLS (CONTRACT §1 `--tls-cert`, `--tls-key`): with a certificate the TCP listener speaks TLS and
 * the WS listener wss, with the same framing inside. A client that is not speaking TLS loses only
 * its own link. Bad certificate options are refused at start-up with exit 2 and one line naming
 * the option (decided here: an unusable file is a bad option value, like an unreadable one).
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { FrameType, encodeFrame, parseFrame, type Frame } from '../lib/frame.js';
import { FrameDecoder } from '../lib/frameDecoder.js';
import { makeSelfSignedCert, type TestCert } from './helpers/certs.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { spawnGate } from './helpers/gateProcess.js';
import { connectTcp, connectWs, describeFrame, json, type WelcomeBody } from './helpers/testClient.js';
import { waitFor, waitForAsync, withTimeout } from './helpers/wait.js';

/** Bound on any single wait, ms. */
const WAIT_MS = 5_000;
/** Bound on a CLI run that should exit by itself, ms (node start-up included). */
const EXIT_MS = 30_000;
/** Largest frame this file's clients accept. */
const CLIENT_MAX_FRAME = 1024 * 1024;

/** A logged-in-or-not client link over TLS or wss, with the few helpers these tests need. */
interface SecureLink {
  send(f: Frame): void;
  /** The oldest unconsumed frame matching `pred`; rejects after WAIT_MS or when the link closes. */
  next(pred: (f: Frame) => boolean, what: string): Promise<Frame>;
  readonly closed: Promise<void>;
  close(): void;
  /** What the client saw of the server's certificate. */
  readonly peer: { authorized: boolean; subjectCN: string | undefined };
}

/** Receive queue and waiters shared by both transports. */
function inbox(): { push(f: Frame): void; end(why: string): void; next: SecureLink['next'] } {
  const queue: Frame[] = [];
  const seen: Frame[] = [];
  const waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void; fail: (why: string) => void }[] = [];
  let ended: string | null = null;
  const failure = (what: string, why: string): Error => new Error(`waiting for ${what}: ${why}; received: ${seen.map(describeFrame).join('; ') || 'none'}`);
  return {
    push(f) {
      const copy = { ...f, body: Buffer.from(f.body) };
      seen.push(copy);
      const w = waiters.find((x) => x.pred(copy));
      if (w) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(copy);
      } else queue.push(copy);
    },
    end(why) {
      ended ??= why;
      for (const w of [...waiters]) w.fail(why);
    },
    next(pred, what) {
      const i = queue.findIndex(pred);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]!);
      if (ended !== null) return Promise.reject(failure(what, ended));
      return new Promise<Frame>((resolve, reject) => {
        const w = {
          pred,
          resolve: (f: Frame) => {
            clearTimeout(timer);
            resolve(f);
          },
          fail: (why: string) => {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(w), 1);
            reject(failure(what, why));
          },
        };
        const timer = setTimeout(() => w.fail(`timed out after ${WAIT_MS}ms`), WAIT_MS);
        waiters.push(w);
      });
    },
  };
}

/** TLS to the TCP listener, trusting only `ca` (or the system roots when undefined), checking that the certificate names 127.0.0.1. */
function connectTls(port: number, ca: Buffer | undefined): Promise<SecureLink> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tlsConnect(ca ? { host: '127.0.0.1', port, ca } : { host: '127.0.0.1', port });
    const box = inbox();
    const decoder = new FrameDecoder(CLIENT_MAX_FRAME);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      const err = decoder.push(chunk, (f) => box.push(f));
      if (err) box.end(`malformed bytes from the gate: ${err.message}`);
    });
    void closed.then(() => box.end('connection closed'));
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      socket.on('error', () => undefined); // the close that follows is what the tests observe
      const cert = socket.getPeerCertificate();
      resolve({
        send: (f) => void socket.write(encodeFrame(f, true)),
        next: box.next,
        closed,
        close: () => socket.destroy(),
        peer: { authorized: socket.authorized, subjectCN: commonName(cert) },
      });
    });
  });
}

/** wss to the WS listener, trusting only `ca`. */
function connectWss(port: number, ca: Buffer): Promise<SecureLink> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/`, { ca, maxPayload: CLIENT_MAX_FRAME });
    const box = inbox();
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    void closed.then(() => box.end('connection closed'));
    ws.once('error', reject);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) box.end(`the gate sent a text message: ${data.toString('utf8')}`);
      else box.push(parseFrame(data, CLIENT_MAX_FRAME));
    });
    ws.once('open', () => {
      ws.off('error', reject);
      ws.on('error', () => undefined);
      const socket = (ws as unknown as { _socket: TLSSocket })._socket;
      resolve({
        send: (f) => ws.send(encodeFrame(f, false), { binary: true }),
        next: box.next,
        closed,
        close: () => ws.terminate(),
        peer: { authorized: socket.authorized, subjectCN: commonName(socket.getPeerCertificate()) },
      });
    });
  });
}

/** The certificate's CN as one string (node types it as string | string[]). */
const commonName = (c: { subject?: { CN?: string | string[] } }): string | undefined => {
  const cn = c.subject?.CN;
  return Array.isArray(cn) ? cn.join(',') : cn;
};

const body = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

async function login(link: SecureLink, playerId: string): Promise<WelcomeBody> {
  link.send({ type: FrameType.HELLO, flags: 0, route: 0, seq: 0, body: body({ token: playerId }) });
  const f = await link.next((x) => x.type === FrameType.WELCOME || x.type === FrameType.BYE, `WELCOME for ${playerId}`);
  assert.equal(f.type, FrameType.WELCOME, `login of ${playerId}: ${describeFrame(f)}`);
  return json(f) as WelcomeBody;
}

async function roundTrip(link: SecureLink, route: number, seq: number): Promise<void> {
  link.send({ type: FrameType.REQUEST, flags: 0, route, seq, body: body({ n: seq }) });
  const f = await link.next((x) => x.seq === seq && (x.type === FrameType.RESPONSE || x.type === FrameType.ERROR), `the answer to REQUEST #${seq}`);
  assert.equal(f.type, FrameType.RESPONSE, `REQUEST #${seq} answered with ${describeFrame(f)}`);
  assert.deepEqual(json(f), { n: seq });
}

describe('tls: TCP as TLS and WS as wss', () => {
  let cert: TestCert;
  let h: Harness;
  before(async () => {
    cert = makeSelfSignedCert();
    h = await startGate({ auth: 'none', tlsCert: cert.certPath, tlsKey: cert.keyPath });
  });
  after(async () => {
    await h?.close();
    cert?.remove();
  });

  const connect = (t: TestContext, transport: 'tls' | 'wss'): Promise<SecureLink> =>
    (transport === 'tls' ? connectTls(h.tcpPort, cert.cert) : connectWss(h.wsPort, cert.cert)).then((l) => {
      t.after(() => l.close());
      return l;
    });

  for (const transport of ['tls', 'wss'] as const)
    it(`should log in, answer a request and deliver a push over ${transport}`, async (t) => {
      const link = await connect(t, transport);
      assert.deepEqual(link.peer, { authorized: true, subjectCN: 'localhost' }, 'the client verified the test certificate');
      const playerId = `${transport}-player`;
      const w = await login(link, playerId);
      assert.equal(w.playerId, playerId);
      await roundTrip(link, 1, 1);
      await roundTrip(link, 2, 2);
      const pushed = await api(h, 'POST', '/v1/push', { playerId, route: 9, data: { hi: transport } });
      assert.equal(pushed.status, 200, JSON.stringify(pushed.body));
      assert.equal(pushed.body.status, 'sent');
      const p = await link.next((f) => f.type === FrameType.PUSH, 'the PUSH');
      assert.equal(p.route, 9);
      assert.equal(p.seq, 1);
      assert.deepEqual(json(p), { hi: transport });
    });

  it('should refuse a client that does not trust the certificate, and keep serving', async (t) => {
    await assert.rejects(connectTls(h.tcpPort, undefined).then((l) => l.close()), /self[- ]signed|unable to verify|certificate/i);
    const link = await connect(t, 'tls');
    await login(link, 'after-untrusted');
    await roundTrip(link, 1, 1);
  });

  it('should drop a plain-TCP client on the TLS port without disturbing TLS clients', async (t) => {
    const good = await connect(t, 'tls');
    await login(good, 'steady-tls');
    const goodWs = await connect(t, 'wss');
    await login(goodWs, 'steady-wss');
    await roundTrip(good, 1, 1);

    // Plain framing on the TLS port is not a ClientHello: the TLS layer drops that socket.
    const plain = await connectTcp(h.tcpPort);
    t.after(() => plain.destroy());
    plain.send({ type: FrameType.HELLO, flags: 0, route: 0, seq: 0, body: body({ token: 'plain' }) });
    await withTimeout(plain.closed, WAIT_MS, 'the gate to drop the plain-TCP client on the TLS port');
    assert.equal(plain.frames.length, 0, 'no frame is sent in the clear');

    // Plain ws:// to the wss port never upgrades.
    await assert.rejects(withTimeout(connectWs(h.wsPort).then((c) => c.destroy()), WAIT_MS, 'a plain ws:// connect to fail'));

    // A client that opens TLS-looking garbage and half a handshake, then vanishes.
    const junk = await connectTcp(h.tcpPort);
    junk.sendRaw(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00]));
    await junk.destroy();

    await roundTrip(good, 1, 2);
    await roundTrip(goodWs, 1, 1);
    const stats = await api(h, 'GET', '/v1/stats');
    assert.equal(stats.body.sessions >= 2, true, JSON.stringify(stats.body));
    assert.equal(stats.body.refused, 0, 'non-TLS clients are not counted as refused connections');
  });
});

describe('--max-handshakes: a flood of half-open handshakes', () => {
  const MAX = 20;
  const FLOOD = 60;
  let cert: TestCert;
  let h: Harness;
  before(async () => {
    cert = makeSelfSignedCert();
    h = await startGate({ auth: 'none', tlsCert: cert.certPath, tlsKey: cert.keyPath, maxHandshakes: MAX });
  });
  after(async () => {
    await h?.close();
    cert?.remove();
  });

  const metric = async (name: string): Promise<number> => {
    const text = (await api(h, 'GET', '/metrics')).body as string;
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
    assert.ok(m, `${name} in /metrics`);
    return Number(m[1]);
  };
  /** A raw socket that connects and never starts its handshake; `closed` settles when the gate drops it. */
  const halfOpen = (port: number): Promise<{ socket: Socket; closed: Promise<void> }> =>
    new Promise((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port });
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      socket.on('error', () => undefined);
      socket.once('connect', () => resolve({ socket, closed }));
      socket.once('error', reject);
    });

  it('should refuse sockets past the bound at once, on both listeners, while a logged-in client keeps getting answers', async (t) => {
    const link = await connectTls(h.tcpPort, cert.cert);
    t.after(() => link.close());
    await login(link, 'steady');
    await roundTrip(link, 1, 1);

    const flood = await Promise.all(Array.from({ length: FLOOD }, () => halfOpen(h.tcpPort)));
    t.after(() => flood.forEach((f) => f.socket.destroy()));
    // The gate closes every socket past the bound at once (no handshake timeout to wait out).
    let dropped = 0;
    for (const f of flood) void f.closed.then(() => dropped++);
    await waitFor(`${FLOOD - MAX} sockets past --max-handshakes ${MAX} closed by the gate`, () => dropped >= FLOOD - MAX || null, WAIT_MS);
    assert.equal(await metric('gate_handshakes_pending'), MAX);
    assert.equal(await metric('gate_handshakes_refused_total'), FLOOD - MAX);
    // The bound is shared: the WebSocket listener refuses too while it is reached.
    const ws = await halfOpen(h.wsPort);
    await withTimeout(ws.closed, WAIT_MS, 'the WS listener to refuse a socket while --max-handshakes are pending');
    // The logged-in client never noticed.
    await roundTrip(link, 1, 2);
    assert.equal(dropped, FLOOD - MAX, 'the sockets within the bound stay until their handshake completes or times out');

    // The flood goes away: the bound frees up and new clients get in over both transports.
    for (const f of flood) f.socket.destroy();
    await waitForAsync('pending handshakes back to 0', async () => (await metric('gate_handshakes_pending')) === 0, WAIT_MS);
    const fresh = await connectWss(h.wsPort, cert.cert);
    t.after(() => fresh.close());
    await login(fresh, 'after-flood');
    await roundTrip(fresh, 1, 1);
    assert.equal(await metric('gate_handshakes_pending'), 0, 'a completed upgrade no longer counts');
    assert.equal((await api(h, 'GET', '/v1/stats')).body.refused, 0, 'no connection was refused: only sockets still handshaking');
  });
});

describe('--max-handshakes without TLS: sockets before their WebSocket upgrade', () => {
  it('should count a plain WS socket until its upgrade, refuse past the bound, and let upgraded links go from the count', async (t) => {
    const MAX = 3;
    const h = await startGate({ auth: 'none', maxHandshakes: MAX });
    t.after(() => h.close());
    const pending = async (): Promise<number> => {
      const m = /^gate_handshakes_pending(?:\{[^}]*\})? (\S+)$/m.exec((await api(h, 'GET', '/metrics')).body as string);
      assert.ok(m, 'gate_handshakes_pending in /metrics');
      return Number(m[1]);
    };
    const raw = (): Promise<{ socket: Socket; closed: Promise<void> }> =>
      new Promise((resolve, reject) => {
        const socket = netConnect({ host: '127.0.0.1', port: h.wsPort });
        t.after(() => socket.destroy());
        const closed = new Promise<void>((r) => socket.once('close', () => r()));
        socket.on('error', () => undefined);
        socket.once('connect', () => resolve({ socket, closed }));
        socket.once('error', reject);
      });
    const held = [await raw(), await raw(), await raw()];
    await waitForAsync(`${MAX} sockets pending their upgrade`, async () => (await pending()) === MAX, WAIT_MS);
    const past = await raw();
    await withTimeout(past.closed, WAIT_MS, 'the socket past --max-handshakes to be closed at once');
    for (const r of held) r.socket.destroy();
    await waitForAsync('pending back to 0 once the half-open sockets closed', async () => (await pending()) === 0, WAIT_MS);
    // Twice the bound, one after another: each upgrade must free its place, or the fourth is refused.
    for (let i = 0; i < 2 * MAX; i++) {
      const c = await connectWs(h.wsPort);
      t.after(() => c.destroy());
      await c.hello({ token: `ws-${i}` });
    }
    assert.equal(await pending(), 0, 'upgraded links no longer count');
  });
});

describe('tls: bad certificate options on the command line', { concurrency: 4 }, () => {
  let cert: TestCert;
  let other: TestCert;
  before(() => {
    cert = makeSelfSignedCert();
    other = makeSelfSignedCert();
    writeFileSync(join(cert.dir, 'junk.pem'), 'this is not a certificate\n');
  });
  after(() => {
    cert?.remove();
    other?.remove();
  });

  const LOOPBACK = ['--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0'];
  const cases: { name: string; args: () => string[]; names: RegExp }[] = [
    { name: 'files that do not exist', args: () => ['--tls-cert', '/nonexistent', '--tls-key', '/nonexistent'], names: /^gate serve: --tls-cert: .*\/nonexistent.*ENOENT/ },
    { name: 'a cert file that is not PEM', args: () => ['--tls-cert', join(cert.dir, 'junk.pem'), '--tls-key', cert.keyPath], names: /^gate serve: --tls-cert: .*not a PEM certificate/ },
    { name: 'a key file that is not PEM', args: () => ['--tls-cert', cert.certPath, '--tls-key', join(cert.dir, 'junk.pem')], names: /^gate serve: --tls-key: .*not an unencrypted PEM private key/ },
    { name: 'a key that does not match the cert', args: () => ['--tls-cert', cert.certPath, '--tls-key', other.keyPath], names: /^gate serve: --tls-key: .*does not match/ },
    { name: '--tls-cert without --tls-key', args: () => ['--tls-cert', cert.certPath], names: /^gate serve: --tls-key: / },
  ];
  for (const c of cases)
    it(`should exit 2 with one line naming the option for ${c.name}`, async (t) => {
      const p = spawnGate(['serve', ...LOOPBACK, ...c.args()]);
      t.after(() => p.kill());
      const exit = await p.waitForExit(EXIT_MS);
      const lines = p.stderr().split('\n').filter((l) => l !== '');
      assert.equal(exit.code, 2, `exit status; stderr: ${p.stderr()}`);
      assert.equal(lines.length, 1, `exactly one stderr line, got: ${JSON.stringify(p.stderr())}`);
      assert.match(lines[0]!, c.names);
      assert.equal(p.lines.filter((l) => l.includes('"listening"')).length, 0, 'never listened');
    });

  it('should start with a good pair given through the environment', async (t) => {
    const p = spawnGate(['serve', ...LOOPBACK], { GATE_TLS_CERT: cert.certPath, GATE_TLS_KEY: cert.keyPath });
    t.after(() => p.kill());
    const listening = await p.waitForLog('listening', EXIT_MS);
    const link = await connectTls(Number(String(listening.tcp).split(':').pop()), cert.cert);
    t.after(() => link.close());
    await login(link, 'cli-tls');
    p.child.kill('SIGTERM');
    const exit = await p.waitForExit(EXIT_MS);
    assert.equal(exit.code, 0, `exit after SIGTERM; stderr: ${p.stderr()}`);
  });
});

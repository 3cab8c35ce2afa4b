/**
 * `gate client` (lib/cli/client.ts, on the client SDK) run in-process: against a tiny fake gate
 * (TCP and WebSocket) for what it sends (HELLO, REQUEST seqs, ACK batching, PONG, resume HELLO,
 * logout BYE), what it prints and its exit statuses; and against a real in-process gate for
 * requests, pushes, `!drop` → resume (a push sent while detached printed exactly once) and kick.
 * Every wait is bounded and names what it waits for.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { deflateRawSync } from 'node:zlib';
import { WebSocketServer, type WebSocket } from 'ws';
import { FLAG_DEFLATE, FrameType, encodeFrame, frame, parseFrame, type Frame } from '../lib/frame.js';
import { FrameDecoder } from '../lib/frameDecoder.js';
import { GateRequestError } from '../lib/client/node.js';
import { formatBody, formatMessage, formatRequestError, parseInputLine, runClientCommand } from '../lib/cli/client.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { waitFor, waitForAsync, withTimeout } from './helpers/wait.js';

const EXIT_WAIT_MS = 30_000;
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');
const bodyJson = (f: Frame): unknown => JSON.parse(f.body.toString('utf8'));

// ---------------------------------------------------------------------------------------------
// Fake gate

interface GateConn {
  /** Frames received from the client, in order (bodies copied). */
  readonly frames: Frame[];
  closed: boolean;
  send(f: Frame): void;
  end(): void;
  destroy(): void;
}

/** Reacts to one frame from the client; the default is {@link defaultGate}. */
type Behaviour = (f: Frame, c: GateConn) => void;

const WELCOME = {
  playerId: 'alice',
  sessionId: 's-1',
  resumeToken: 'rt-1',
  gateId: 'fake',
  heartbeatMs: 60_000,
  resumed: false,
  gap: false,
  lastSeq: 0,
};
const PUSH_BODY = '{"from":"bob","text":"hi"}';

/**
 * WELCOME for HELLO (resumed: true for a resume HELLO); for the first REQUEST on a connection one
 * PUSH (before the answer); RESPONSE echoing each REQUEST; PONG; close after BYE.
 */
function defaultGate(f: Frame, c: GateConn): void {
  switch (f.type) {
    case FrameType.HELLO: {
      const hello = bodyJson(f) as { token?: string; resume?: { lastSeq: number } };
      const resumed = hello.resume ? { resumed: true, lastSeq: hello.resume.lastSeq } : {};
      c.send(frame(FrameType.WELCOME, 0, json({ ...WELCOME, playerId: hello.token ?? 'anon', ...resumed })));
      break;
    }
    case FrameType.REQUEST:
      if (f.seq === 0) break;
      if (c.frames.filter((x) => x.type === FrameType.REQUEST && x.seq !== 0).length === 1)
        c.send(frame(FrameType.PUSH, 1, Buffer.from(PUSH_BODY), 102));
      c.send(frame(FrameType.RESPONSE, f.seq, f.body, f.route));
      break;
    case FrameType.PING:
      c.send(frame(FrameType.PONG, f.seq));
      break;
    case FrameType.BYE:
      c.end();
      break;
    default:
      break;
  }
}

interface FakeGate {
  readonly address: string;
  readonly conns: GateConn[];
  close(): Promise<void>;
}

function makeConn(send: (f: Frame) => void, end: () => void, destroy: () => void): GateConn {
  return { frames: [], closed: false, send, end, destroy };
}

async function startTcpGate(behaviour: Behaviour = defaultGate): Promise<FakeGate> {
  const conns: GateConn[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    const decoder = new FrameDecoder(1024 * 1024);
    const c = makeConn(
      (f) => {
        if (!socket.destroyed) socket.write(encodeFrame(f, true));
      },
      () => socket.end(),
      () => socket.destroy(),
    );
    conns.push(c);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      c.closed = true;
      sockets.delete(socket);
    });
    socket.on('data', (chunk: Buffer) => {
      const err = decoder.push(chunk, (f) => {
        const copy = { ...f, body: Buffer.from(f.body) };
        c.frames.push(copy);
        behaviour(copy, c);
      });
      if (err) socket.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    conns,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function startWsGate(behaviour: Behaviour = defaultGate): Promise<FakeGate> {
  const conns: GateConn[] = [];
  const clients = new Set<WebSocket>();
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws) => {
    clients.add(ws);
    const c = makeConn(
      (f) => ws.send(encodeFrame(f, false), { binary: true }),
      () => ws.close(1000),
      () => ws.terminate(),
    );
    conns.push(c);
    ws.on('error', () => undefined);
    ws.on('close', () => {
      c.closed = true;
      clients.delete(ws);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      assert.ok(isBinary, 'the client sends binary WebSocket messages only');
      const f = parseFrame(Buffer.from(data), 1024 * 1024);
      c.frames.push(f);
      behaviour(f, c);
    });
  });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const { port } = wss.address() as AddressInfo;
  return {
    address: `ws://127.0.0.1:${port}/`,
    conns,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of clients) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// Running the client

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.text += chunk.toString();
    cb();
  }
  get lines(): string[] {
    return this.text.split('\n').filter((l) => l !== '');
  }
}

interface Run {
  stdin: PassThrough;
  stdout: Capture;
  stderr: Capture;
  exit: Promise<number>;
}

/** Every client started, so that one a failed test left running is ended (end of input) at the end. */
const runs: Run[] = [];
async function endRuns(): Promise<void> {
  for (const r of runs) r.stdin.end();
  await Promise.allSettled(runs.map((r) => r.exit));
}

/** Starts the client; writes `lines` to its stdin, then ends stdin unless `keepOpen`. */
function run(argv: string[], lines: string[] = [], keepOpen = false): Run {
  const stdin = new PassThrough();
  const stdout = new Capture();
  const stderr = new Capture();
  const exit = withTimeout(runClientCommand(argv, { stdin, stdout, stderr }), EXIT_WAIT_MS, `gate client ${argv.join(' ')} to exit`);
  for (const l of lines) stdin.write(`${l}\n`);
  if (!keepOpen) stdin.end();
  const r = { stdin, stdout, stderr, exit };
  runs.push(r);
  return r;
}

const conn = (gate: FakeGate, n = 0): Promise<GateConn> => waitFor(`connection #${n + 1} to the fake gate`, () => gate.conns[n]);
const ofType = (c: GateConn, type: number): Frame[] => c.frames.filter((f) => f.type === type);
const typesOf = (c: GateConn): number[] => c.frames.map((f) => f.type);

const gates: FakeGate[] = [];
after(async () => {
  await endRuns();
  await Promise.all(gates.map((g) => g.close()));
});
/** The client has exited once it closed; its logout BYE may still be on the way to the fake gate. */
const byeAt = (c: GateConn): Promise<true> => waitFor('the logout BYE at the fake gate', () => typesOf(c).at(-1) === FrameType.BYE);
async function tcpGate(b?: Behaviour): Promise<FakeGate> {
  const g = await startTcpGate(b);
  gates.push(g);
  return g;
}
async function wsGate(b?: Behaviour): Promise<FakeGate> {
  const g = await startWsGate(b);
  gates.push(g);
  return g;
}

// ---------------------------------------------------------------------------------------------

describe('gate client over TCP', () => {
  it('should print WELCOME, PUSH and RESPONSE and log out at end of input', async () => {
    const gate = await tcpGate();
    const r = run(['--tcp', gate.address, '--token', 'alice'], ['1 {"room":"lobby"}']);
    assert.equal(await r.exit, 0, `exit status (stderr: ${r.stderr.text})`);
    assert.deepEqual(r.stdout.lines, [
      `WELCOME ${JSON.stringify(WELCOME)}`,
      `PUSH route=102 seq=1 ${PUSH_BODY}`,
      'RESPONSE route=1 seq=1 {"room":"lobby"}',
    ]);
    assert.equal(r.stderr.text, '');
    const c = await conn(gate);
    await byeAt(c);
    // Logging out ends the session, so the push's ACK (due 100 ms after it) is not waited for.
    assert.deepEqual(typesOf(c), [FrameType.HELLO, FrameType.REQUEST, FrameType.BYE]);
    assert.deepEqual(bodyJson(c.frames[0]!), { token: 'alice' });
    const req = c.frames[1]!;
    assert.deepEqual([req.route, req.seq, req.body.toString()], [1, 1, '{"room":"lobby"}']);
    assert.deepEqual(bodyJson(c.frames[2]!), { code: 'logout' });
  });

  it('should number requests from 1, send notifies with seq 0 and empty bodies when none is given', async () => {
    const gate = await tcpGate();
    const r = run(['--tcp', gate.address], ['2', '!notify 3 {"by":5}', '6 hello world', '', '4']);
    assert.equal(await r.exit, 0, `exit status (stderr: ${r.stderr.text})`);
    const reqs = ofType(await conn(gate), FrameType.REQUEST).map((f) => [f.route, f.seq, f.body.toString()]);
    assert.deepEqual(reqs, [
      [2, 1, ''],
      [3, 0, '{"by":5}'],
      [6, 2, 'hello world'],
      [4, 3, ''],
    ]);
    const hello = bodyJson((await conn(gate)).frames[0]!) as { token: string };
    assert.match(hello.token, /^player-[0-9a-f]{4}$/, 'default token');
    assert.ok(r.stdout.lines.includes('RESPONSE route=6 seq=2 hello world'), r.stdout.text);
    assert.ok(r.stdout.lines.includes('RESPONSE route=2 seq=1'), r.stdout.text);
  });

  it('should wait at end of input until every request is answered before logging out', async () => {
    let held: (() => void) | undefined;
    const gate = await tcpGate((f, c) => {
      if (f.type === FrameType.REQUEST) held = () => c.send(frame(FrameType.RESPONSE, f.seq, Buffer.from('late'), f.route));
      else defaultGate(f, c);
    });
    const r = run(['--tcp', gate.address], ['7 x']);
    const c = await conn(gate);
    const release = await waitFor('the REQUEST to reach the fake gate', () => held);
    assert.ok(!typesOf(c).includes(FrameType.BYE), 'no BYE while a request is unanswered');
    release();
    assert.equal(await r.exit, 0);
    assert.deepEqual(r.stdout.lines.slice(1), ['RESPONSE route=7 seq=1 late']);
    await byeAt(c);
  });

  it('should ACK pushes within 100 ms with one coalesced ACK while input stays open', async () => {
    const gate = await tcpGate((f, c) => {
      defaultGate(f, c);
      if (f.type === FrameType.HELLO) {
        c.send(frame(FrameType.PUSH, 1, Buffer.from('a'), 101));
        c.send(frame(FrameType.PUSH, 2, Buffer.from('b'), 101));
      }
    });
    const r = run(['--tcp', gate.address], [], true);
    const c = await conn(gate);
    await waitFor('an ACK for push 2', () => ofType(c, FrameType.ACK).some((f) => f.seq === 2), 2000);
    assert.deepEqual(
      ofType(c, FrameType.ACK).map((f) => f.seq),
      [2],
      'one ACK for both pushes',
    );
    r.stdin.end();
    assert.equal(await r.exit, 0);
    assert.deepEqual(r.stdout.lines.slice(1), ['PUSH route=101 seq=1 a', 'PUSH route=101 seq=2 b']);
  });

  it('should ACK at once when 32 pushes are waiting', async () => {
    const gate = await tcpGate((f, c) => {
      defaultGate(f, c);
      if (f.type === FrameType.HELLO) for (let s = 1; s <= 40; s++) c.send(frame(FrameType.PUSH, s, Buffer.from(`p${s}`), 103));
    });
    const r = run(['--tcp', gate.address], [], true);
    const c = await conn(gate);
    await waitFor('an ACK for push 40', () => ofType(c, FrameType.ACK).some((f) => f.seq === 40), 2000);
    assert.deepEqual(
      ofType(c, FrameType.ACK).map((f) => f.seq),
      [32, 40],
    );
    r.stdin.end();
    assert.equal(await r.exit, 0);
  });

  it('should ask for compression, inflate compressed bodies and print binary bodies as hex', async () => {
    const big = 'x'.repeat(2000);
    const gate = await tcpGate((f, c) => {
      defaultGate(f, c);
      if (f.type === FrameType.HELLO) {
        c.send(frame(FrameType.PUSH, 1, deflateRawSync(Buffer.from(big)), 102, FLAG_DEFLATE));
        c.send(frame(FrameType.PUSH, 2, Buffer.from([0, 1, 2, 255]), 102));
        c.send(frame(FrameType.PUSH, 3, Buffer.alloc(100, 0xab), 102));
      }
    });
    const r = run(['--tcp', gate.address, '--compress'], [], true);
    const c = await conn(gate);
    await waitFor('three PUSH lines', () => r.stdout.lines.length >= 4);
    r.stdin.end();
    assert.equal(await r.exit, 0);
    assert.deepEqual(bodyJson(c.frames[0]!), { token: (bodyJson(c.frames[0]!) as { token: string }).token, compress: true });
    assert.deepEqual(r.stdout.lines.slice(1), [
      `PUSH route=102 seq=1 ${big}`,
      'PUSH route=102 seq=2 <4 bytes hex 000102ff>',
      `PUSH route=102 seq=3 <100 bytes hex ${'ab'.repeat(32)}…>`,
    ]);
  });

  it('should print a one-line hint for lines that do not parse and keep going', async () => {
    const gate = await tcpGate();
    const r = run(['--tcp', gate.address], ['hello', '!bogus', '70000 x', '!ping now', '1 ok']);
    assert.equal(await r.exit, 0);
    assert.equal(r.stderr.lines.length, 4, r.stderr.text);
    for (const l of r.stderr.lines) assert.match(l, /^gate client: cannot parse "/);
    const reqs = ofType(await conn(gate), FrameType.REQUEST).map((f) => [f.route, f.seq, f.body.toString()]);
    assert.deepEqual(reqs, [[1, 1, 'ok']]);
  });

  it('should answer gate PINGs with PONG and say that !ping is gone', async () => {
    const gate = await tcpGate((f, c) => {
      defaultGate(f, c);
      if (f.type === FrameType.HELLO) c.send(frame(FrameType.PING, 9));
    });
    const r = run(['--tcp', gate.address], ['!ping'], true);
    const c = await conn(gate);
    await waitFor('PONG seq=9 at the gate', () => ofType(c, FrameType.PONG).some((f) => f.seq === 9));
    await waitFor('the !ping hint', () => r.stderr.lines.length > 0);
    r.stdin.end();
    assert.equal(await r.exit, 0);
    assert.deepEqual(r.stderr.lines, ['gate client: !ping is gone: the client PINGs every heartbeat by itself (--heartbeat-ms)']);
    assert.deepEqual(ofType(c, FrameType.PING), [], 'no PING before the heartbeat (60 s here)');
  });

  it('should PING every --heartbeat-ms', async () => {
    const gate = await tcpGate();
    const r = run(['--tcp', gate.address, '--heartbeat-ms', '20'], [], true);
    const c = await conn(gate);
    await waitFor('three heartbeat PINGs', () => ofType(c, FrameType.PING).length >= 3, 3000);
    assert.deepEqual(
      ofType(c, FrameType.PING)
        .slice(0, 3)
        .map((f) => f.seq),
      [1, 2, 3],
    );
    r.stdin.end();
    assert.equal(await r.exit, 0);
  });

  it('should print the BYE the gate sends and exit 1', async () => {
    const gate = await tcpGate((f, c) => {
      if (f.type === FrameType.REQUEST) {
        c.send(frame(FrameType.BYE, 0, json({ code: 'kicked' })));
        c.end();
      } else defaultGate(f, c);
    });
    const r = run(['--tcp', gate.address], ['1 {}'], true);
    assert.equal(await r.exit, 1);
    assert.equal(r.stdout.lines.at(-1), 'BYE {"code":"kicked"}');
    assert.deepEqual(r.stderr.lines, ['gate client: the gate ended the session: kicked']);
    assert.ok(!typesOf(await conn(gate)).includes(FrameType.BYE), 'no logout after the gate said BYE');
    assert.equal(gate.conns.length, 1, 'no reconnect after a terminal BYE');
  });

  it('should resume when the gate closes the connection and re-send the unanswered request with its seq', async () => {
    const gate = await tcpGate((f, c) => {
      if (f.type === FrameType.REQUEST && gate.conns.length === 1) c.destroy(); // the first link dies under the request
      else defaultGate(f, c);
    });
    const r = run(['--tcp', gate.address, '--reconnect-ms', '20'], ['4 {"by":1}']);
    assert.equal(await r.exit, 0, `exit status (stderr: ${r.stderr.text})`);
    assert.deepEqual(r.stdout.lines.slice(1), [
      '* state detached (the link closed)',
      '* state reconnecting',
      '* state online',
      '* resumed session s-1 (replayed up to seq 0)',
      `PUSH route=102 seq=1 ${PUSH_BODY}`,
      'RESPONSE route=4 seq=1 {"by":1}',
    ]);
    assert.equal(r.stderr.text, '');
    const c2 = await conn(gate, 1);
    assert.deepEqual(bodyJson(c2.frames[0]!), { token: (bodyJson(c2.frames[0]!) as { token: string }).token, resume: { sessionId: 's-1', resumeToken: 'rt-1', lastSeq: 0 } });
    assert.deepEqual(
      ofType(c2, FrameType.REQUEST).map((f) => [f.route, f.seq]),
      [[4, 1]],
      'the same seq again',
    );
  });

  it('should drop the link on !drop, resume, and go on with the next lines', async () => {
    const gate = await tcpGate();
    const r = run(['--tcp', gate.address, '--reconnect-ms', '20'], ['1 a', '!drop', '2 b']);
    assert.equal(await r.exit, 0, `exit status (stderr: ${r.stderr.text})`);
    const c1 = await conn(gate);
    await waitFor('the fake gate to see the first link close', () => c1.closed);
    assert.ok(!typesOf(c1).includes(FrameType.BYE), 'no BYE on !drop');
    const c2 = await conn(gate, 1);
    assert.deepEqual((bodyJson(c2.frames[0]!) as { resume?: unknown }).resume, { sessionId: 's-1', resumeToken: 'rt-1', lastSeq: 0 });
    // Request 1 was written just before the drop: it is re-sent with seq 1, then request 2 follows.
    assert.deepEqual(
      ofType(c2, FrameType.REQUEST).map((f) => [f.route, f.seq]),
      [
        [1, 1],
        [2, 2],
      ],
    );
    assert.deepEqual(r.stdout.lines.slice(1, 6), [
      '* dropping the link without BYE',
      '* state detached (the link closed)',
      '* state reconnecting',
      '* state online',
      '* resumed session s-1 (replayed up to seq 0)',
    ]);
    assert.ok(r.stdout.lines.includes('RESPONSE route=1 seq=1 a') && r.stdout.lines.includes('RESPONSE route=2 seq=2 b'), r.stdout.text);
    await byeAt(c2);
  });

  it('should say the session was lost when a resume is refused, and fail the request it had sent', async () => {
    const gate = await tcpGate((f, c) => {
      if (f.type === FrameType.REQUEST && gate.conns.length === 1) c.destroy();
      else if (f.type === FrameType.HELLO && gate.conns.length > 1) c.send(frame(FrameType.WELCOME, 0, json({ ...WELCOME, sessionId: 's-2', resumeToken: 'rt-2' })));
      else defaultGate(f, c);
    });
    const r = run(['--tcp', gate.address, '--reconnect-ms', '20'], ['1 x']);
    assert.equal(await r.exit, 0, `exit status (stderr: ${r.stderr.text})`);
    assert.deepEqual(r.stdout.lines.slice(1), [
      '* state detached (the link closed)',
      '* state reconnecting',
      '* state online',
      '* session lost (refused): fresh session s-2',
      'ERROR route=1 seq=1 {"code":"SESSION_LOST","message":"the session ended (refused) before request #1 was answered; it may or may not have run"}',
    ]);
    assert.deepEqual(ofType(await conn(gate, 1), FrameType.REQUEST), [], 'a request that may have run is not re-sent on a new session');
  });

  it('should send --resume in HELLO, skip replayed pushes already seen and ACK from lastSeq', async () => {
    const gate = await tcpGate((f, c) => {
      if (f.type === FrameType.HELLO) {
        c.send(frame(FrameType.WELCOME, 0, json({ ...WELCOME, resumed: true, lastSeq: 6 })));
        c.send(frame(FrameType.PUSH, 5, Buffer.from('old'), 102));
        c.send(frame(FrameType.PUSH, 6, Buffer.from('new'), 102));
      } else defaultGate(f, c);
    });
    const r = run(['--tcp', gate.address, '--token', 'alice', '--resume', 's-1:rt-1:5'], [], true);
    const c = await conn(gate);
    await waitFor('an ACK', () => ofType(c, FrameType.ACK).length > 0, 2000);
    r.stdin.end();
    assert.equal(await r.exit, 0);
    assert.deepEqual(bodyJson(c.frames[0]!), { token: 'alice', resume: { sessionId: 's-1', resumeToken: 'rt-1', lastSeq: 5 } });
    assert.deepEqual(
      ofType(c, FrameType.ACK).map((f) => f.seq),
      [6],
    );
    assert.deepEqual(r.stdout.lines.slice(1), ['* resumed session s-1 (replayed up to seq 6)', 'PUSH route=102 seq=6 new']);
  });

  it('should show ERROR frames with their seq and count them as answers', async () => {
    const gate = await tcpGate((f, c) => {
      if (f.type === FrameType.REQUEST)
        c.send(frame(FrameType.ERROR, f.seq, json({ code: 'UPSTREAM_STATUS', message: 'backend answered 409', status: 409 }), f.route));
      else defaultGate(f, c);
    });
    const r = run(['--tcp', gate.address], ['2 {"text":"hi"}']);
    assert.equal(await r.exit, 0);
    assert.deepEqual(r.stdout.lines.slice(1), ['ERROR route=2 seq=1 {"code":"UPSTREAM_STATUS","message":"backend answered 409","status":409}']);
  });
});

describe('gate client options and connection failures', () => {
  const bad: string[][] = [
    ['--bogus'],
    ['--tcp'],
    ['--heartbeat-ms', 'abc'],
    ['--heartbeat-ms', '0'],
    ['--reconnect-ms', '0'],
    ['--reconnect-ms', '60000'],
    ['--token', ''],
    ['--tcp', 'nope'],
    ['--tcp', '127.0.0.1:70000'],
    ['--resume', 'x'],
    ['--resume', 's:rt:-1'],
    ['--tcp', '127.0.0.1:1', '--ws', '127.0.0.1:2'],
    ['--ws', 'http://127.0.0.1:7001/'],
    ['--ws', 'ws://127.0.0.1:7001/', '--tls'],
    ['extra'],
  ];
  for (const argv of bad) {
    it(`should exit 2 with one stderr line for ${argv.join(' ')}`, async () => {
      const r = run(argv);
      assert.equal(await r.exit, 2);
      assert.equal(r.stdout.text, '');
      assert.equal(r.stderr.lines.length, 1, r.stderr.text);
      assert.match(r.stderr.text, /^gate client: \S.*\n$/);
      assert.doesNotMatch(r.stderr.text, /\bat .*:\d+:\d+/, 'no stack trace');
    });
  }

  it('should exit 1 with one line when the connection is refused', async () => {
    const g = await startTcpGate();
    const address = g.address;
    await g.close();
    const r = run(['--tcp', address]);
    assert.equal(await r.exit, 1);
    assert.deepEqual(r.stderr.lines, [`gate client: cannot connect to ${address}: ECONNREFUSED`]);
    const rw = run(['--ws', address]);
    assert.equal(await rw.exit, 1);
    assert.deepEqual(rw.stderr.lines, [`gate client: cannot connect to ws://${address}/: ECONNREFUSED`]);
  });
});

describe('gate client over WebSocket', () => {
  it('should print WELCOME, PUSH and RESPONSE and log out at end of input', async () => {
    const gate = await wsGate();
    const r = run(['--ws', gate.address, '--token', 'bob'], ['1 {"room":"lobby"}', '!notify 2 {"text":"yo"}']);
    assert.equal(await r.exit, 0, `exit status (stderr: ${r.stderr.text})`);
    assert.deepEqual(r.stdout.lines, [
      `WELCOME ${JSON.stringify({ ...WELCOME, playerId: 'bob' })}`,
      `PUSH route=102 seq=1 ${PUSH_BODY}`,
      'RESPONSE route=1 seq=1 {"room":"lobby"}',
    ]);
    const c = await conn(gate);
    await byeAt(c);
    assert.deepEqual(typesOf(c), [FrameType.HELLO, FrameType.REQUEST, FrameType.REQUEST, FrameType.BYE]);
    assert.deepEqual(bodyJson(c.frames[0]!), { token: 'bob' });
    assert.deepEqual([c.frames[2]!.route, c.frames[2]!.seq], [2, 0]);
    assert.deepEqual(bodyJson(c.frames[3]!), { code: 'logout' });
  });

  it('should accept host:port for --ws and print the BYE the gate sends', async () => {
    const gate = await wsGate((f, c) => {
      if (f.type === FrameType.HELLO) {
        c.send(frame(FrameType.BYE, 0, json({ code: 'auth_failed' })));
        c.end();
      }
    });
    const r = run(['--ws', gate.address.replace(/^ws:\/\//, '').replace(/\/$/, '')], [], true);
    assert.equal(await r.exit, 1);
    assert.deepEqual(r.stdout.lines, ['BYE {"code":"auth_failed"}']);
    assert.deepEqual(r.stderr.lines, ['gate client: login refused: auth_failed']);
  });
});

describe('gate client line parsing and frame printing', () => {
  it('should parse input lines', () => {
    assert.deepEqual(parseInputLine('  1   {"a": 1} '), { kind: 'request', route: 1, body: Buffer.from('{"a": 1}'), notify: false });
    assert.deepEqual(parseInputLine('!notify 65535'), { kind: 'request', route: 65535, body: Buffer.alloc(0), notify: true });
    assert.deepEqual(parseInputLine('!quit'), { kind: 'quit' });
    assert.deepEqual(parseInputLine('   '), { kind: 'empty' });
    assert.equal(parseInputLine('65536').kind, 'invalid');
    assert.equal(parseInputLine('!notify').kind, 'invalid');
    assert.equal(parseInputLine('x 1').kind, 'invalid');
  });

  it('should print answers and pushes on one line', () => {
    assert.equal(formatMessage('RESPONSE', 0, 2, Buffer.from('a\nb')), 'RESPONSE route=0 seq=2 a\\nb');
    assert.equal(formatMessage('RESPONSE', 6, 3, new Uint8Array(0)), 'RESPONSE route=6 seq=3');
    assert.equal(formatMessage('PUSH', 5, 1, Buffer.from([0xc3, 0x28])), 'PUSH route=5 seq=1 <2 bytes hex c328>');
    assert.equal(formatBody(new Uint8Array(40).fill(1)), `<40 bytes hex ${'01'.repeat(32)}…>`);
    assert.equal(formatRequestError(3, 4, new GateRequestError('UPSTREAM_TIMEOUT', 'slow')), 'ERROR route=3 seq=4 {"code":"UPSTREAM_TIMEOUT","message":"slow"}');
  });
});

describe('gate client against a real gate', () => {
  let h: Harness;
  before(async () => {
    h = await startGate({ auth: 'none' });
  });
  after(async () => {
    await endRuns();
    await h.close();
  });

  const address = (kind: 'tcp' | 'ws'): string[] => (kind === 'tcp' ? ['--tcp', `127.0.0.1:${h.tcpPort}`] : ['--ws', `ws://127.0.0.1:${h.wsPort}/`]);
  const push = async (playerId: string, data: unknown): Promise<string> => {
    const r = await api(h, 'POST', '/v1/push', { playerId, route: 100, data });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return (r.body as { status: string }).status;
  };
  /** The player's session state at the gate: online, detached, or null when it has none. */
  const gateState = async (playerId: string): Promise<string | null> => {
    const r = await api(h, 'GET', `/v1/players/${playerId}`);
    return r.status === 200 ? (r.body as { state: string }).state : null;
  };
  const until = (what: string, check: () => Promise<boolean>): Promise<void> => waitForAsync(what, check);
  const line = (r: Run, what: string, pred: (l: string) => boolean): Promise<string> => waitFor(what, () => r.stdout.lines.find(pred));

  for (const kind of ['tcp', 'ws'] as const) {
    it(`should answer requests, print pushes and log out at end of input (${kind})`, async () => {
      const player = `real-${kind}-1`;
      const r = run([...address(kind), '--token', player], ['5 hello'], true);
      await line(r, 'the RESPONSE line', (l) => l.startsWith('RESPONSE'));
      assert.equal(await push(player, { n: 1 }), 'sent');
      await line(r, 'the PUSH line', (l) => l.startsWith('PUSH'));
      r.stdin.end();
      assert.equal(await r.exit, 0, `exit status (stderr: ${r.stderr.text})`);
      const welcome = JSON.parse(r.stdout.lines[0]!.replace(/^WELCOME /, '')) as { playerId: string; resumed: boolean };
      assert.deepEqual([welcome.playerId, welcome.resumed], [player, false]);
      assert.deepEqual(r.stdout.lines.slice(1), ['RESPONSE route=5 seq=1 hello', 'PUSH route=100 seq=1 {"n":1}']);
      assert.equal(r.stderr.text, '');
      await until('the gate to end the session after the logout', async () => (await gateState(player)) === null);
    });

    it(`should show !drop, the resume, and a push sent while detached exactly once (${kind})`, async () => {
      const player = `real-${kind}-2`;
      // Reconnect after 0.5–1 s: time enough to push while the session is detached.
      const r = run([...address(kind), '--token', player, '--reconnect-ms', '1000'], [], true);
      const sessionId = (JSON.parse((await line(r, 'WELCOME', (l) => l.startsWith('WELCOME '))).slice(8)) as { sessionId: string }).sessionId;
      assert.equal(await push(player, 'before'), 'sent');
      await line(r, 'push 1', (l) => l.startsWith('PUSH route=100 seq=1 '));
      r.stdin.write('!drop\n');
      await until('the gate to see the session detached', async () => (await gateState(player)) === 'detached');
      assert.equal(await push(player, 'while detached'), 'buffered');
      await line(r, 'push 2, replayed after the resume', (l) => l.startsWith('PUSH route=100 seq=2 '));
      r.stdin.write('5 after\n');
      await line(r, 'the RESPONSE after the resume', (l) => l.startsWith('RESPONSE'));
      r.stdin.end();
      assert.equal(await r.exit, 0, `exit status (stderr: ${r.stderr.text})`);
      assert.deepEqual(r.stdout.lines.slice(1), [
        'PUSH route=100 seq=1 "before"',
        '* dropping the link without BYE',
        '* state detached (the link closed)',
        '* state reconnecting',
        '* state online',
        `* resumed session ${sessionId} (replayed up to seq 2)`,
        'PUSH route=100 seq=2 "while detached"',
        'RESPONSE route=5 seq=1 after',
      ]);
      assert.equal(r.stderr.text, '');
    });
  }

  it('should print BYE kicked and exit 1 when the gate kicks the player', async () => {
    const r = run([...address('tcp'), '--token', 'real-kick'], [], true);
    await line(r, 'WELCOME', (l) => l.startsWith('WELCOME '));
    assert.equal((await api(h, 'POST', '/v1/kick', { playerId: 'real-kick', reason: 'cheating' })).status, 200);
    assert.equal(await r.exit, 1);
    assert.equal(r.stdout.lines.at(-1), 'BYE {"code":"kicked","reason":"cheating"}');
    assert.deepEqual(r.stderr.lines, ['gate client: the gate ended the session: kicked (cheating)']);
  });
});

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startDemoBackend, type DemoBackend } from '../lib/demo/demoBackend.js';
import { GATE_BIN, childEnv } from './helpers/gateProcess.js';

const WAIT_MS = 5_000;

/** Parsed JSON as the tests read it: fields are checked with assert, not trusted. */
type Json = Record<string, unknown>;

interface PushMessage {
  readonly playerId: string;
  readonly route: number;
  readonly data: Json;
}

interface Received extends PushMessage {
  readonly gate: string;
  readonly auth: string | undefined;
}

/** A stand-in for the gate's push API: records every message of every batch, answers like §4. */
class FakeGate extends EventEmitter {
  readonly received: Received[] = [];
  batches = 0;
  private server: Server | null = null;
  api = '';

  constructor(readonly name: string) {
    super();
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { messages: PushMessage[] };
        assert.equal(req.url, '/v1/push/batch');
        this.batches++;
        for (const m of body.messages) this.received.push({ gate: this.name, auth: req.headers.authorization, ...m });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ results: body.messages.map(() => ({ seq: 1, status: 'sent' })) }));
        this.emit('batch');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.api = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  of(playerId: string): Received[] {
    return this.received.filter((r) => r.playerId === playerId);
  }

  /** Resolves when `pick` finds what it wants; fails with what did arrive after WAIT_MS. */
  waitFor<T>(what: string, pick: () => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        const v = pick();
        if (v === undefined) return;
        clearTimeout(timer);
        this.off('batch', check);
        resolve(v);
      };
      const timer = setTimeout(() => {
        this.off('batch', check);
        reject(new Error(`gate ${this.name}: no ${what} within ${WAIT_MS} ms; received ${JSON.stringify(this.received.slice(-20))}`));
      }, WAIT_MS);
      this.on('batch', check);
      check();
    });
  }
}

interface Answer {
  readonly status: number;
  readonly type: string | null;
  readonly bytes: Uint8Array;
  readonly json: Json;
}

async function call(base: string, method: string, path: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(base + path, { method, body: body as BodyInit | undefined, headers });
  const bytes = new Uint8Array(await res.arrayBuffer());
  const type = res.headers.get('content-type');
  const json = type === 'application/json' ? (JSON.parse(Buffer.from(bytes).toString('utf8')) as Json) : {};
  return { status: res.status, type, bytes, json };
}

let seq = 0;
const rpc = (base: string, route: number, playerId: string, body: string | Uint8Array = '', gateId = 'g1'): Promise<Answer> =>
  call(base, 'POST', `/rpc/${route}`, body, {
    'content-type': 'application/octet-stream',
    'x-player-id': playerId,
    'x-session-id': `s-${playerId}`,
    'x-gate-id': gateId,
    'x-request-id': `s-${playerId}.${++seq}`,
  });

const json = (v: unknown): string => JSON.stringify(v);

describe('demo backend', () => {
  const g1 = new FakeGate('g1');
  const logLines: Json[] = [];
  let backend: DemoBackend;
  let base: string;

  before(async () => {
    await g1.start();
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) logLines.push(JSON.parse(line) as Json);
        cb();
      },
    });
    backend = await startDemoBackend({ host: '127.0.0.1', port: 0, apiKey: 'secret', logger: pino({ level: 'debug' }, sink) });
    base = backend.url;
    const put = await call(base, 'PUT', '/gates/g1', json({ gateId: 'g1', tcp: null, ws: null, api: g1.api, startedAt: Date.now(), sessions: 0 }));
    assert.equal(put.status, 200);
  });

  after(async () => {
    await backend.close();
    await g1.stop();
  });

  it('should name the player after a valid token on /connect', async () => {
    const r = await call(base, 'POST', '/connect', json({ token: 'alice_1.x-y', gateId: 'g1', sessionId: 's', remoteAddress: '127.0.0.1' }));
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { playerId: 'alice_1.x-y' });
  });

  it('should refuse bad tokens on /connect with 401', async () => {
    for (const token of ['', 'a'.repeat(65), 'has space', 'ümlaut', 42, null]) {
      const r = await call(base, 'POST', '/connect', json({ token }));
      assert.equal(r.status, 401, `token ${json(token)}`);
      assert.equal(r.json.error, 'unauthorized');
    }
    assert.equal((await call(base, 'POST', '/connect', json({}))).status, 401);
  });

  it('should answer join with the room state and push joined to the others only', async () => {
    const a = await rpc(base, 1, 'ann', json({ room: 'lobby' }));
    assert.equal(a.status, 200);
    assert.deepEqual(a.json, { room: 'lobby', members: ['ann'], counter: 0 });
    const b = await rpc(base, 1, 'ben', json({ room: 'lobby' }));
    assert.deepEqual(b.json, { room: 'lobby', members: ['ann', 'ben'], counter: 0 });

    const got = await g1.waitFor('joined push for ann', () => g1.of('ann')[0]);
    // ann's first push is ben's arrival: her own join pushed nothing
    assert.deepEqual(got, { gate: 'g1', auth: 'Bearer secret', playerId: 'ann', route: 101, data: { event: 'joined', playerId: 'ben', room: 'lobby' } });
    assert.deepEqual(g1.of('ben'), []);
  });

  it('should push chat to every member of the room including the sender', async () => {
    const before = Date.now();
    const r = await rpc(base, 2, 'ben', json({ text: 'hi all' }));
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { ok: true });
    const chats = await g1.waitFor('chat pushes for ann and ben', () => {
      const c = g1.received.filter((m) => m.route === 102 && m.data.text === 'hi all');
      return c.length >= 2 ? c : undefined;
    });
    assert.deepEqual(chats.map((c) => c.playerId).sort(), ['ann', 'ben']);
    for (const c of chats) {
      assert.equal(c.data.from, 'ben');
      assert.ok(typeof c.data.at === 'number' && c.data.at >= before, 'at is the send time in ms');
    }
  });

  it('should keep the order of a burst of pushes', async () => {
    await Promise.all([rpc(base, 1, 'ord1', json({ room: 'order' })), rpc(base, 1, 'ord2', json({ room: 'order' }))]);
    const texts = Array.from({ length: 60 }, (_, i) => `m${i}`);
    for (const text of texts) assert.equal((await rpc(base, 2, 'ord1', json({ text }))).status, 200);
    const got = await g1.waitFor('60 chats for ord2', () => {
      const c = g1.of('ord2').filter((m) => m.route === 102);
      return c.length >= texts.length ? c : undefined;
    });
    assert.deepEqual(
      got.map((m) => m.data.text),
      texts,
    );
  });

  it('should refuse chat before join with 409 not_in_room', async () => {
    const r = await rpc(base, 2, 'loner', json({ text: 'anyone?' }));
    assert.equal(r.status, 409);
    assert.equal(r.json.error, 'not_in_room');
  });

  it('should count incr in the room and push the counter to every member', async () => {
    await rpc(base, 1, 'cat', json({ room: 'counting' }));
    await rpc(base, 1, 'dan', json({ room: 'counting' }));
    assert.deepEqual((await rpc(base, 3, 'cat')).json, { counter: 1 });
    assert.deepEqual((await rpc(base, 3, 'dan', json({ by: 5 }))).json, { counter: 6 });
    const last = await g1.waitFor('counter 6 push for cat', () => g1.of('cat').find((m) => m.route === 103 && m.data.counter === 6));
    assert.deepEqual(last.data, { counter: 6, by: 'dan' });
    assert.deepEqual((await rpc(base, 1, 'eve', json({ room: 'counting' }))).json, { room: 'counting', members: ['cat', 'dan', 'eve'], counter: 6 });
    assert.equal((await rpc(base, 3, 'dan', json({ by: 1.5 }))).status, 400);
  });

  it('should push left to the others on leave', async () => {
    await rpc(base, 1, 'fay', json({ room: 'exit' }));
    await rpc(base, 1, 'gus', json({ room: 'exit' }));
    const r = await rpc(base, 4, 'gus');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { ok: true });
    const left = await g1.waitFor('left push for fay', () => g1.of('fay').find((m) => m.route === 104));
    assert.deepEqual(left.data, { event: 'left', playerId: 'gus' });
    assert.deepEqual((await rpc(base, 1, 'hal', json({ room: 'exit' }))).json.members, ['fay', 'hal']);
  });

  it('should answer 404 unknown_route for a route the game does not have', async () => {
    for (const route of [0, 7, 999, 65535, 70000]) {
      const r = await rpc(base, route, 'ann', '{}');
      assert.equal(r.status, 404, `route ${route}`);
      assert.equal(r.json.error, 'unknown_route');
    }
  });

  it('should answer 400 bad_request with a message for bad JSON', async () => {
    for (const body of ['{nope', '[1,2]', '"lobby"', new Uint8Array([0xff, 0xfe])]) {
      const r = await rpc(base, 1, 'ann', body);
      assert.equal(r.status, 400);
      assert.equal(r.json.error, 'bad_request');
      assert.equal(typeof r.json.message, 'string');
    }
    assert.equal((await call(base, 'POST', '/events', '{oops')).status, 400);
    assert.equal((await call(base, 'POST', '/connect', 'not json')).status, 400);
  });

  it('should echo the request bytes unchanged', async () => {
    const bytes = new Uint8Array([0, 1, 2, 0xff, 0xfe, 0x7b, 0x0a, 0x80]);
    const r = await rpc(base, 5, 'ann', bytes);
    assert.equal(r.status, 200);
    assert.equal(r.type, 'application/octet-stream');
    assert.deepEqual(r.bytes, bytes);
    const empty = await rpc(base, 5, 'ann', new Uint8Array(0));
    assert.equal(empty.status, 200);
    assert.equal(empty.bytes.length, 0);
  });

  it('should answer whoami from the gate headers', async () => {
    const r = await rpc(base, 6, 'ivy');
    assert.deepEqual(r.json, { playerId: 'ivy', sessionId: 's-ivy', gateId: 'g1' });
  });

  it('should remove an offline player from its room and tell the others', async () => {
    await rpc(base, 1, 'jon', json({ room: 'gone' }));
    await rpc(base, 1, 'kim', json({ room: 'gone' }));
    const ev = await call(base, 'POST', '/events', json([
      { type: 'online', playerId: 'kim', sessionId: 's-kim', gateId: 'g1', at: Date.now() },
      { type: 'offline', playerId: 'kim', sessionId: 's-kim', gateId: 'g1', reason: 'logout', at: Date.now() },
    ]));
    assert.equal(ev.status, 200);
    const left = await g1.waitFor('left push for jon', () => g1.of('jon').find((m) => m.route === 104));
    assert.deepEqual(left.data, { event: 'left', playerId: 'kim' });
    assert.deepEqual((await rpc(base, 1, 'lia', json({ room: 'gone' }))).json.members, ['jon', 'lia']);
  });

  it('should ignore an offline event for a session already replaced', async () => {
    await rpc(base, 1, 'max', json({ room: 'stay' }));
    const ev = await call(base, 'POST', '/events', json([{ type: 'offline', playerId: 'max', sessionId: 'an-old-session', gateId: 'g1', at: 1 }]));
    assert.equal(ev.status, 200);
    assert.deepEqual((await rpc(base, 1, 'ned', json({ room: 'stay' }))).json.members, ['max', 'ned']);
  });

  it('should send each push to the gate that holds the player', async () => {
    const g2 = new FakeGate('g2');
    await g2.start();
    try {
      assert.equal((await call(base, 'PUT', '/gates/g2', json({ gateId: 'g2', api: g2.api, startedAt: 0, sessions: 0 }))).status, 200);
      await rpc(base, 1, 'on1', json({ room: 'split' }), 'g1');
      await rpc(base, 1, 'on2', json({ room: 'split' }), 'g2');
      await rpc(base, 2, 'on2', json({ text: 'across' }), 'g2');
      const at1 = await g1.waitFor('chat for on1', () => g1.of('on1').find((m) => m.route === 102));
      const at2 = await g2.waitFor('chat for on2', () => g2.of('on2').find((m) => m.route === 102));
      assert.equal(at1.data.text, 'across');
      assert.equal(at2.data.text, 'across');
      assert.deepEqual(g1.of('on2'), []);
      assert.deepEqual(g2.of('on1'), []);
      assert.deepEqual(g2.received.map((m) => m.playerId), ['on2'], 'g2 got only its own player');
    } finally {
      assert.equal((await call(base, 'DELETE', '/gates/g2')).status, 200);
      await g2.stop();
    }
  });

  it('should log a push that fails and keep serving', async () => {
    const dead = new FakeGate('dead');
    await dead.start();
    const api = dead.api;
    await dead.stop(); // nothing listens there now
    await call(base, 'PUT', '/gates/g9', json({ gateId: 'g9', api, startedAt: 0, sessions: 0 }));
    try {
      await rpc(base, 1, 'pam', json({ room: 'void' }), 'g9');
      assert.equal((await rpc(base, 3, 'pam', '', 'g9')).status, 200);
      await new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + WAIT_MS;
        const poll = (): void => {
          if (logLines.some((l) => l.msg === 'demo backend push failed' && l.gateId === 'g9')) return resolve();
          if (Date.now() > deadline) return reject(new Error(`no "push failed" log within ${WAIT_MS} ms: ${json(logLines.slice(-5))}`));
          setTimeout(poll, 10);
        };
        poll();
      });
      assert.equal((await rpc(base, 6, 'pam', '', 'g9')).status, 200);
    } finally {
      await call(base, 'DELETE', '/gates/g9');
    }
  });

  it('should answer 413 to a body over 1 MiB', async () => {
    const r = await rpc(base, 5, 'ann', new Uint8Array(1024 * 1024 + 1));
    assert.equal(r.status, 413);
    assert.equal(r.json.error, 'payload_too_large');
    assert.equal((await rpc(base, 5, 'ann', new Uint8Array(1024 * 1024))).status, 200);
  });

  it('should answer 404 for an unknown path and 400 for a bad gate registration', async () => {
    assert.equal((await call(base, 'GET', '/nope')).status, 404);
    assert.equal((await call(base, 'GET', '/rpc/1')).status, 405);
    assert.equal((await call(base, 'PUT', '/gates/gx', json({ api: 'nowhere' }))).status, 400);
  });
});

describe('gate demo-backend command', () => {
  // Through the CLI, with an IPC channel: the command ends with this process however it ends.
  const script = (args: string[]): ReturnType<typeof spawn> =>
    spawn(process.execPath, [GATE_BIN, 'demo-backend', ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: childEnv({}) });

  const finish = (child: ReturnType<typeof spawn>): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`command did not exit within ${WAIT_MS} ms; stdout ${stdout} stderr ${stderr}`));
      }, WAIT_MS);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });

  it('should log its url, serve, and exit 0 on SIGTERM', async () => {
    const child = script(['--port', '0', '--host', '127.0.0.1']);
    const done = finish(child);
    const line = await new Promise<Json>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`no listening line within ${WAIT_MS} ms: ${buf}`)), WAIT_MS);
      child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        resolve(JSON.parse(buf.slice(0, nl)) as Json);
      });
    });
    assert.equal(line.msg, 'demo backend listening');
    const url = String(line.url);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await call(url, 'POST', '/rpc/5', 'ping');
    assert.equal(Buffer.from(r.bytes).toString('utf8'), 'ping');
    child.kill('SIGTERM');
    const { code } = await done;
    assert.equal(code, 0);
  });

  it('should exit 2 with one line on a bad option', async () => {
    for (const args of [['--port', 'abc'], ['--port', '70000'], ['--bogus']]) {
      const { code, stderr } = await finish(script(args));
      assert.equal(code, 2, `args ${args.join(' ')}`);
      assert.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`);
      assert.match(stderr, /^gate demo-backend: /);
    }
  });
});

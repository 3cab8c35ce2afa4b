/**
 * The `gate` CLI as a user runs it (CONTRACT §1): bad options exit 2 with one line naming the
 * option; flags beat environment beat file; a port in use exits 1 with one line; `gate serve`
 * alone serves the embedded demo game; `gate demo-backend` runs on its own.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveOptions } from '../lib/cli/serveOptions.js';
import { FrameType, type Frame } from '../lib/frame.js';
import { spawnGate, portOf, type GateProcess } from './helpers/gateProcess.js';
import { connectTcp, connectWs, json, type TestClient } from './helpers/testClient.js';

const WAIT_MS = 5_000;
/** Bound on a CLI run that should exit by itself, ms (node start-up included). */
const EXIT_MS = 30_000;
/** Listeners on free loopback ports, so a gate that wrongly starts binds nothing shared. */
const LOOPBACK = ['--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0'];

/** A temp dir for config files, removed when the test ends. */
function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'gate-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function start(t: TestContext, args: string[], env: Record<string, string> = {}): GateProcess {
  const p = spawnGate(args, env);
  t.after(() => p.kill());
  return p;
}

/** Runs a command expected to exit by itself; resolves with its status and stderr lines. */
async function run(t: TestContext, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  const p = start(t, args, env);
  const exit = await p.waitForExit(EXIT_MS);
  const stderr = p.stderr();
  return { code: exit.code, lines: stderr.split('\n').filter((l) => l !== ''), stderr };
}

/** Stops a running gate with SIGTERM and checks it exits 0. */
async function stop(p: GateProcess): Promise<void> {
  p.child.kill('SIGTERM');
  const exit = await p.waitForExit(EXIT_MS);
  assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM; stderr: ${p.stderr()}`);
}

async function hello(t: TestContext, c: TestClient, token: string): Promise<TestClient> {
  t.after(() => c.destroy());
  await c.hello({ token });
  return c;
}

describe('cli: bad options', { concurrency: 4 }, () => {
  const cases: { name: string; args?: string[]; env?: Record<string, string>; file?: string; names: RegExp }[] = [
    { name: '--heartbeat abc', args: ['--heartbeat', 'abc'], names: /--heartbeat\b/ },
    { name: '--max-frame 12xb', args: ['--max-frame', '12xb'], names: /--max-frame\b/ },
    { name: '--workers -1', args: ['--workers', '-1'], names: /--workers\b/ },
    { name: 'an unknown flag --nope', args: ['--nope'], names: /--nope\b/ },
    { name: '--auth jwt without --jwt-secret', args: ['--auth', 'jwt'], names: /--jwt-secret\b|--auth\b/ },
    { name: '--api 0.0.0.0:0 without --api-key', args: ['--api', '0.0.0.0:0'], names: /--api-key\b|--api\b/ },
    { name: '--tls-cert and --tls-key that do not exist', args: ['--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem'], names: /--tls-(cert|key)\b/ },
    { name: 'a --config file that does not exist', args: ['--config', '/nonexistent/gate.json'], names: /--config\b/ },
    { name: 'a --config file with bad JSON', file: '{"workers": 4,', names: /--config\b/ },
    { name: 'a --config file with a bad value', file: '{"heartbeat": "soon"}', names: /heartbeat/ },
    { name: 'GATE_WORKERS=abc', env: { GATE_WORKERS: 'abc' }, names: /--workers\b|GATE_WORKERS/ },
    { name: '--redis ftp://x (not a redis URL)', args: ['--redis', 'ftp://127.0.0.1:6379'], names: /--redis\b/ },
    { name: '--procs 2 without --redis', args: ['--procs', '2'], names: /--procs\b/ },
    { name: '--otlp not-a-url', args: ['--otlp', 'not-a-url'], names: /--otlp\b/ },
    { name: '--otlp-sample 2', args: ['--otlp', 'http://127.0.0.1:4318', '--otlp-sample', '2'], names: /--otlp-sample\b/ },
    { name: 'GATE_OTLP_SAMPLE=often', env: { GATE_OTLP_SAMPLE: 'often' }, names: /--otlp-sample\b.*GATE_OTLP_SAMPLE/ },
  ];
  const argsOf = (t: TestContext, c: (typeof cases)[number]): string[] => {
    const args = ['serve', ...LOOPBACK, ...(c.args ?? [])]; // a later repeat of a flag wins (--api)
    if (c.file !== undefined) {
      const path = join(tempDir(t), 'gate.json');
      writeFileSync(path, c.file);
      args.push('--config', path);
    }
    return args;
  };
  // Every case through the CLI's own option code, in this process (a node start-up each costs
  // more than the rest of this file); then a few through the real CLI for the process contract.
  for (const c of cases) {
    it(`should refuse ${c.name} with one line naming the option (status 2)`, (t) => {
      const r = serveOptions(argsOf(t, c).slice(1), { ...c.env });
      assert.equal(r.ok, false, 'refused');
      if (r.ok) return;
      assert.equal(r.status, 2);
      assert.ok(r.line !== null && !r.line.includes('\n'), `one line: ${JSON.stringify(r.line)}`);
      assert.match(r.line, /^gate serve: /);
      assert.match(r.line, c.names);
    });
  }
  for (const name of ['an unknown flag --nope', 'a --config file with bad JSON', 'GATE_WORKERS=abc', '--otlp-sample 2']) {
    const c = cases.find((x) => x.name === name)!;
    it(`should exit 2 with exactly that one stderr line, no stack trace, for ${c.name} (the real CLI)`, async (t) => {
      const args = argsOf(t, c);
      const expected = serveOptions(args.slice(1), { ...c.env });
      const r = await run(t, args, c.env);
      assert.equal(r.code, 2, `exit status; stderr: ${r.stderr}`);
      assert.deepEqual(r.lines, [expected.ok ? '(accepted?)' : expected.line], `exactly one stderr line, got: ${JSON.stringify(r.stderr)}`);
      assert.doesNotMatch(r.stderr, /^\s+at\s/m, 'no stack trace');
    });
  }
});

describe('cli: option precedence and errors at start', { concurrency: 3 }, () => {
  it('should take flags over environment over file over defaults', async (t) => {
    const path = join(tempDir(t), 'gate.json');
    writeFileSync(path, JSON.stringify({ gateId: 'from-file', heartbeat: '20s', tcp: '127.0.0.1:0', ws: '127.0.0.1:0', api: '127.0.0.1:0' }));
    const check = async (args: string[], env: Record<string, string>, gateId: string, heartbeatMs: number): Promise<void> => {
      const p = start(t, ['serve', '--config', path, ...args], env);
      const listening = await p.waitForLog('listening', EXIT_MS);
      assert.equal(listening.gateId, gateId, 'gateId in the listening line');
      const stats = (await (await fetch(`http://${String(listening.api)}/v1/stats`)).json()) as { gateId?: string };
      assert.equal(stats.gateId, gateId, 'gateId in /v1/stats');
      const c = await connectTcp(portOf(listening.tcp));
      t.after(() => c.destroy());
      const w = await c.hello({ token: 'me' });
      assert.equal(w.gateId, gateId, 'gateId in WELCOME');
      assert.equal(w.heartbeatMs, heartbeatMs, 'heartbeatMs in WELCOME');
      await stop(p);
    };
    await Promise.all([
      check([], {}, 'from-file', 20_000), // file over defaults
      check([], { GATE_GATE_ID: 'from-env' }, 'from-env', 20_000), // env over file
      check(['--gate-id', 'from-flag'], { GATE_GATE_ID: 'from-env', GATE_HEARTBEAT: '25s' }, 'from-flag', 25_000), // flag over env
    ]);
  });

  it('should exit 1 with one stderr line when a port is in use', async (t) => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as AddressInfo).port;
    const r = await run(t, ['serve', '--tcp', `127.0.0.1:${port}`, '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0']);
    assert.equal(r.code, 1, `exit status; stderr: ${r.stderr}`);
    assert.equal(r.lines.length, 1, `exactly one stderr line, got: ${JSON.stringify(r.stderr)}`);
    assert.match(r.lines[0]!, new RegExp(`${port}`));
    assert.match(r.lines[0]!, /in use/);
    assert.doesNotMatch(r.stderr, /^\s+at\s/m, 'no stack trace');
  });

  it('should say at start-up when it has one CPU and node runs without --single-threaded-gc', async (t) => {
    if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) return t.skip('taskset is not available');
    const p = spawnGate(['serve', '--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0'], {}, ['taskset', '-c', '0']);
    t.after(() => p.kill());
    const hint = await p.waitForLog('one CPU available: start node with --single-threaded-gc for shorter GC pauses (docs/operations.md)', EXIT_MS);
    assert.equal(hint.cpus, 1);
  });
});

describe('cli: embedded demo and demo-backend', { concurrency: 2 }, () => {
  it('should serve the embedded demo game without --upstream: join answers, chat pushes to the other player', async (t) => {
    const p = start(t, ['serve', ...LOOPBACK]);
    const listening = await p.waitForLog('listening', EXIT_MS);
    const a = await hello(t, await connectTcp(portOf(listening.tcp)), 'ann');
    const b = await hello(t, await connectWs(portOf(listening.ws)), 'ben');
    const isResponse = (seq: number) => (f: Frame) => (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR) && f.seq === seq;
    a.request(1, 1, { room: 'r' });
    const joined = await a.next(isResponse(1), WAIT_MS);
    assert.equal(joined.type, FrameType.RESPONSE, `join answered ${String(json(joined))}`);
    assert.equal((json(joined) as { room: string }).room, 'r');
    b.request(1, 1, { room: 'r' });
    assert.equal((json(await b.next(isResponse(1), WAIT_MS)) as { room: string }).room, 'r');
    b.request(2, 2, { text: 'hello ann' });
    assert.equal((await b.next(isResponse(2), WAIT_MS)).type, FrameType.RESPONSE);
    const chat = await a.next((f) => f.type === FrameType.PUSH && f.route === 102, WAIT_MS);
    const msg = json(chat) as { from: string; text: string };
    assert.equal(msg.from, 'ben');
    assert.equal(msg.text, 'hello ann');
    await stop(p);
  });

  it('should run demo-backend --port 0 and log its listening line', async (t) => {
    const p = start(t, ['demo-backend', '--port', '0']);
    const line = await p.waitForLog('demo backend listening', EXIT_MS);
    const url = String(line.url);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(portOf(url), 0);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    await stop(p);
  });
});

/**
 * Cluster mode in operation: idle cleanup cluster-wide (a killed gate's sessions too), Redis
 * trouble (503, ERROR CLUSTER_UNAVAILABLE, /readyz, recovery), --procs workers, and start-up
 * without Redis.
 *
 * Every gate is a real process (the CLI); a gate that quietly ran single-node fails, since each
 * member's `listening` line must name its member id.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameType } from '../../lib/frame.js';
import { WAIT_MS, bye, call, fetchPlayer, login, nextPrefix, nextPush, push, resume, startMember, type Member } from '../helpers/cluster.js';
import { startFakeBackend } from '../helpers/fakeBackend.js';
import { portOf, spawnGate } from '../helpers/gateProcess.js';
import { startRedis } from '../helpers/redisServer.js';
import { connectTcp, json, type TestClient } from '../helpers/testClient.js';
import { waitFor, waitForAsync } from '../helpers/wait.js';

describe('cluster mode: idle cleanup is cluster-wide', () => {
  it('should end idle sessions once, on a live gate and on a killed one, and keep a busy one', async (t) => {
    const redis = await startRedis();
    const backend = await startFakeBackend();
    const prefix = nextPrefix('i');
    const extra = ['--idle-timeout', '1s'];
    const [g1, g2] = await Promise.all([startMember('gI1', redis.url, prefix, backend.url, extra), startMember('gI2', redis.url, prefix, backend.url, extra)]);
    const clients: TestClient[] = [];
    t.after(async () => {
      await Promise.all(clients.map((c) => c.destroy()));
      await Promise.all([g1.proc.kill(), g2.proc.kill()]);
      await backend.close();
      await redis.stop();
    });
    const quiet = await login(g1, 'quiet');
    const orphan = await login(g2, 'orphan');
    const busy = await login(g1, 'busy');
    clients.push(quiet.c, orphan.c, busy.c);
    await g2.proc.kill();
    // The busy player keeps sending REQUESTs (every 100 ms, each answered) past twice the timeout.
    let seq = 0;
    while (seq < 25) {
      busy.c.request(1, ++seq, { seq });
      await busy.c.next((f) => f.type === FrameType.RESPONSE && f.seq === seq, WAIT_MS);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Checked before it falls silent: it sent a REQUEST every ~100 ms for over twice the timeout.
    assert.equal(busy.c.isClosed, false, `a session sending REQUESTs is not idle; got ${busy.c.frames.filter((f) => f.type !== FrameType.RESPONSE).map((f) => `${f.type}:${f.body.toString()}`).join(' ')}`);
    assert.equal((await call(g1, 'GET', '/v1/players/busy')).body.state, 'online');
    assert.equal((await bye(quiet.c)).code, 'idle');
    for (const w of [quiet.w, orphan.w]) await waitFor(`offline(idle) for ${w.playerId}`, () => backend.events().some((e) => e.sessionId === w.sessionId && e.type === 'offline'), WAIT_MS);
    for (const w of [quiet.w, orphan.w]) {
      const offline = backend.events().filter((e) => e.sessionId === w.sessionId && e.type === 'offline');
      assert.deepEqual(offline.map((e) => e.reason), ['idle'], `one offline(idle) for ${w.playerId}`);
      assert.equal((await call(g1, 'GET', `/v1/players/${w.playerId}`)).status, 404);
    }
  });
});

describe('cluster mode: Redis trouble is loud and heals by itself', () => {
  it('should answer 503, refuse HELLO with CLUSTER_UNAVAILABLE and keep requests flowing while Redis is down, then recover', async (t) => {
    let redis = await startRedis();
    const backend = await startFakeBackend();
    const m = await startMember('gR', redis.url, nextPrefix('r'), backend.url);
    const clients: TestClient[] = [];
    t.after(async () => {
      await Promise.all(clients.map((c) => c.destroy()));
      await m.proc.kill();
      await backend.close();
      await redis.stop();
    });
    const { c } = await login(m, 'steady');
    clients.push(c);
    assert.equal((await call(m, 'GET', '/readyz')).status, 200);

    await redis.kill();
    await waitForAsync('/readyz to turn 503', async () => (await call(m, 'GET', '/readyz')).status === 503, WAIT_MS);
    const refused = await push(m, 'steady', 'lost?');
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error, 'CLUSTER_UNAVAILABLE');
    // A HELLO gets a clear ERROR and the link closes (try again later).
    const late = await connectTcp(m.tcp);
    clients.push(late);
    late.send({ type: FrameType.HELLO, flags: 0, route: 0, seq: 0, body: Buffer.from(JSON.stringify({ token: 'late' })) });
    const err = await late.next((f) => f.type === FrameType.ERROR, WAIT_MS);
    assert.equal((json(err) as { code: string }).code, 'CLUSTER_UNAVAILABLE');
    await late.closed;
    // The connected client's requests still reach the backend.
    c.request(1, 1, { ping: 1 });
    assert.equal((await c.next((f) => f.type === FrameType.RESPONSE && f.seq === 1, WAIT_MS)).seq, 1);

    redis = await startRedis(redis.port);
    await waitForAsync('/readyz to turn 200 again', async () => (await call(m, 'GET', '/readyz')).status === 200, WAIT_MS);
    // Redis came back empty (no persistence): the old session is gone, so the link was closed to
    // let its client learn that on resume; a new login and pushes work again.
    await c.closed;
    const again = await login(m, 'steady');
    clients.push(again.c);
    assert.deepEqual((await push(m, 'steady', 'stored')).body, { seq: 1, status: 'sent' });
    assert.equal((await nextPush(again.c)).seq, 1);
  });
});

describe('cluster mode: --procs', () => {
  it('should serve from N workers on shared ports, restart a killed one (its sessions taken over at once), and stop on SIGTERM with sessions detached', async (t) => {
    const redis = await startRedis();
    const backend = await startFakeBackend();
    const prefix = nextPrefix('p');
    const clients: TestClient[] = [];
    const proc = spawnGate([
      'serve', '--procs', '2', '--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0', '--auth', 'none', '--upstream', backend.url,
      '--gate-id', 'gP', '--redis', redis.url, '--redis-prefix', prefix,
    ]);
    t.after(async () => {
      await Promise.all(clients.map((c) => c.destroy()));
      await proc.kill();
      await backend.close();
      await redis.stop();
    });
    const l = await proc.waitForLog('listening');
    const m: Member = { name: 'gP', proc, tcp: portOf(l.tcp), ws: portOf(l.ws), api: `http://${String(l.api)}`, member: '' };
    type G = { gateId: string; pid: number; member: string };
    const gates = async (): Promise<G[]> => ((await call(m, 'GET', '/v1/gates')).body.gates as G[]).sort((x, y) => x.gateId.localeCompare(y.gateId));
    await waitForAsync('both workers in /v1/gates', async () => (await gates()).length === 2, WAIT_MS);
    const before = await gates();
    assert.deepEqual(before.map((g) => g.gateId), ['gP.1', 'gP.2']);
    assert.equal(proc.lines.filter((x) => x.includes('"msg":"listening"')).length, 1, 'one listening line for the whole gate');
    // Logins land on both workers (round robin); a session on worker 1 survives its death.
    const logins = await Promise.all(['w1', 'w2', 'w3', 'w4'].map((p) => login(m, p)));
    clients.push(...logins.map((x) => x.c));
    const victim = before[0]!;
    const onVictim = logins.filter((x) => x.w.gateId === victim.gateId);
    assert.ok(onVictim.length > 0, `some login on ${victim.gateId}: ${logins.map((x) => x.w.gateId).join(',')}`);
    process.kill(victim.pid, 'SIGKILL');
    // (A request may land on the dying worker's keep-alive connection: that check just fails.)
    const restarted = async (): Promise<boolean> => (await gates()).some((g) => g.gateId === victim.gateId && g.pid !== victim.pid);
    await waitForAsync(`${victim.gateId} restarted with a new pid`, () => restarted().catch(() => false), 20_000);
    // The restarted worker reaped its predecessor at start: its sessions are detached already.
    for (const { w } of onVictim) {
      assert.equal((await call(m, 'GET', `/v1/players/${w.playerId}`)).body.state, 'detached');
      const r = await resume(m, w, 0);
      clients.push(r.c);
      assert.equal(r.w.resumed, true);
    }
    // Both workers dead at once: node:cluster opens the listening sockets anew for the restarted
    // ones, on the same ports (a `:0` given at start must not become a new port).
    const now = await gates();
    for (const g of now) process.kill(g.pid, 'SIGKILL');
    const allNew = async (): Promise<boolean> => {
      const gs = await gates();
      return gs.length === 2 && gs.every((g) => !now.some((o) => o.pid === g.pid));
    };
    await waitForAsync('both workers restarted, on the same API port', () => allNew().catch(() => false), 30_000);
    const late = await login(m, 'after-both-died');
    clients.push(late.c);
    assert.equal(late.w.resumed, false);
    proc.child.kill('SIGTERM');
    const exit = await proc.waitForExit(WAIT_MS * 3);
    assert.equal(exit.code, 0, proc.stderr());
    const st = await Promise.all(['w1', 'w2', 'w3', 'w4', 'after-both-died'].map(async (p) => (await fetchPlayer(redis.url, prefix, p))));
    assert.deepEqual(st, ['detached', 'detached', 'detached', 'detached', 'detached'], 'cluster shutdown detaches sessions for a resume elsewhere');
  });
});

describe('cluster mode: --procs reloads every worker', () => {
  it('should reload both workers on SIGHUP to the primary, and the other worker after a reload through one worker\'s API', async (t) => {
    const redis = await startRedis();
    const backend = await startFakeBackend();
    const dir = mkdtempSync(join(tmpdir(), 'gate-procs-reload-'));
    const file = join(dir, 'gate.json');
    writeFileSync(file, JSON.stringify({ workers: 8 }));
    const proc = spawnGate([
      'serve', '--procs', '2', '--tcp', '127.0.0.1:0', '--ws', 'off', '--api', '127.0.0.1:0', '--auth', 'none', '--upstream', backend.url,
      '--gate-id', 'gR', '--redis', redis.url, '--redis-prefix', nextPrefix('r'), '--config', file,
    ]);
    t.after(async () => {
      await proc.kill();
      await backend.close();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const l = await proc.waitForLog('listening');
    const reloads = (): { gateId: string; applied: string[] }[] =>
      proc.lines.flatMap((x) => {
        try {
          const v = JSON.parse(x) as { msg?: string; gateId?: string; applied?: string[] };
          return v.msg === 'config reloaded' ? [{ gateId: String(v.gateId), applied: v.applied ?? [] }] : [];
        } catch {
          return [];
        }
      });
    writeFileSync(file, JSON.stringify({ workers: 16 }));
    proc.child.kill('SIGHUP');
    await waitFor('both workers logging "config reloaded"', () => reloads().length === 2, WAIT_MS);
    assert.deepEqual(reloads().map((r) => r.gateId).sort(), ['gR.1', 'gR.2']);
    assert.ok(reloads().every((r) => r.applied.join() === 'workers'), JSON.stringify(reloads()));
    writeFileSync(file, JSON.stringify({ workers: 16, rateLimit: '100/s' }));
    const res = await fetch(`http://${String(l.api)}/v1/admin/reload`, { method: 'POST' });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { applied: string[] }).applied, ['rate-limit']);
    await waitFor('the other worker reloaded too', () => reloads().length === 4, WAIT_MS);
    assert.deepEqual(reloads().slice(2).map((r) => r.gateId).sort(), ['gR.1', 'gR.2']);
  });
});

describe('cluster mode: start-up', () => {
  it('should exit 1 with one line when Redis cannot be reached', async () => {
    const gone = await startRedis();
    await gone.stop();
    const p = spawnGate(['serve', '--tcp', '127.0.0.1:0', '--ws', 'off', '--api', '127.0.0.1:0', '--auth', 'none', '--redis', gone.url]);
    const exit = await p.waitForExit(WAIT_MS * 3);
    assert.equal(exit.code, 1);
    const lines = p.stderr().trim().split('\n');
    assert.equal(lines.length, 1, p.stderr());
    assert.match(lines[0]!, /^gate serve: .*Redis.*127\.0\.0\.1/);
  });
});

/**
 * `gate bench` smoke test: each scenario, run briefly against a gate it spawns itself, exits 0
 * with one sane JSON object on stdout and every answer and push verified (churn: 200 cycles, the
 * gate back to zero and its heap within the limit); bad options exit 2 with one line. Kept short
 * (a few seconds each): the real figures come from `npm run bench` and the full churn run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { GATE_BIN } from './helpers/gateProcess.js';

/** Bound on one bench run, node start-up and gate spawn included. */
const RUN_MS = 9_000;

function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GATE_BIN, 'bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gate bench ${args.join(' ')} still running after ${RUN_MS} ms; stderr: ${stderr}`));
    }, RUN_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function oneJson(stdout: string): Record<string, any> {
  const lines = stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line of JSON expected, got: ${stdout}`);
  return JSON.parse(lines[0]!);
}

describe('gate bench', { concurrency: 3 }, () => {
  it('request over TCP: answers verified, sane figures', async () => {
    const r = await bench(['--scenario', 'request', '--duration', '300ms', '--warmup', '0', '--connections', '4', '--inflight', '4', '--json', '--verify']);
    assert.equal(r.code, 0, r.stderr);
    const j = oneJson(r.stdout);
    assert.equal(j.scenario, 'request');
    assert.equal(j.transport, 'tcp');
    assert.equal(j.connections, 4);
    assert.ok(j.requests > 0 && j.rate > 0, `some requests done: ${r.stdout}`);
    assert.equal(j.errors, 0);
    assert.deepEqual(j.verify, { checked: true, lost: 0, duplicates: 0, outOfOrder: 0, badBodies: 0 });
    assert.ok(j.latencyMs.p50 > 0 && j.latencyMs.p50 <= j.latencyMs.p99 && j.latencyMs.p99 <= j.latencyMs.max);
    assert.equal(j.ok, true);
  });

  it('push over TCP via /v1/push/batch: every push once, in order', async () => {
    const r = await bench(['--scenario', 'push', '--duration', '300ms', '--warmup', '0', '--connections', '4', '--batch', '8', '--json', '--verify']);
    assert.equal(r.code, 0, r.stderr);
    const j = oneJson(r.stdout);
    assert.equal(j.scenario, 'push');
    assert.equal(j.via, 'batch');
    assert.ok(j.pushes > 0 && j.rate > 0, `some pushes received: ${r.stdout}`);
    assert.equal(j.apiErrors, 0);
    assert.deepEqual(j.verify, { checked: true, lost: 0, duplicates: 0, outOfOrder: 0, disconnected: 0 });
  });

  it('push over WebSocket via /v1/broadcast and memory: sane JSON', async () => {
    const p = await bench(['--scenario', 'push', '--transport', 'ws', '--via', 'broadcast', '--duration', '300ms', '--warmup', '0', '--connections', '4', '--json', '--verify']);
    assert.equal(p.code, 0, p.stderr);
    const pj = oneJson(p.stdout);
    assert.equal(pj.transport, 'ws');
    assert.ok(pj.pushes > 0);
    assert.deepEqual(pj.verify, { checked: true, lost: 0, duplicates: 0, outOfOrder: 0, disconnected: 0 });
    const m = await bench(['--scenario', 'memory', '--connections', '50', '--settle', '100ms', '--json']);
    assert.equal(m.code, 0, m.stderr);
    const mj = oneJson(m.stdout);
    assert.equal(mj.scenario, 'memory');
    assert.equal(mj.clients, 50);
    assert.equal(mj.gc, true);
    assert.ok(mj.rssAfterMb > 0 && Number.isFinite(mj.rssPerConnection) && Number.isFinite(mj.heapPerConnection));
  });

  it('churn over TCP: 200 cycles, nothing left behind', async () => {
    const t0 = Date.now();
    const r = await bench(['--scenario', 'churn', '--cycles', '200', '--concurrency', '20', '--json']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const j = oneJson(r.stdout);
    assert.equal(j.scenario, 'churn');
    assert.equal(j.transport, 'tcp');
    assert.equal(j.cycles, 200);
    assert.ok(j.rate > 0, `cycles/s: ${r.stdout}`);
    assert.equal(j.errors, 0, JSON.stringify(j.errorCodes));
    assert.equal(j.statsSettled, true);
    assert.deepEqual(j.stats, { connections: 0, sessions: 0, inflight: 0, queued: 0 });
    assert.equal(j.gc, true);
    assert.ok(Number.isFinite(j.heapBeforeMb) && Number.isFinite(j.heapAfterMb) && j.heapGrowthMb <= j.heapLimitMb, `heap: ${r.stdout}`);
    assert.equal(j.ok, true);
    assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
  });

  it('refuses what it cannot do: exit 2, one line naming the option', async () => {
    for (const args of [
      ['--connections', '25000'],
      ['--scenario', 'nope'],
      ['--tcp', '10.0.0.1:7000'],
      ['--duration', 'soon'],
      ['--cycles', '0', '--scenario', 'churn'],
      ['--concurrency', '30000', '--scenario', 'churn'],
    ]) {
      const r = await bench(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`--${args[0]!.slice(2)}\\b`));
    }
  });
});

describe('gate bench: server node flags', () => {
  it('should give every server a 64 MB young generation, and single-threaded GC only when pinned to one CPU', async () => {
    const { serverNodeFlags, singleCpu } = await import('../lib/cli/bench/common.js');
    assert.deepEqual(serverNodeFlags(null), ['--max-semi-space-size=64']);
    assert.deepEqual(serverNodeFlags('1'), ['--max-semi-space-size=64', '--single-threaded-gc']);
    assert.deepEqual(serverNodeFlags('0-3'), ['--max-semi-space-size=64']);
    assert.deepEqual(serverNodeFlags('0,1'), ['--max-semi-space-size=64']);
    assert.equal(singleCpu(' 7 '), true);
  });
});

/**
 * `gate bench` smoke test: each scenario runs a fixed amount of work (--requests, --pushes,
 * --cycles) against a gate it spawns itself, exits 0 with one sane JSON object on stdout, and
 * every answer and push is verified; bad options exit 2 with one line. Nothing here judges
 * speed: the figures come from `npm run bench`. The time bound is a safety net far above a
 * quiet run (a few seconds), and when it trips it says which processes were still running.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { bench, oneJson } from './helpers/benchRun.js';

async function benchHere(args: string[]): Promise<{ code: number; stderr: string }> {
  const { runBenchCommand } = await import('../lib/cli/bench.js');
  let stderr = '';
  const sink = (f: (s: string) => void): Writable =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        f(chunk.toString());
        cb();
      },
    });
  const code = await runBenchCommand(args, { stdout: sink(() => undefined), stderr: sink((s) => (stderr += s)) });
  return { code, stderr };
}

describe('gate bench', { concurrency: 2 }, () => {
  it('request over TCP: answers verified, sane figures', async () => {
    const r = await bench(['--scenario', 'request', '--requests', '400', '--warmup', '0', '--connections', '4', '--inflight', '4', '--json', '--verify']);
    assert.equal(r.code, 0, r.stderr);
    const j = oneJson(r.stdout);
    assert.equal(j.scenario, 'request');
    assert.equal(j.transport, 'tcp');
    assert.equal(j.connections, 4);
    assert.equal(j.targetRequests, 400);
    assert.equal(j.requests, 400, `exactly the asked requests counted: ${r.stdout}`);
    assert.ok(j.rate > 0 && j.seconds > 0, r.stdout);
    assert.equal(j.errors, 0);
    assert.deepEqual(j.verify, { checked: true, lost: 0, duplicates: 0, outOfOrder: 0, badBodies: 0 });
    assert.ok(j.latencyMs.p50 > 0 && j.latencyMs.p50 <= j.latencyMs.p99 && j.latencyMs.p99 <= j.latencyMs.max);
    assert.equal(j.ok, true);
  });

  it('push over TCP via /v1/push/batch: every push once, in order', async () => {
    const r = await bench(['--scenario', 'push', '--pushes', '64', '--warmup', '0', '--connections', '4', '--batch', '8', '--json', '--verify']);
    assert.equal(r.code, 0, r.stderr);
    const j = oneJson(r.stdout);
    assert.equal(j.scenario, 'push');
    assert.equal(j.via, 'batch');
    assert.equal(j.targetPushes, 64);
    assert.equal(j.pushes, 64, `exactly the asked pushes counted: ${r.stdout}`);
    assert.equal(j.apiErrors, 0);
    assert.deepEqual(j.verify, { checked: true, lost: 0, duplicates: 0, outOfOrder: 0, disconnected: 0 });
  });

  it('push over WebSocket via /v1/broadcast and memory: sane JSON', async () => {
    const p = await bench(['--scenario', 'push', '--transport', 'ws', '--via', 'broadcast', '--pushes', '16', '--warmup', '0', '--connections', '4', '--json', '--verify']);
    assert.equal(p.code, 0, p.stderr);
    const pj = oneJson(p.stdout);
    assert.equal(pj.transport, 'ws');
    assert.equal(pj.pushes, 16);
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
  });

  it('should refuse what it cannot do: exit 2, one line naming the option', async () => {
    // The exit status through the real CLI once; the rest in this process (each refusal comes before anything is spawned).
    const cli = await bench(['--scenario', 'nope']);
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, /^gate bench: --scenario\b[^\n]*\n$/);
    for (const args of [
      ['--connections', '25000'],
      ['--scenario', 'nope'],
      ['--tcp', '10.0.0.1:7000'],
      ['--duration', 'soon'],
      ['--cycles', '0', '--scenario', 'churn'],
      ['--concurrency', '30000', '--scenario', 'churn'],
      ['--requests', '0'],
      ['--requests', '10', '--scenario', 'push'],
      ['--pushes', '10', '--scenario', 'request'],
      ['--requests', '10', '--rate', '100'],
    ]) {
      const r = await benchHere(args);
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

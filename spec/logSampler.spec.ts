/** --log-sample (lib/logSampler.ts): a budget of lines a second, the rest counted and summed up. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { LogSampler } from '../lib/logSampler.js';

function setup(perSecond: number, level = 'info') {
  const lines: { msg: string; sampledOut?: Record<string, number> }[] = [];
  const log = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string }) });
  const counter = new Counter({ name: 'gate_log_sampled_out_total', help: 'h', labelNames: ['msg'] as const, registers: [new Registry()] });
  let now = 0;
  const sampler = new LogSampler(perSecond, log, counter, () => now);
  return { lines, counter, sampler, at: (t: number) => (now = t) };
}

const counted = async (c: Counter<'msg'>): Promise<Record<string, number>> => Object.fromEntries((await c.get()).values.map((v) => [String(v.labels.msg), v.value]));

describe('LogSampler', () => {
  it('should write the first N lines of a second, count the rest, and say so once when the second ends', async () => {
    const { lines, counter, sampler, at } = setup(3);
    for (let i = 0; i < 5; i++) sampler.info({ i }, 'login');
    sampler.info({}, 'session detached');
    assert.deepEqual(lines.map((l) => l.msg), ['login', 'login', 'login']);
    at(1_000);
    sampler.info({}, 'login');
    assert.deepEqual(lines.slice(3).map((l) => l.msg), ['log lines sampled out', 'login']);
    assert.deepEqual(lines[3]!.sampledOut, { login: 2, 'session detached': 1 });
    assert.deepEqual(await counted(counter), { login: 2, 'session detached': 1 });
  });

  it('should say no, and count nothing, when info lines are off (the caller then builds nothing)', async () => {
    const { lines, counter, sampler } = setup(1, 'warn');
    for (let i = 0; i < 5; i++) assert.equal(sampler.on('login'), false);
    sampler.flush();
    assert.equal(lines.length, 0);
    assert.deepEqual(await counted(counter), {});
  });

  it('should write every line with a budget of 0', () => {
    const { lines, sampler } = setup(0);
    for (let i = 0; i < 1_000; i++) sampler.info({}, 'login');
    assert.equal(lines.length, 1_000);
  });

  it('should say what it left out at flush, with no later line to trigger it', async () => {
    const { lines, counter, sampler } = setup(1);
    sampler.info({}, 'login');
    sampler.info({}, 'login');
    sampler.flush();
    assert.deepEqual(lines.map((l) => l.msg), ['login', 'log lines sampled out']);
    assert.deepEqual(await counted(counter), { login: 1 });
  });
});

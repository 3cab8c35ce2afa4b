/**
 * `gate config` (lib/cli/configCommand.ts): the configuration `gate serve` would run with, each
 * value's source, secrets masked; a bad value is one line and exit 2, as `gate serve` says it.
 * In-process through the function the CLI runs, and once through the real CLI.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { configCommand, type EffectiveOption } from '../lib/cli/configCommand.js';
import { spawnGate } from './helpers/gateProcess.js';

const EXIT_MS = 30_000;

function run(argv: string[], env: NodeJS.ProcessEnv = {}): { status: number; out: string; err: string } {
  let out = '';
  let err = '';
  const status = configCommand(argv, env, (s) => (out += s), (s) => (err += s));
  return { status, out, err };
}

describe('gate config', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gate-config-'));
    writeFileSync(join(dir, 'good.json'), JSON.stringify({ idleTimeout: '10m', workers: 32, apiKey: 'file-key-secret', heartbeat: '20s' }));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ idleTimeout: '10x' }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('should give every option its value and source: flag over environment over file over default', () => {
    const r = run(['--config', join(dir, 'good.json'), '--workers', '8', '--json'], { GATE_HEARTBEAT: '30s', GATE_JWT_SECRET: 'env-jwt-secret' });
    assert.equal(r.status, 0, r.err);
    const j = JSON.parse(r.out) as { configFile: string; options: EffectiveOption[] };
    assert.equal(j.configFile, join(dir, 'good.json'));
    const by = new Map(j.options.map((o) => [o.flag, o]));
    assert.deepEqual([by.get('workers')?.value, by.get('workers')?.source], ['8', 'flag'], 'a flag beats the file');
    assert.deepEqual([by.get('heartbeat')?.value, by.get('heartbeat')?.source], ['30s', 'env'], 'the environment beats the file');
    assert.deepEqual([by.get('idle-timeout')?.value, by.get('idle-timeout')?.source], ['10m', 'file']);
    assert.deepEqual([by.get('queue-max')?.value, by.get('queue-max')?.source], ['10000', 'default']);
    assert.equal(by.get('upstream')?.value, null, 'not set and no default');
    assert.equal(by.get('auth')?.value, 'none', 'the default worked out at start-up (no --upstream)');
    assert.deepEqual([by.get('api-key')?.value, by.get('api-key')?.source], ['(set)', 'file']);
    assert.deepEqual([by.get('jwt-secret')?.value, by.get('jwt-secret')?.source], ['(set)', 'env']);
    assert.ok(!r.out.includes('file-key-secret') && !r.out.includes('env-jwt-secret'), 'no secret value printed');
    assert.equal(j.options.length, new Set(j.options.map((o) => o.flag)).size);
  });

  it('should print a table by default, one option a line', () => {
    const r = run(['--max-connections', '500']);
    assert.equal(r.status, 0, r.err);
    assert.match(r.out, /^# the configuration gate serve would run with; config file: none$/m);
    assert.match(r.out, /^--max-connections\s+500\s+flag\s+live$/m);
    assert.match(r.out, /^--log-level\s+info\s+default\s+live$/m);
    assert.match(r.out, /^--upstream\s+\S+\s+\S+\s+restart$/m);
  });

  it('should exit 2 with one line naming the option and its source for a bad value, an unknown key or an unknown flag', () => {
    const bad = run(['--config', join(dir, 'bad.json')]);
    assert.equal(bad.status, 2);
    assert.equal(bad.out, '');
    assert.match(bad.err, /^gate config: --idle-timeout: "10x" is not a duration .*--config file\)\n$/);
    const badEnv = run([], { GATE_WORKERS: 'many' });
    assert.equal(badEnv.status, 2);
    assert.match(badEnv.err, /^gate config: --workers: .*\n$/);
    const unknown = run(['--nope', '1']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.err, /^gate config: unknown option '--nope'\n$/);
  });

  it('should run from the CLI: the table on stdout, exit 0; a bad value one line on stderr, exit 2', async () => {
    const ok = spawnGate(['config', '--workers', '3']);
    const e = await ok.waitForExit(EXIT_MS);
    assert.equal(e.code, 0, ok.stderr());
    assert.ok(ok.lines.some((l) => /^--workers\s+3\s+flag\s+live$/.test(l)), ok.lines.join('\n'));
    const bad = spawnGate(['config', '--config', join(dir, 'bad.json')]);
    const eb = await bad.waitForExit(EXIT_MS);
    assert.equal(eb.code, 2);
    assert.equal(bad.stderr().trim().split('\n').length, 1, bad.stderr());
  });
});

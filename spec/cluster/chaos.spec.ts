/**
 * `gate bench --scenario chaos` as a test: SDK clients with requests and pushes running, links
 * dropped at random, and (cluster mode) --procs workers SIGKILLed while it runs. The run is
 * judged by what it counts, never by its speed: no push lost, duplicated or reordered, no
 * request run twice by the backend, every client back online at the end.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bench, oneJson } from '../helpers/benchRun.js';

describe('gate bench --scenario chaos', { concurrency: 2 }, () => {
  it('cluster: 1 gate x 2 workers (clients resume on the survivor), workers SIGKILLed, links dropped: the four zeros', async () => {
    const r = await bench(['--scenario', 'chaos', '--gates', '1', '--procs', '2', '--kill-gate', '1500ms', '--duration', '4s', '--connections', '12', '--drop-every', '1s', '--json']);
    const j = oneJson(r.stdout);
    assert.equal(j.mode, 'cluster');
    assert.ok(j.kills >= 1, `at least one worker killed: ${r.stdout}`);
    assert.ok(j.drops >= 1 && j.pushes.acked > 0 && j.requests.answered > 0, `traffic ran: ${r.stdout}`);
    assert.deepEqual([j.pushes.lost, j.pushes.duplicated, j.pushes.reordered, j.requests.executedTwice], [0, 0, 0, 0], r.stdout);
    assert.equal(j.settled, true, r.stdout);
    assert.equal(r.code, 0, r.stderr);
  });

  it('single node: link drops only, the same zeros; --kill-gate refused there', async () => {
    const r = await bench(['--scenario', 'chaos', '--single', '--duration', '2s', '--connections', '8', '--drop-every', '500ms', '--json']);
    const j = oneJson(r.stdout);
    assert.equal(j.mode, 'single');
    assert.ok(j.drops >= 1, r.stdout);
    assert.deepEqual([j.pushes.lost, j.pushes.duplicated, j.pushes.reordered, j.requests.executedTwice, j.resumes.failed], [0, 0, 0, 0, 0], r.stdout);
    assert.equal(r.code, 0, r.stderr);
    const refused = await bench(['--scenario', 'chaos', '--single', '--kill-gate', '2s']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^gate bench: --kill-gate\b[^\n]*\n$/);
  });
});

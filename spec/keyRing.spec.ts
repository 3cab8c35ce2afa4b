/**
 * KeyRing (--api-key, --jwt-secret rolled by a reload): the new secret at once, the previous one
 * for --key-grace more. And the JWT check over a rolled ring, and the option table's live set.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { authenticator, jwtKey } from '../lib/auth.js';
import { LIVE_OPTIONS, OPTIONS, fieldOf, testConfig } from '../lib/config.js';
import { KeyRing } from '../lib/keyRing.js';

describe('KeyRing', () => {
  it('should accept the previous secret until the grace ends, and the new one at once', () => {
    let now = 1_000;
    const ring = new KeyRing('a', () => now);
    assert.deepEqual(ring.accepted(), ['a']);
    ring.roll('b', 500);
    assert.deepEqual(ring.accepted(), ['b', 'a']);
    now = 1_499;
    assert.deepEqual(ring.accepted(), ['b', 'a']);
    now = 1_500;
    assert.deepEqual(ring.accepted(), ['b']);
  });

  it('should keep only one previous secret, and change nothing on a roll to the same value', () => {
    let now = 0;
    const ring = new KeyRing('a', () => now);
    ring.roll('b', 100);
    ring.roll('b', 100);
    assert.deepEqual(ring.accepted(), ['b', 'a']);
    ring.roll('c', 100);
    assert.deepEqual(ring.accepted(), ['c', 'b']);
    now = 100;
    assert.deepEqual(ring.accepted(), ['c']);
  });

  it('should say "no key" (null) while a removed key is in its grace, and after', () => {
    let now = 0;
    const ring = new KeyRing('a', () => now);
    ring.roll(null, 10);
    assert.deepEqual(ring.accepted(), [null, 'a']);
    now = 10;
    assert.deepEqual(ring.accepted(), [null]);
  });
});

describe('auth jwt over a rolled --jwt-secret', () => {
  const token = (secret: string, sub: string): Promise<string> =>
    new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).sign(new TextEncoder().encode(secret));
  const ctx = (t: string) => ({ token: t, sessionId: 's', remoteAddress: '127.0.0.1' });

  it('should verify tokens of the previous secret within the grace, and not after', async () => {
    let now = 0;
    const ring = new KeyRing('old-secret', () => now, jwtKey);
    const auth = authenticator('jwt', { backend: null, jwtKeys: () => ring.keys(), gateId: 'g' });
    const old = await token('old-secret', 'p-old');
    assert.deepEqual(await auth(ctx(old)), { ok: true, playerId: 'p-old' });
    ring.roll('new-secret', 1_000);
    assert.deepEqual(await auth(ctx(await token('new-secret', 'p-new'))), { ok: true, playerId: 'p-new' });
    assert.deepEqual(await auth(ctx(old)), { ok: true, playerId: 'p-old' });
    now = 1_000;
    const refused = await auth(ctx(old));
    assert.equal(refused.ok, false);
    assert.match((refused as { reason: string }).reason, /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/);
    const forged = await auth(ctx(await token('someone-else', 'p-x')));
    assert.equal(forged.ok, false);
  });
});

describe('the option table and reloads', () => {
  it('should map every option to a field of the configuration', () => {
    const cfg = testConfig() as unknown as Record<string, unknown>;
    for (const o of OPTIONS) assert.ok(fieldOf(o) in cfg, `--${o.flag} → ${fieldOf(o)}`);
  });

  it('should name only real options as live, and none that rebind or reconnect', () => {
    const flags = new Set(OPTIONS.map((o) => o.flag));
    for (const f of LIVE_OPTIONS) assert.ok(flags.has(f), `--${f} is an option`);
    for (const f of ['tcp', 'ws', 'api', 'upstream', 'redis', 'redis-prefix', 'procs', 'gate-id', 'auth', 'max-frame']) assert.ok(!LIVE_OPTIONS.has(f), `--${f} needs a restart`);
  });
});

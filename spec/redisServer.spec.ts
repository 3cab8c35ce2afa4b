/**
 * The private redis-server the cluster-mode tests start (spec/helpers/redisServer.ts): it
 * answers ioredis on its own port, survives nothing of a previous test, restarts on the same
 * port (Redis trouble tests stop and start it), and is gone after stop().
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis } from './helpers/redisServer.js';

describe('test redis-server', () => {
  it('should serve ioredis on a private port, restart on the same port, and be gone after stop', async (t) => {
    const r = await startRedis();
    t.after(() => r.stop());
    const client = new Redis(r.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    t.after(() => client.disconnect());
    await client.connect();
    assert.equal(await client.ping(), 'PONG');
    assert.equal(await client.dbsize(), 0, 'a fresh server holds nothing');
    assert.equal(await client.config('GET', 'save').then((v) => (v as string[])[1]), '', 'no snapshots');
    await client.set('k', 'v');
    client.disconnect();

    await r.kill(); // a crash: nothing was persisted
    const again = await startRedis(r.port);
    t.after(() => again.stop());
    const c2 = new Redis(again.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    t.after(() => c2.disconnect());
    await c2.connect();
    assert.equal(await c2.get('k'), null, 'a restarted server lost what the crashed one held');
    c2.disconnect();
    await again.stop();
    await assert.rejects(
      new Redis(again.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null }).connect(),
      /ECONNREFUSED|Connection is closed/,
    );
  });
});

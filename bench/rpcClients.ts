// Compares the hot-path HTTP clients behind RpcClient (lib/streams/rpcClient.ts): got (tuned:
// keep-alive agent, no retries/redirects/decompression) against undici's Pool, on 64-byte
// POSTs to a trivial local backend pinned to another core. Usage:
//   node dist/bench/rpcClients.js [seconds=5] [concurrency=64]
import { createHistogram } from 'node:perf_hooks';
import { spawnTrivialBackend } from '../lib/cli/bench/common.js';
import { gotRpcClient, undiciRpcClient, type RpcClient } from '../lib/streams/rpcClient.js';

const seconds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 64);

const call = (client: RpcClient, body: Buffer, headers: Record<string, string>) =>
  new Promise<{ status: number }>((resolve, reject) => {
    client.call({ route: 5, body, headers }, (err, reply) => (err ? reject(err instanceof Error ? err : new Error("rpc call failed", { cause: err })) : resolve(reply!)));
  });

async function measure(client: RpcClient): Promise<{ name: string; rate: number; p50: number; p99: number }> {
  const body = Buffer.alloc(64, 0x61);
  const hist = createHistogram();
  let done = 0;
  let running = true;
  const headers = { 'x-gate-id': 'bench', 'x-player-id': 'p', 'x-session-id': 's', 'x-request-id': 's.1', 'content-type': 'application/octet-stream' };
  const loop = async (): Promise<void> => {
    while (running) {
      const t0 = process.hrtime.bigint();
      const r = await call(client, body, headers);
      if (r.status !== 200) throw new Error(`status ${r.status}`);
      hist.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
      done++;
    }
  };
  // Warm up the sockets first.
  const warm = Date.now() + 1000;
  while (Date.now() < warm) await call(client, body, headers);
  const t0 = process.hrtime.bigint();
  const loops = Array.from({ length: concurrency }, loop);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  running = false;
  await Promise.all(loops);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { name: client.name, rate: Math.round(done / s), p50: hist.percentile(50) / 1e6, p99: hist.percentile(99) / 1e6 };
}

// On core 1 (this process is pinned to core 0 by the caller), ending with this process.
const backend = await spawnTrivialBackend({ cpu: '1' });
try {
  const cfg = { baseUrl: backend.url, connections: concurrency, maxBody: 256 * 1024 };
  for (const make of [gotRpcClient, undiciRpcClient]) {
    const c = make(cfg);
    const r = await measure(c);
    await c.close();
    process.stdout.write(`${r.name.padEnd(8)} ${String(r.rate).padStart(7)} req/s   p50 ${r.p50.toFixed(2)} ms   p99 ${r.p99.toFixed(2)} ms   (concurrency ${concurrency}, ${seconds}s)\n`);
  }
} finally {
  await backend.stop();
}

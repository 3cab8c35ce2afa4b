// The `memory` scenario: log in N idle clients and report what each costs the server, as the
// growth of its resident set (and of its JS heap + external memory) divided by N. A server we
// spawned is preloaded with memProbe.js, so both samples come right after two full GCs; for a
// server we did not start, /metrics (process_resident_memory_bytes, nodejs_heap_size_used_bytes)
// is read instead, without a GC.
import { request } from 'undici';
import { connectMany, promValue, rssBytes, sleep, type BenchClient, type Child, type HostPort, type Transport } from './common.js';

export interface MemorySample {
  rss: number;
  /** JS heap used + external (ArrayBuffers, native buffers); null when unknown. */
  heap: number | null;
  gc: boolean;
}

export interface MemorySource {
  sample(): Promise<MemorySample>;
}

/** A child started with memProbe.js: SIGUSR2 → two GCs and a `@@bench-mem` line; RSS from /proc. */
export function probeSource(child: Child): MemorySource {
  return {
    async sample() {
      const before = child.probes.length;
      child.child.kill('SIGUSR2');
      const deadline = Date.now() + 5_000;
      while (child.probes.length === before && Date.now() < deadline) await sleep(10);
      const p = child.probes[child.probes.length - 1];
      if (child.probes.length === before || !p) throw new Error(`${child.name}: no memory probe answer (was it started with memProbe.js?)`);
      await sleep(50);
      return { rss: rssBytes(child.pid) ?? p.rss!, heap: p.heapUsed! + p.external!, gc: p.gc === 1 };
    },
  };
}

/** A server we did not start: its /metrics. */
export function metricsSource(api: HostPort, apiKey: string | null): MemorySource {
  return {
    async sample() {
      const res = await request(`http://${api.host}:${api.port}/metrics`, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} });
      const text = await res.body.text();
      const rss = promValue(text, 'process_resident_memory_bytes');
      const heap = promValue(text, 'nodejs_heap_size_used_bytes');
      const ext = promValue(text, 'nodejs_external_memory_bytes');
      if (rss === null) throw new Error('/metrics has no process_resident_memory_bytes');
      return { rss, heap: heap === null ? null : heap + (ext ?? 0), gc: false };
    },
  };
}

export interface MemoryRunOptions {
  transport: Transport;
  at: HostPort;
  clients: number;
  source: MemorySource;
  /** Wait before each sample, so buffers and timers settle. */
  settleMs: number;
}

export interface MemoryResult {
  scenario: 'memory';
  transport: Transport;
  clients: number;
  gc: boolean;
  rssBeforeMb: number;
  rssAfterMb: number;
  /** RSS growth per logged-in connection, bytes. */
  rssPerConnection: number;
  /** JS heap + external growth per connection, bytes; null when unknown. */
  heapPerConnection: number | null;
  connectSeconds: number;
}

export async function runMemory(o: MemoryRunOptions): Promise<MemoryResult> {
  await sleep(o.settleMs);
  const before = await o.source.sample();
  const t0 = performance.now();
  let clients: BenchClient[] = [];
  try {
    clients = await connectMany(o.transport, o.at, o.clients);
    const connectSeconds = (performance.now() - t0) / 1000;
    await sleep(o.settleMs);
    const after = await o.source.sample();
    return {
      scenario: 'memory',
      transport: o.transport,
      clients: o.clients,
      gc: before.gc && after.gc,
      rssBeforeMb: Math.round(before.rss / 1048576),
      rssAfterMb: Math.round(after.rss / 1048576),
      rssPerConnection: Math.round((after.rss - before.rss) / o.clients),
      heapPerConnection: before.heap === null || after.heap === null ? null : Math.round((after.heap - before.heap) / o.clients),
      connectSeconds: Math.round(connectSeconds * 100) / 100,
    };
  } finally {
    for (const c of clients) c.close();
  }
}

export function memoryRows(r: MemoryResult): [string, string][] {
  return [
    ['scenario', `memory over ${r.transport}`],
    ['idle logged-in clients', r.clients.toLocaleString('en-US')],
    ['connect + login time', `${r.connectSeconds} s`],
    ['server RSS before / after', `${r.rssBeforeMb} / ${r.rssAfterMb} MB${r.gc ? ' (after full GC)' : ''}`],
    ['RSS per connection', `${(r.rssPerConnection / 1024).toFixed(2)} KB`],
    ['heap + external per connection', r.heapPerConnection === null ? 'n/a' : `${(r.heapPerConnection / 1024).toFixed(2)} KB`],
  ];
}

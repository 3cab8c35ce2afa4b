// `npm run bench`'s cluster section (issue 10, "Measured"): the same gate on the same load,
// single node against cluster mode on a private redis-server, in one run. Per figure: the gate
// process's CPU (utime + stime from /proc, read when the measured phase starts and ends) per
// answered request and per delivered push, the Redis commands each costs (INFO commandstats over
// the same window), and Redis memory per idle logged-in session (used_memory before and after).
import { Redis } from 'ioredis';
import { GateClient, tcpTransport } from '../../client/node.js';
import { connectMany, cpuUs, median, sleep, spawnGate, type Child, type GateChild, type SpawnOptions } from './common.js';
import { runPush, type PushResult } from './push.js';
import { startRedis, type RedisServer } from './redisServer.js';
import { runRequest, type RequestResult } from './request.js';

export interface ClusterSuiteOptions {
  readonly runs: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly requestConnections: number;
  readonly requestInflight: number;
  readonly pushClients: number;
  readonly pushBatch: number;
  /** Clients of the fan-out figure (spread over two gates in cluster mode). */
  readonly fanoutClients: number;
  readonly idleSessions: number;
  readonly server: SpawnOptions;
  readonly backendUrl: string;
  readonly progress: boolean;
  readonly log: (s: string) => void;
}

export interface ClusterFigure {
  readonly figure: string;
  readonly unit: string;
  readonly single: number;
  readonly cluster: number;
  readonly target: string;
  readonly pass: boolean;
}

/** Resume figure: pushes waiting, and how many resumes give the percentiles. */
const RESUME_PENDING = 100;
const RESUME_SAMPLES = 50;

/**
 * One sample: a player logs in on gate A and drops its link; 100 pushes are stored for it; it
 * resumes on gate B. Returns the ms from dialling B to the 100th push.
 */
async function resumeElsewhere(a: GateChild, b: GateChild, player: string): Promise<number> {
  const first = new GateClient({ transport: tcpTransport(a.tcp), token: player, reconnect: false });
  const w = await first.connect();
  first.dropLink(); // a lost network: the session detaches on A
  const api = `http://${a.api.host}:${a.api.port}`;
  for (let t = 0; ; t++) {
    const r = (await (await fetch(`${api}/v1/players/${player}`)).json()) as { state?: string };
    if (r.state === 'detached') break;
    if (t > 500) throw new Error(`${player} never detached`);
    await sleep(10);
  }
  const messages = Array.from({ length: RESUME_PENDING }, (_, n) => ({ playerId: player, route: 1, data: { n } }));
  const res = await fetch(`${api}/v1/push/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages }) });
  if (res.status !== 200) throw new Error(`push batch answered ${res.status}`);
  const t0 = performance.now();
  const second = new GateClient({ transport: tcpTransport(b.tcp), token: player, reconnect: false, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 0 } });
  let got = 0;
  const all = new Promise<void>((resolve) => second.pushes$.subscribe(() => ++got === RESUME_PENDING && resolve()));
  const w2 = await second.connect();
  if (!w2.resumed) throw new Error(`${player}: the resume on the other gate started a fresh session`);
  await all;
  const ms = performance.now() - t0;
  await second.close();
  return ms;
}

/** Redis commands executed so far (INFO commandstats), without the INFO calls themselves. */
async function redisCalls(r: Redis): Promise<number> {
  const info = await r.info('commandstats');
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (m[1] !== 'info') n += Number(m[2]);
  return n;
}

async function usedMemory(r: Redis): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await r.info('memory'))?.[1] ?? NaN);
}

/** Samples the gate's CPU and Redis's command count at the measured phase's edges. */
function sampler(pid: number | undefined, redis: Redis | null): { onMeasure: (e: 'start' | 'end') => void; result(): Promise<{ cpuUs: number; calls: number }> } {
  let cpu0 = NaN;
  let cpu1 = NaN;
  let calls0: Promise<number> = Promise.resolve(0);
  let calls1: Promise<number> = Promise.resolve(0);
  return {
    onMeasure: (e) => {
      if (e === 'start') {
        cpu0 = cpuUs(pid);
        if (redis) calls0 = redisCalls(redis);
      } else {
        cpu1 = cpuUs(pid);
        if (redis) calls1 = redisCalls(redis);
      }
    },
    async result() {
      return { cpuUs: cpu1 - cpu0, calls: (await calls1) - (await calls0) };
    },
  };
}

export async function runClusterSuite(o: ClusterSuiteOptions): Promise<{ figures: ClusterFigure[]; raw: Record<string, unknown> }> {
  const say = (s: string): void => o.log(`${s}\n`);
  const redisServer: RedisServer = await startRedis();
  const redis = new Redis(redisServer.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const children: Child[] = [];
  let prefixes = 0;
  const gate = async (cluster: boolean): Promise<GateChild> => {
    const extra = cluster ? ['--redis', redisServer.url, '--redis-prefix', `bench${++prefixes}:`] : [];
    const g = await spawnGate(o.backendUrl, { ...o.server, extra });
    children.push(g);
    return g;
  };
  const raw: Record<string, unknown> = {};
  const figures: ClusterFigure[] = [];
  try {
    // (1) CPU and Redis commands per request, closed loop.
    const req: Record<'single' | 'cluster', { r: RequestResult; cpuUs: number; calls: number }[]> = { single: [], cluster: [] };
    for (let i = 0; i < o.runs; i++) {
      for (const mode of ['single', 'cluster'] as const) {
        say(`cluster section: request ${i + 1}/${o.runs}, ${mode}…`);
        const g = await gate(mode === 'cluster');
        const s = sampler(g.pid, mode === 'cluster' ? redis : null);
        const r = await runRequest({
          transport: 'tcp', at: g.tcp, connections: o.requestConnections, inflight: o.requestInflight, rate: 0, bodyBytes: 64, route: 5,
          durationMs: o.durationMs, requests: null, warmupMs: o.warmupMs, verify: false, progress: o.progress, log: o.log, serverPid: g.pid, onMeasure: s.onMeasure,
        });
        req[mode].push({ r, ...(await s.result()) });
        await g.stop();
      }
    }
    raw.request = req;
    const perReq = (mode: 'single' | 'cluster'): number => median(req[mode].map((x) => x.cpuUs / x.r.requests));
    const reqRatio = perReq('cluster') / perReq('single');
    figures.push({ figure: `gate CPU per request (${o.requestConnections} conns × ${o.requestInflight} in flight), µs`, unit: 'µs', single: perReq('single'), cluster: perReq('cluster'), target: 'cluster ≤ 2×', pass: reqRatio <= 2 });
    figures.push({ figure: '  requests/s', unit: 'req/s', single: median(req.single.map((x) => x.r.rate)), cluster: median(req.cluster.map((x) => x.r.rate)), target: '(info)', pass: true });
    figures.push({ figure: '  Redis commands per request', unit: 'cmds', single: 0, cluster: median(req.cluster.map((x) => x.calls / x.r.requests)), target: '(info)', pass: true });

    // (2) CPU and Redis commands per delivered push (batches to every client).
    const push: Record<'single' | 'cluster', { r: PushResult; cpuUs: number; calls: number }[]> = { single: [], cluster: [] };
    for (let i = 0; i < o.runs; i++) {
      for (const mode of ['single', 'cluster'] as const) {
        say(`cluster section: push ${i + 1}/${o.runs}, ${mode} (${o.pushClients} clients)…`);
        const g = await gate(mode === 'cluster');
        const s = sampler(g.pid, mode === 'cluster' ? redis : null);
        const r = await runPush({
          transport: 'tcp', at: g.tcp, api: g.api, apiKey: null, clients: o.pushClients, batch: o.pushBatch, via: 'batch', bodyBytes: 16, route: 1,
          durationMs: o.durationMs, pushes: null, warmupMs: o.warmupMs, apiInflight: 4, verify: true, progress: o.progress, log: o.log, serverPid: g.pid, onMeasure: s.onMeasure,
        });
        push[mode].push({ r, ...(await s.result()) });
        await g.stop();
      }
    }
    raw.push = push;
    const perPush = (mode: 'single' | 'cluster'): number => median(push[mode].map((x) => x.cpuUs / x.r.pushes));
    const pushRatio = perPush('cluster') / perPush('single');
    figures.push({ figure: `gate CPU per delivered push (${o.pushClients} TCP clients, batches of ${o.pushBatch}), µs`, unit: 'µs', single: perPush('single'), cluster: perPush('cluster'), target: 'cluster ≤ 2×', pass: pushRatio <= 2 });
    figures.push({ figure: '  pushes/s', unit: 'pushes/s', single: median(push.single.map((x) => x.r.rate)), cluster: median(push.cluster.map((x) => x.r.rate)), target: '(info)', pass: true });
    figures.push({ figure: '  Redis commands per push', unit: 'cmds', single: 0, cluster: median(push.cluster.map((x) => x.calls / x.r.pushes)), target: '(info)', pass: true });
    const lostOrDup = [...push.single, ...push.cluster].filter((x) => x.r.verify && x.r.verify.lost + x.r.verify.duplicates + x.r.verify.outOfOrder > 0).length;
    raw.pushVerifyFailures = lostOrDup;

    // (3) Fan-out to clients spread over two gates, pushes POSTed to the first: gate CPU (both
    // gates) per delivered push, against all of them on one single-node gate.
    const fan: Record<'single' | 'cluster', { r: PushResult; cpuUs: number }[]> = { single: [], cluster: [] };
    for (let i = 0; i < o.runs; i++) {
      for (const mode of ['single', 'cluster'] as const) {
        say(`cluster section: fan-out ${i + 1}/${o.runs}, ${mode} (${o.fanoutClients} clients${mode === 'cluster' ? ' over 2 gates' : ''})…`);
        const fanPrefix = `bench${++prefixes}:`;
        const spawnOne = async (): Promise<GateChild> => {
          const g = await spawnGate(o.backendUrl, { ...o.server, extra: mode === 'cluster' ? ['--redis', redisServer.url, '--redis-prefix', fanPrefix] : [] });
          children.push(g);
          return g;
        };
        const g1 = await spawnOne();
        const g2 = mode === 'cluster' ? await spawnOne() : null;
        const s1 = sampler(g1.pid, null);
        const s2 = sampler(g2?.pid, null);
        const r = await runPush({
          transport: 'tcp', at: g1.tcp, ...(g2 ? { alsoAt: g2.tcp } : {}), api: g1.api, apiKey: null, clients: o.fanoutClients, batch: o.pushBatch, via: 'batch', bodyBytes: 16, route: 1,
          durationMs: o.durationMs, pushes: null, warmupMs: o.warmupMs, apiInflight: 4, verify: true, progress: o.progress, log: o.log, serverPid: g1.pid,
          onMeasure: (e) => (s1.onMeasure(e), s2.onMeasure(e)),
        });
        const cpu = (await s1.result()).cpuUs + (g2 ? (await s2.result()).cpuUs : 0);
        fan[mode].push({ r, cpuUs: cpu });
        await g1.stop();
        await g2?.stop();
      }
    }
    raw.fanout = fan;
    const perFan = (mode: 'single' | 'cluster'): number => median(fan[mode].map((x) => x.cpuUs / x.r.pushes));
    figures.push({ figure: `fan-out to ${o.fanoutClients} TCP clients (cluster: over 2 gates), gate CPU per delivered push, µs`, unit: 'µs', single: perFan('single'), cluster: perFan('cluster'), target: 'cluster ≤ 2×', pass: perFan('cluster') / perFan('single') <= 2 });
    figures.push({ figure: '  pushes/s', unit: 'pushes/s', single: median(fan.single.map((x) => x.r.rate)), cluster: median(fan.cluster.map((x) => x.r.rate)), target: '(info)', pass: true });

    // (4) Resume on another gate with 100 pushes pending: HELLO → the 100th push replayed.
    say(`cluster section: resume on another gate with ${RESUME_PENDING} pushes pending (${RESUME_SAMPLES} resumes)…`);
    const prefix = `bench${++prefixes}:`;
    const spawnMember = async (): Promise<GateChild> => {
      const m = await spawnGate(o.backendUrl, { ...o.server, extra: ['--redis', redisServer.url, '--redis-prefix', prefix] });
      children.push(m);
      return m;
    };
    const [ga, gb] = [await spawnMember(), await spawnMember()];
    const resumeMs: number[] = [];
    for (let i = 0; i < RESUME_SAMPLES; i++) resumeMs.push(await resumeElsewhere(ga, gb, `resume-${i}`));
    await ga.stop();
    await gb.stop();
    raw.resume = resumeMs;
    const sorted = [...resumeMs].sort((a, b) => a - b);
    const pct = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    figures.push({ figure: `resume on another gate with ${RESUME_PENDING} pushes pending, HELLO to the last push, p50 ms`, unit: 'ms', single: NaN, cluster: pct(0.5), target: '(info)', pass: true });
    figures.push({ figure: `  p99 ms (${RESUME_SAMPLES} resumes)`, unit: 'ms', single: NaN, cluster: pct(0.99), target: '(info)', pass: true });

    // (5) Redis memory per idle logged-in session.
    say(`cluster section: Redis memory per idle session (${o.idleSessions} sessions)…`);
    const g = await gate(true);
    const before = await usedMemory(redis);
    const clients = await connectMany('tcp', g.tcp, o.idleSessions);
    await sleep(500); // the logins' scripts (and their events' posting) settle
    const after = await usedMemory(redis);
    for (const c of clients) c.close();
    await g.stop();
    raw.memory = { before, after, sessions: o.idleSessions };
    figures.push({ figure: `Redis memory per idle session (used_memory, ${o.idleSessions} sessions), bytes`, unit: 'bytes', single: 0, cluster: (after - before) / o.idleSessions, target: '≤ 1 KB', pass: (after - before) / o.idleSessions <= 1024 });
  } finally {
    for (const c of children) await c.stop();
    redis.disconnect();
    await redisServer.stop();
  }
  return { figures, raw };
}

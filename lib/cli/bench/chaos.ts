// `gate bench --scenario chaos`: clients built on the SDK (resume on) send requests and take
// pushes while their links drop at random and, in cluster mode, gate processes are SIGKILLed.
// At the end every client is brought back online and checked: pushes lost, duplicated or
// reordered, requests the backend ran twice (it counts every x-request-id). Those four must be 0.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defer } from 'rxjs';
import { GateClient, GateRequestError, tcpTransport, type Transport } from '../../client/node.js';
import { RUN_ID, sleep, spawnGate, type GateChild, type HostPort } from './common.js';
import { startRedis } from './redisServer.js';

export interface ChaosOptions {
  /** Gate processes (each a `gate serve`, with --procs workers in cluster mode). */
  readonly gates: number;
  readonly procs: number;
  /** Cluster mode: a running Redis, or null to start one for the run. Ignored single-node. */
  readonly cluster: boolean;
  readonly redisUrl: string | null;
  readonly clients: number;
  readonly durationMs: number;
  /** SIGKILL one --procs worker this often (the primary restarts it); null = never. */
  readonly killEveryMs: number | null;
  /** Mean time between link drops per client (exponential). */
  readonly dropEveryMs: number;
  readonly requestEveryMs: number;
  readonly progress: boolean;
  readonly log: (s: string) => void;
}

export interface ChaosResult {
  readonly scenario: 'chaos';
  readonly mode: 'cluster' | 'single';
  readonly gates: number;
  readonly procs: number;
  readonly clients: number;
  readonly seconds: number;
  readonly kills: number;
  readonly drops: number;
  readonly requests: { sent: number; answered: number; executedTwice: number; outcomeUnknown: number; errors: Record<string, number> };
  readonly pushes: { acked: number; received: number; lost: number; duplicated: number; reordered: number; refused: number };
  readonly resumes: { welcomes: number; failed: number; gaps: number };
  /** Every client online with every acknowledged push, within the settle bound. */
  readonly settled: boolean;
}

/** How long the end of the run waits for every client to be back online with its pushes, ms. */
const SETTLE_MS = 60_000;
/** Players per push batch, and the pause between batches, ms. */
const PUSH_BATCH = 20;
const PUSH_EVERY_MS = 20;

/** The run's backend: /rpc echoes and counts every x-request-id; the rest answers 204. */
async function countingBackend(): Promise<{ url: string; runs: Map<string, number>; close(): Promise<void> }> {
  const runs = new Map<string, number>();
  const body = (req: IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => resolve(Buffer.concat(parts)));
      req.on('error', reject);
    });
  const server: Server = createServer((req, res) => {
    void body(req).then(
      (b) => {
        if (req.url?.startsWith('/rpc/')) {
          const id = String(req.headers['x-request-id']);
          runs.set(id, (runs.get(id) ?? 0) + 1);
          res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(b);
        } else res.writeHead(204).end();
      },
      () => res.destroy(),
    );
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, runs, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

interface Player {
  readonly client: GateClient;
  readonly id: string;
  /** The pusher's next n for this player (n counts only pushes answered 200). */
  next: number;
  readonly acked: number[];
  readonly received: number[];
  gaps: number;
  failed: number;
}

const expDelay = (mean: number): number => -Math.log(1 - Math.random()) * mean;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

async function api(at: HostPort, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://${at.host}:${at.port}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as unknown) : null };
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const backend = await countingBackend();
    stops.push(() => backend.close());
    let redisUrl = o.redisUrl;
    if (o.cluster && !redisUrl) {
      const r = await startRedis();
      stops.push(() => r.stop());
      redisUrl = r.url;
    }
    const extra = (i: number): string[] => [
      '--gate-id', `chaos${i}`,
      ...(o.cluster && redisUrl ? ['--redis', redisUrl, '--redis-prefix', `chaos-${RUN_ID}:`, '--procs', String(o.procs)] : []),
    ];
    const gates: GateChild[] = [];
    for (let i = 1; i <= o.gates; i++) {
      const g = await spawnGate(backend.url, { cpu: null, extra: extra(i) });
      gates.push(g);
      stops.push(() => g.stop());
    }
    // Each dial goes to a gate picked at random: a resume lands anywhere, as behind a load balancer.
    const transport: Transport = { open: () => defer(() => tcpTransport(pick(gates).tcp).open()) };
    const players: Player[] = [];
    let welcomes = 0;
    for (let i = 0; i < o.clients; i++) {
      const client = new GateClient({ transport, token: `chaos-${i}`, reconnect: { baseMs: 50, maxMs: 1_000 } });
      const p: Player = { client, id: `chaos-${i}`, next: 1, acked: [], received: [], gaps: 0, failed: 0 };
      client.pushes$.subscribe((push) => p.received.push((JSON.parse(new TextDecoder().decode(push.body)) as { n: number }).n));
      client.gap$.subscribe(() => p.gaps++);
      client.events$.subscribe((e) => {
        if (e.type === 'welcome') welcomes++;
        if (e.type === 'session_lost') p.failed++;
      });
      players.push(p);
    }
    stops.push(async () => {
      await Promise.allSettled(players.map((p) => p.client.close()));
    });
    await Promise.all(players.map((p) => p.client.connect()));

    let running = true;
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    /** A pause that ends early when the run stops. */
    const pause = (ms: number): Promise<void> => Promise.race([sleep(ms), stopped]);
    const started = Date.now();
    let sent = 0;
    let answered = 0;
    let outcomeUnknown = 0;
    const errors: Record<string, number> = {};
    let drops = 0;
    let kills = 0;
    let refused = 0;

    const requester = async (p: Player): Promise<void> => {
      for (let k = 1; running; k++) {
        sent++;
        try {
          await p.client.request(1, { p: p.id, k });
          answered++;
        } catch (e) {
          const code = e instanceof GateRequestError ? e.code : 'OTHER';
          if (code === 'OUTCOME_UNKNOWN') outcomeUnknown++;
          errors[code] = (errors[code] ?? 0) + 1;
        }
        await pause(o.requestEveryMs);
      }
    };
    const dropper = async (p: Player): Promise<void> => {
      while (running) {
        await pause(expDelay(o.dropEveryMs));
        if (running && p.client.currentState === 'online') {
          p.client.dropLink();
          drops++;
        }
      }
    };
    const pusher = async (): Promise<void> => {
      while (running) {
        const batch = [...new Set(Array.from({ length: PUSH_BATCH }, () => pick(players)))];
        const messages = batch.map((p) => ({ playerId: p.id, route: 9, data: { n: p.next }, id: `${p.id}-${p.next}` }));
        try {
          const r = await api(pick(gates).api, 'POST', '/v1/push/batch', { messages });
          if (r.status === 200) {
            const results = (r.json as { results: { seq?: number }[] }).results;
            results.forEach((res, i) => {
              if (res.seq === undefined) return; // no session yet (a login in flight): the same n again
              const p = batch[i]!;
              p.acked.push(p.next);
              p.next++;
            });
          } else refused++;
        } catch {
          refused++; // the gate was killed mid-call: nothing acknowledged, the same ids go again
        }
        await pause(PUSH_EVERY_MS);
      }
    };
    const killer = async (): Promise<void> => {
      if (o.killEveryMs === null) return;
      while (running) {
        await pause(o.killEveryMs);
        if (!running) return;
        try {
          const r = await api(pick(gates).api, 'GET', '/v1/gates');
          const members = (r.json as { gates: { pid: number }[] }).gates;
          const victim = pick(members);
          process.kill(victim.pid, 'SIGKILL');
          kills++;
          if (o.progress) o.log(`chaos: killed worker pid ${victim.pid}\n`);
        } catch {
          /* the gate asked was the one restarting: next round */
        }
      }
    };
    const loops = [...players.map(requester), ...players.map(dropper), pusher(), killer()];
    const progress = o.progress ? setInterval(() => o.log(`\rchaos: ${((Date.now() - started) / 1000).toFixed(0)} s, ${answered} answers, ${drops} drops, ${kills} kills   `), 1_000) : null;
    await sleep(o.durationMs);
    running = false;
    stop();
    const seconds = (Date.now() - started) / 1000;
    await Promise.all(loops);
    if (progress) clearInterval(progress);

    // Every client back online, with every acknowledged push (or told of a gap).
    const settleBy = Date.now() + SETTLE_MS;
    const complete = (p: Player): boolean => p.client.currentState === 'online' && (p.gaps > 0 || p.acked.every((n) => p.received.includes(n)));
    while (Date.now() < settleBy && !players.every(complete)) await sleep(100);
    const settled = players.every(complete);

    let lost = 0;
    let duplicated = 0;
    let reordered = 0;
    for (const p of players) {
      const seen = new Set<number>();
      let last = 0;
      for (const n of p.received) {
        if (seen.has(n)) duplicated++;
        else if (n < last) reordered++;
        seen.add(n);
        last = Math.max(last, n);
      }
      if (p.gaps === 0 && p.failed === 0) lost += p.acked.filter((n) => !seen.has(n)).length;
    }
    const executedTwice = [...backend.runs.values()].filter((c) => c > 1).length;
    return {
      scenario: 'chaos',
      mode: o.cluster ? 'cluster' : 'single',
      gates: o.gates,
      procs: o.procs,
      clients: o.clients,
      seconds,
      kills,
      drops,
      requests: { sent, answered, executedTwice, outcomeUnknown, errors },
      pushes: {
        acked: players.reduce((n, p) => n + p.acked.length, 0),
        received: players.reduce((n, p) => n + p.received.length, 0),
        lost,
        duplicated,
        reordered,
        refused,
      },
      resumes: { welcomes, failed: players.reduce((n, p) => n + p.failed, 0), gaps: players.reduce((n, p) => n + p.gaps, 0) },
      settled,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

/** The four zeros, and every client settled. */
export const chaosOk = (r: ChaosResult): boolean =>
  r.settled && r.pushes.lost === 0 && r.pushes.duplicated === 0 && r.pushes.reordered === 0 && r.requests.executedTwice === 0;

export function chaosRows(r: ChaosResult): [string, string][] {
  const errs = Object.entries(r.requests.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  return [
    ['mode', `${r.mode}: ${r.gates} gate(s)${r.mode === 'cluster' ? ` × ${r.procs} worker(s)` : ''}, ${r.clients} SDK clients, ${r.seconds.toFixed(1)} s`],
    ['links dropped / workers killed', `${r.drops} / ${r.kills}`],
    ['pushes acknowledged (200) / received', `${r.pushes.acked} / ${r.pushes.received} (API calls refused or cut: ${r.pushes.refused})`],
    ['pushes lost', String(r.pushes.lost)],
    ['pushes duplicated', String(r.pushes.duplicated)],
    ['pushes reordered', String(r.pushes.reordered)],
    ['requests sent / answered', `${r.requests.sent} / ${r.requests.answered}`],
    ['requests executed twice (backend count)', String(r.requests.executedTwice)],
    ['OUTCOME_UNKNOWN answers', String(r.requests.outcomeUnknown)],
    ['request errors', errs],
    ['WELCOMEs / failed resumes / gaps', `${r.resumes.welcomes} / ${r.resumes.failed} / ${r.resumes.gaps}`],
    ['every client settled', r.settled ? 'yes' : 'NO'],
  ];
}

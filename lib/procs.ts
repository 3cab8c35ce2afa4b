/**
 * `gate serve --procs N` (cluster mode only): a primary process that forks N workers with
 * node:cluster. The workers share the TCP, WS and API ports (the primary accepts and hands
 * connections out round robin), and each is a member of the Redis cluster, `<gateId>.<i>`.
 *
 * The primary serves nothing itself and holds no Redis connection. It logs the one `listening`
 * line once every worker has reported its addresses, restarts a worker that dies (after 1 s,
 * doubling to 30 s while workers keep dying within 10 s of their start; the new one takes the
 * dead one's sessions over at once, GATE_REAP), and forwards SIGTERM / SIGINT: each worker shuts
 * down as a single gate does in cluster mode (sessions detach, to resume on another member).
 */
import cluster, { type Worker } from 'node:cluster';
import { freePort } from './freePort.js';
import type { Logger } from 'pino';
import type { GateConfig } from './config.js';

/** Environment of a worker: its index (1..N), and the member id of the worker it replaces. */
export const WORKER_INDEX_ENV = 'GATE_WORKER_INDEX';
export const REAP_ENV = 'GATE_REAP';

/** What a worker tells the primary once it listens. */
export interface WorkerListening {
  readonly type: 'gate:listening';
  readonly tcp: string | null;
  readonly ws: string | null;
  readonly api: string;
  readonly member: string;
}

const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** A worker that dies sooner than this after its start doubles the next restart's delay. */
const EARLY_DEATH_MS = 10_000;
/** Shutdown: how long past --shutdown-grace the workers get before SIGKILL. */
const SHUTDOWN_SLACK_MS = 5_000;

interface Slot {
  readonly index: number;
  worker: Worker | null;
  startedAt: number;
  member: string | null;
  backoffMs: number;
  timer: NodeJS.Timeout | null;
}

export interface Primary {
  /** Resolves once every worker listens (the `listening` line is logged). */
  readonly listening: Promise<void>;
  /** SIGTERM to every worker; resolves once all have exited (SIGKILL after grace + 5 s). */
  stop(): Promise<void>;
  /** SIGHUP to every live worker but `except` (one that has reloaded already): each reloads its options. */
  reload(except: number | null): void;
}

/** Starts the workers; `args` are the `gate serve` arguments each worker runs with. */
export async function startPrimary(cfg: GateConfig, args: readonly string[], log: Logger): Promise<Primary> {
  // node:cluster shares one listening socket per address as asked while a worker holds it, and
  // closes it with the last one: `:0` would become a new port whenever every worker was dead at
  // once. So the workers are given real ports (a free one picked here for each `:0`), and ask
  // for the same ones every time.
  const listenArgs = await fixedPorts(cfg);
  const slots: Slot[] = Array.from({ length: cfg.procs }, (_, i) => ({ index: i + 1, worker: null, startedAt: 0, member: null, backoffMs: RESTART_MIN_MS, timer: null }));
  const reported = new Map<number, WorkerListening>();
  let stopping = false;
  let announced = false;
  let onListening: () => void = () => undefined;
  const listening = new Promise<void>((resolve) => (onListening = resolve));

  const fork = (slot: Slot, reap: string | null): void => {
    // The primary's gateId (a default one names the primary's pid): workers are `<gateId>.<i>`.
    const env: Record<string, string> = { [WORKER_INDEX_ENV]: String(slot.index), GATE_GATE_ID: cfg.gateId };
    if (reap) env[REAP_ENV] = reap;
    cluster.setupPrimary({ args: ['serve', ...args, ...listenArgs] }); // a later flag wins
    const w = cluster.fork(env);
    slot.worker = w;
    slot.startedAt = Date.now();
    w.on('message', (m: unknown) => {
      const type = typeof m === 'object' && m !== null ? (m as { type?: unknown }).type : undefined;
      if (type === 'gate:reload') {
        log.info({ worker: slot.index }, 'a worker reloaded its options through its API; reloading the others');
        reload(slot.index);
        return;
      }
      if (type !== 'gate:listening') return;
      const l = m as WorkerListening;
      slot.member = l.member;
      reported.set(slot.index, l);
      log.info({ worker: slot.index, pid: w.process.pid, member: l.member }, 'worker listening');
      if (!announced && reported.size === slots.length) {
        announced = true;
        log.info({ gateId: cfg.gateId, tcp: l.tcp, ws: l.ws, api: l.api, procs: slots.length, pid: process.pid }, 'listening');
        onListening();
      }
    });
    w.on('exit', (code, signal) => {
      if (slot.worker !== w) return;
      slot.worker = null;
      if (stopping) return;
      const early = Date.now() - slot.startedAt < EARLY_DEATH_MS;
      const delay = early ? slot.backoffMs : RESTART_MIN_MS;
      slot.backoffMs = early ? Math.min(RESTART_MAX_MS, slot.backoffMs * 2) : RESTART_MIN_MS;
      log.warn({ worker: slot.index, pid: w.process.pid, code, signal, restartInMs: delay }, 'worker died; restarting it');
      const dead = slot.member;
      slot.timer = setTimeout(() => {
        slot.timer = null;
        if (!stopping) fork(slot, dead);
      }, delay);
    });
  };
  for (const slot of slots) fork(slot, null);

  const reload = (except: number | null): void => {
    for (const s of slots) if (s.worker && s.index !== except && !s.worker.isDead()) s.worker.process.kill('SIGHUP');
  };

  return {
    listening,
    reload,
    async stop() {
      stopping = true;
      for (const s of slots) if (s.timer) clearTimeout(s.timer);
      const alive = slots.flatMap((s) => (s.worker ? [s.worker] : []));
      const exits = alive.map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))));
      for (const w of alive) w.process.kill('SIGTERM');
      const killer = setTimeout(() => {
        for (const w of alive) if (!w.isDead()) w.process.kill('SIGKILL');
      }, cfg.shutdownGraceMs + SHUTDOWN_SLACK_MS);
      await Promise.all(exits);
      clearTimeout(killer);
      log.info({ workers: alive.length }, 'workers stopped');
    },
  };
}

/** `--tcp`, `--ws` and `--api` with every port 0 replaced by a port free now (on its host). */
async function fixedPorts(cfg: GateConfig): Promise<string[]> {
  const out: string[] = [];
  for (const [flag, at] of [['tcp', cfg.tcp], ['ws', cfg.ws], ['api', cfg.api]] as const) {
    if (at === null) continue;
    const port = at.port !== 0 ? at.port : await freePort(at.host);
    out.push(`--${flag}`, `${at.host.includes(':') ? `[${at.host}]` : at.host}:${port}`);
  }
  return out;
}

/** In a worker: the index the primary gave it, or null in a process that is no worker. */
export function workerIndex(): number | null {
  if (!cluster.isWorker) return null;
  const i = Number(process.env[WORKER_INDEX_ENV]);
  return Number.isInteger(i) && i >= 1 ? i : null;
}

/** In a worker: tell the primary this worker listens. */
export function reportListening(l: Omit<WorkerListening, 'type'>): void {
  process.send?.({ type: 'gate:listening', ...l } satisfies WorkerListening);
}

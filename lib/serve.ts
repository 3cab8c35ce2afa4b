import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import pino, { type Logger } from 'pino';
import type { GateConfig } from './config.js';
import { GatewayError } from './errors.js';
import { REAP_ENV, reportListening, workerIndex } from './procs.js';
import { startDemoBackend, type DemoBackend } from './demo/demoBackend.js';
import { Gate, type GateDeps, type ShutdownBounds } from './gate.js';
import { startApi, type ApiServer } from './streams/api.js';
import { ConfigReloader, type ReadLayers, type ReloadResult, type ReloadTrigger } from './streams/reload.js';

export interface RunningGate {
  readonly gate: Gate;
  readonly api: ApiServer;
  /** The embedded demo backend, when no --upstream was given. */
  readonly demo: DemoBackend | null;
  readonly addresses: { tcp: string | null; ws: string | null; api: string };
  /** Graceful shutdown (CONTRACT §5); resolves when everything is closed. `bounds` shorten its waits. */
  shutdown(bounds?: ShutdownBounds): Promise<void>;
  /** Reads the options again and applies what may change live (SIGHUP, POST /v1/admin/reload). */
  reload(trigger: ReloadTrigger): ReloadResult;
}

/** How serve() reads its options again on a reload; without it a reload answers that it cannot. */
export interface ReloadSource {
  /** The option layers now (flags as given, environment, --config file). */
  readonly read: ReadLayers;
  /** What buildConfig made of them at start, before per-process changes (a --procs worker's gate id). */
  readonly built: GateConfig;
  /** Told after a reload through the API applied, so that the primary of --procs reloads the other workers. */
  readonly onApplied?: (trigger: ReloadTrigger) => void;
}

/** How long shutdown waits for the last spans to reach the OTLP collector (--otlp), ms. */
export const TRACES_FLUSH_MS = 2_000;

export function createLogger(level: string): Logger {
  // Asynchronous: a burst of lines goes out in few writes instead of one write each (pino flushes
  // what is left synchronously on exit).
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 1, sync: false }));
}

/**
 * Starts a gate: the embedded demo backend when there is no --upstream, the listeners, the
 * push API; then registers with the backend and logs `listening`. A bind failure rejects with
 * GatewayError(GW_ERR_LISTEN) after closing whatever had started.
 */
export async function serve(cfg: GateConfig, deps: Partial<GateDeps> & { reloadSource?: ReloadSource } = {}): Promise<RunningGate> {
  // One process: `gate serve --procs N` runs a primary (lib/procs.ts) whose workers call this with 1.
  if (cfg.procs > 1) throw new GatewayError('GW_ERR_CONFIG', `--procs: serve() runs one process; ${cfg.procs} are run by the CLI's primary (lib/procs.ts)`, { option: 'procs' });
  const logger = deps.logger ?? createLogger(cfg.logLevel);
  // Cluster mode (CONTRACT §5): this process is one member, named afresh at each start, so a
  // restarted gate never mistakes the sessions of its previous life for its own.
  // (ioredis and the cluster code load only in cluster mode.)
  const cluster =
    deps.cluster !== undefined
      ? deps.cluster
      : cfg.redis !== null
        ? new (await import('./cluster/clusterNode.js')).ClusterNode(
            { url: cfg.redis, prefix: cfg.redisPrefix, reapAtStart: process.env[REAP_ENV] ?? null, member: `${cfg.gateId}~${randomBytes(4).toString('hex')}`, bufferMax: cfg.bufferMax, bufferMaxBytes: cfg.bufferMaxBytes, requestWindowBytes: cfg.requestWindowBytes, idleTimeoutMs: cfg.idleTimeoutMs },
            logger.child({ gateId: cfg.gateId }),
          )
        : null;
  // --otlp: the OpenTelemetry SDK loads only now, and only then (a gate without it never pays for it).
  const tracer =
    deps.tracer !== undefined
      ? deps.tracer
      : cfg.otlp !== null
        ? (await import('./otel/otlpTracer.js')).otlpTracer({ url: cfg.otlp, sample: cfg.otlpSample, gateId: cfg.gateId, log: logger.child({ gateId: cfg.gateId, component: 'otlp' }) })
        : null;
  let demo: DemoBackend | null = null;
  let keys: Gate['apiKeys'] | null = null; // the gate's, once it exists
  let effective = cfg;
  if (!cfg.upstream) {
    // The key asked at each push: a reload that rolls --api-key reaches the embedded backend too.
    demo = await startDemoBackend({ host: '127.0.0.1', port: 0, apiKey: () => keys?.value ?? cfg.apiKey, logger: logger.child({ component: 'demo-backend' }) });
    effective = { ...cfg, upstream: demo.url };
  }
  const source = deps.reloadSource;
  const reloader = source ? new ConfigReloader(source.built, effective, source.read, logger.child({ gateId: cfg.gateId, component: 'config' })) : null;
  const gate = new Gate(effective, { ...deps, logger, cluster, tracer, ...(reloader ? { config$: reloader.config$ } : {}) });
  keys = gate.apiKeys;
  const reload = (trigger: ReloadTrigger): ReloadResult => {
    if (!reloader) return { ok: false, option: 'config', source: null, message: 'this gate was started without option sources to read again (embedded use): restart it with the new options' };
    const r = reloader.reload(trigger);
    if (r.ok && r.applied.length > 0 && trigger === 'api') source?.onApplied?.(trigger);
    return r;
  };
  let api: ApiServer;
  try {
    await gate.start();
    api = await startApi(gate, cfg.api, logger.child({ gateId: cfg.gateId, component: 'api' }), { reload });
  } catch (e) {
    await gate.shutdown().catch(() => undefined);
    await tracer?.shutdown(TRACES_FLUSH_MS);
    await demo?.close();
    throw e;
  }
  gate.addresses.api = api.address;
  gate.ready = true;
  gate.startRegistration();
  const addresses = { tcp: gate.addresses.tcp, ws: gate.addresses.ws, api: api.address };
  // A --procs worker: the primary logs the one `listening` line once every worker reported.
  const worker = workerIndex() !== null;
  logger.info(
    { gateId: cfg.gateId, ...addresses, upstream: demo ? 'embedded demo' : cfg.upstream, ...(cluster ? { member: cluster.member, redisPrefix: cfg.redisPrefix } : {}) },
    worker ? 'member listening' : 'listening',
  );
  if (worker && cluster) reportListening({ ...addresses, member: cluster.member });
  // Pinned to one core, V8's concurrent GC threads pre-empt the main thread and stall it at the
  // end of each major GC. The flag is not allowed in NODE_OPTIONS and cannot be set once V8 runs,
  // so the gate can only say so (docs/operations.md, "One core").
  if (availableParallelism() === 1 && !process.execArgv.includes('--single-threaded-gc'))
    logger.info({ gateId: cfg.gateId, cpus: 1 }, 'one CPU available: start node with --single-threaded-gc for shorter GC pauses (docs/operations.md)');
  const log = logger.child({ gateId: cfg.gateId, component: 'shutdown' });
  let closing: Promise<void> | null = null;
  const apiServer = api;
  return {
    gate,
    api: apiServer,
    demo,
    addresses,
    reload,
    shutdown: (bounds?: ShutdownBounds) =>
      (closing ??= (async () => {
        log.info('shutdown started');
        await gate.shutdown((step) => log.info({ step }, 'shutdown step'), bounds);
        await apiServer.close();
        // Last, so the spans of the answers and push calls made while draining go too; bounded.
        if (tracer) log.info({ step: (await tracer.shutdown(TRACES_FLUSH_MS)) ? 'traces flushed' : `traces not flushed within ${TRACES_FLUSH_MS}ms` }, 'shutdown step');
        await demo?.close();
        log.info('shutdown complete');
      })()),
  };
}

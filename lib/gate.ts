import type { Logger } from 'pino';
import {
  BehaviorSubject,
  EMPTY,
  NEVER,
  Subject,
  Subscription,
  catchError,
  distinctUntilChanged,
  exhaustMap,
  mergeMap,
  filter,
  firstValueFrom,
  from,
  map,
  merge,
  of,
  skip,
  takeUntil,
  timer,
  Observable,
  type SchedulerLike,
  type Subscriber,
} from 'rxjs';
import { authenticator, bearerHeader, jwtKey, type Authenticator } from './auth.js';
import type { GateConfig } from './config.js';
import type { Connection, ConnectionLimits, Transport } from './connection.js';
import { GatewayError, isGatewayError } from './errors.js';
import { FrameType, frame, type Frame } from './frame.js';
import { CoarseScheduler } from './coarseScheduler.js';
import { KeyRing } from './keyRing.js';
import { LogSampler } from './logSampler.js';
import { createMetrics, type Metrics } from './metrics.js';
import { requestPool, type PoolLimits } from './ops/requestPool.js';
import { workerPool, type WorkerPool } from './ops/workerPool.js';
import type { ClusterNode } from './cluster/clusterNode.js';
import { ClusterSessions } from './cluster/clusterSessions.js';
import { EventStream } from './cluster/eventStream.js';
import type { Fence } from './cluster/redisSessions.js';
import { Sessions, type GateFigures } from './session/sessions.js';
import type { RequestTracer } from './requestTracer.js';
import { childTraceparent } from './trace.js';
import { backendClient, type BackendClient } from './streams/backend.js';
import { EventQueue } from './streams/events.js';
import { tcpConnection$, wsConnection$, type Admission, type Handshakes } from './streams/listeners.js';
import { undiciRpcClient, type RpcClient } from './streams/rpcClient.js';
import { upstreamCall$, type RpcOutcome, type UpstreamCallConfig } from './streams/upstream.js';
import { errorFrame, inboundBody, parseHello } from './wire.js';
import { Link, type ConnState, type RequestJob } from './link.js';

export type { RequestJob } from './link.js';
export type { GateFigures, PlayerInfo, PushResult } from './session/sessions.js';

type Answer =
  | {
      readonly job: RequestJob;
      readonly outcome: RpcOutcome;
      /** Cluster mode: the call ran here under this fence; its outcome is stored for the cluster. */
      readonly ran?: Fence;
    }
  | {
      /**
       * Cluster mode, when the cluster-wide window answered instead of the backend: the frame to
       * send (done elsewhere, unknown, stale), `pending` (running on another gate: its notice
       * answers), or `lost` (the session moved: its new holder answers a re-send).
       */
      readonly job: RequestJob;
      readonly settled: Frame | 'pending' | 'lost';
      /** The requests counter's result label. */
      readonly result: string;
      /** STALE_REQUEST: the seq leaves the window (it never ran). */
      readonly stale?: true;
    };

export interface GateDeps {
  logger: Logger;
  /** Defaults to undici over cfg.upstream. */
  rpc?: RpcClient;
  /** Defaults to got over cfg.upstream; null = no backend calls (no /events, /gates). */
  backend?: BackendClient | null;
  /** Jitter source for backoff; injected for deterministic tests. */
  random?: () => number;
  /** Clock of the session idle timeouts (--idle-timeout); a virtual one lets tests move it. */
  idleScheduler?: SchedulerLike;
  /** Links from another transport (in-memory ones for benchmarks and tests), served like TCP and WS ones. */
  connections$?: Observable<Connection>;
  /** Cluster mode (--redis): this member's Redis side; sessions are stored there. */
  cluster?: ClusterNode | null;
  /**
   * The configuration as it changes (reloads: lib/streams/reload.ts). It must replay the current
   * value on subscription (a BehaviorSubject): the gate skips that first one, which is `cfg`.
   */
  config$?: Observable<GateConfig>;
  /** --otlp: the tracer (serve() loads lib/otel/ only then); null or absent = tracing off. */
  tracer?: RequestTracer | null;
}

/** Backoff for upstream retries: 50 ms doubling to 1 s (with equal jitter). */
const RPC_BACKOFF = { baseBackoffMs: 50, maxBackoffMs: 1_000 };
/** How long an idle player's request group lingers before groupBy releases it. */
const GROUP_LINGER_MS = 1_000;

/** Shorter bounds than --shutdown-grace and the events flush, for a shutdown nobody waits on (the parent is gone). */
export interface ShutdownBounds {
  graceMs?: number;
  flushMs?: number;
}

/**
 * The single-node gate: wires the listener streams, the per-connection frame pipelines and
 * the request pool together, holds the sessions, and serves the push API's calls. This is
 * the edge where the pipelines are subscribed (see docs/architecture.md).
 */
export class Gate {
  /** The configuration now: a reload replaces it (`cfg` is what every part reads). */
  private current: GateConfig;
  /** The configuration as it changes; its first value is the one the gate started with. */
  readonly config$: Observable<GateConfig>;
  /** --api-key and --jwt-secret, with the previous one for --key-grace after a reload. */
  readonly apiKeys: KeyRing<Buffer>;
  readonly jwtSecrets: KeyRing<Uint8Array>;
  readonly metrics: Metrics;
  /**
   * --otlp: spans per REQUEST and per push API call. Null when tracing is off: then the request
   * path tests this field once per request and runs no tracing code.
   */
  readonly tracer: RequestTracer | null;
  /** The session layer: this process's sessions (single node) or the cluster's, in Redis. */
  readonly sessions: Sessions;
  private readonly sampler: LogSampler;
  /** Open connections by transport (gate_connections reads them at scrape time). */
  private readonly open: Record<Transport, number> = { tcp: 0, ws: 0 };
  readonly pool: WorkerPool;
  readonly events: EventQueue | null;
  /** Cluster mode: posts the cluster's event stream while this member holds its lease. */
  private readonly clusterEvents: EventStream | null;
  readonly addresses: { tcp: string | null; ws: string | null; api: string | null } = { tcp: null, ws: null, api: null };
  readonly startedAt = Date.now();
  /** False while starting and from the start of shutdown (`/readyz`). */
  ready = false;
  private draining = false;
  /** Set once registration started: only then does shutdown flush events and DELETE /gates. */
  private registered = false;
  private readonly log: Logger;
  /** The logger given to the gate: a reload of --log-level sets its level (children follow). */
  private readonly rootLog: Logger;
  /** One object shared by every link, so a reload of --outbound-max reaches open connections. */
  private readonly limits: ConnectionLimits;
  private readonly rpc: RpcClient | null;
  private readonly backend: BackendClient | null;
  private readonly auth: Authenticator;
  private readonly admission: Admission;
  private readonly handshakes: Handshakes;
  private readonly subs = new Subscription();
  /** Fires once to close the listeners (shutdown step 2). */
  private readonly stopAccepting = new Subject<void>();
  /** Admitted requests not yet answered (the request pool's depth). */
  private depth = 0;
  private readonly depthChanged = new Subject<number>();
  /**
   * REQUEST jobs from every link, in arrival order: the request pool's input. Links hand jobs
   * to its one subscriber directly (a Subject's `next` costs a closure per request).
   */
  private jobSubscriber: Subscriber<RequestJob> | null = null;
  private readonly jobs$ = new Observable<RequestJob>((s) => {
    this.jobSubscriber = s;
    return () => {
      if (this.jobSubscriber === s) this.jobSubscriber = null;
    };
  });
  private readonly jobSink = { next: (job: RequestJob): void => this.jobSubscriber?.next(job) };
  private nextConnId = 1;
  private readonly random: () => number;
  /** The /rpc call policy, built once (not per request) and again on a reload. */
  private upstreamCfg: UpstreamCallConfig;
  private readonly idleScheduler: SchedulerLike;
  /** @internal The clock of HELLO and heartbeat deadlines (and, by default, of session idle); links made after a reload get one sized for its deadlines. */
  deadlineScheduler: SchedulerLike;
  private readonly extraConnections$: Observable<Connection>;

  constructor(cfg: GateConfig, deps: GateDeps) {
    this.current = cfg;
    this.config$ = deps.config$ ?? new BehaviorSubject(cfg);
    this.apiKeys = new KeyRing(cfg.apiKey, Date.now, bearerHeader);
    this.jwtSecrets = new KeyRing(cfg.jwtSecret, Date.now, jwtKey);
    this.limits = { maxFrame: cfg.maxFrame, outboundMax: cfg.outboundMax };
    this.rootLog = deps.logger;
    this.log = deps.logger.child({ gateId: cfg.gateId });
    const tracer = (this.tracer = deps.tracer ?? null);
    this.metrics = createMetrics(cfg.gateId, {
      tracing: () => tracer?.stats ?? null,
      sessions: () => this.sessions.counts(),
      queued: () => this.queued,
      busyWorkers: () => this.pool.busy,
      eventsQueued: () => this.events?.length ?? 0,
      refused: () => this.admission.refused,
      handshakes: () => this.handshakes,
      connections: () => this.open,
    });
    this.pool = workerPool({ concurrency: cfg.workers });
    this.random = deps.random ?? Math.random;
    this.upstreamCfg = this.upstreamPolicy(cfg);
    this.deadlineScheduler = deadlineClock(cfg);
    this.idleScheduler = deps.idleScheduler ?? this.deadlineScheduler;
    this.extraConnections$ = deps.connections$ ?? EMPTY;
    const cluster = deps.cluster ?? null;
    this.rpc = deps.rpc ?? (cfg.upstream ? undiciRpcClient({ baseUrl: cfg.upstream, connections: null, maxBody: cfg.maxFrame }) : null);
    this.backend =
      deps.backend !== undefined
        ? deps.backend
        : cfg.upstream
          ? backendClient({ baseUrl: cfg.upstream, gateId: cfg.gateId, policy: () => ({ timeoutMs: this.cfg.upstreamTimeoutMs, retries: this.cfg.upstreamRetries }) })
          : null;
    const poster = this.backend;
    this.clusterEvents =
      cluster && poster
        ? new EventStream(cluster.sessions, (batch) => poster.postEvents(batch), { batchMax: cfg.eventsBatchMax }, (err) =>
            this.log.warn({ err: (err as Error).message }, 'backend /events failed (cluster stream); retrying'),
          )
        : null;
    this.auth = authenticator(cfg.auth, { backend: this.backend, jwtKeys: () => this.jwtSecrets.keys(), gateId: cfg.gateId });
    this.admission = { open: 0, max: cfg.maxConnections, refused: 0 };
    this.handshakes = { pending: 0, max: cfg.maxHandshakes, refused: 0 };
    const backend = this.backend;
    // Cluster mode: the scripts write the events into Redis and one member posts them (clusterEvents).
    this.events = backend && !cluster
      ? new EventQueue((batch) => backend.postEvents(batch), { batchMax: cfg.eventsBatchMax, queueMax: cfg.eventsQueueMax, lingerMs: cfg.eventsLingerMs, baseBackoffMs: cfg.eventsBackoffMs, maxBackoffMs: cfg.eventsBackoffMaxMs }, (err, attempt) =>
          this.log.warn({ err: (err as Error).message, attempt, queued: this.events?.length }, 'backend /events failed; retrying'),
        )
      : null;
    this.sampler = new LogSampler(cfg.logSample, this.log, this.metrics.logSampledOut);
    const now = (): GateConfig => this.current;
    const layer = {
      get cfg() {
        return now();
      },
      metrics: this.metrics,
      log: this.log,
      sampler: this.sampler,
      auth: this.auth,
      events: this.events,
      idleScheduler: this.idleScheduler,
      closeWith: (conn: Connection, err: GatewayError) => this.closeWith(conn, err),
      figures: () => this.figures(),
    };
    this.sessions = cluster ? new ClusterSessions(layer, cluster) : new Sessions(layer);
    this.subs.add(this.config$.pipe(skip(1)).subscribe((next) => this.reconfigure(next)));
  }

  /** The configuration now. */
  get cfg(): GateConfig {
    return this.current;
  }

  /** Requests admitted and waiting for a worker (the rest of the pool's depth is running). */
  private get queued(): number {
    return Math.max(0, this.depth - this.pool.busy);
  }

  /**
   * A reload (lib/streams/reload.ts decided which options may change live): every part that
   * keeps a copy of a live option gets the new value; the rest read `cfg` as they go. The worker
   * pool, the per-player limit and --queue-max follow through the request pool's `limits$`, the
   * certificate through the listeners' `tlsReload$`.
   */
  private reconfigure(next: GateConfig): void {
    const prev = this.current;
    this.current = next;
    if (next.logLevel !== prev.logLevel) this.rootLog.level = next.logLevel;
    if (next.logSample !== prev.logSample) this.sampler.setRate(next.logSample);
    if (next.upstreamTimeoutMs !== prev.upstreamTimeoutMs || next.upstreamRetries !== prev.upstreamRetries) this.upstreamCfg = this.upstreamPolicy(next);
    if (next.helloTimeoutMs !== prev.helloTimeoutMs || next.heartbeatMs !== prev.heartbeatMs) this.deadlineScheduler = deadlineClock(next);
    this.admission.max = next.maxConnections;
    this.handshakes.max = next.maxHandshakes;
    this.limits.outboundMax = next.outboundMax;
    this.apiKeys.roll(next.apiKey, next.keyGraceMs);
    this.jwtSecrets.roll(next.jwtSecret, next.keyGraceMs);
    this.sessions.reconfigure(prev, next);
  }

  /** The /rpc call policy of a configuration. */
  private upstreamPolicy(cfg: GateConfig): UpstreamCallConfig {
    // Every request arms an attempt timeout that almost never fires: bucketed timers (at most 5%
    // late) cost a small object each instead of a Node timer. Backoff waits stay precise.
    const upstreamClock = new CoarseScheduler(Math.min(250, Math.max(1, Math.floor(cfg.upstreamTimeoutMs / 20))));
    return { timeoutMs: cfg.upstreamTimeoutMs, retries: cfg.upstreamRetries, ...RPC_BACKOFF, random: this.random, timeoutScheduler: upstreamClock };
  }

  /** Binds the listeners and starts every pipeline; resolves once all listeners are bound. */
  async start(): Promise<void> {
    const cfg = this.cfg;
    const limits = this.limits;
    const tls = cfg.tlsCert && cfg.tlsKey ? { cert: cfg.tlsCert, key: cfg.tlsKey } : null;
    // Every reload re-reads the pair: a certificate renewed in place keeps its file names.
    const tlsReload$ = this.config$.pipe(
      skip(1),
      filter((c) => c.tlsCert !== null && c.tlsKey !== null),
      map((c) => ({ cert: c.tlsCert!, key: c.tlsKey! })),
    );
    const onTlsError = (e: unknown): void => this.log.error({ err: (e as Error).message }, 'reloaded TLS certificate not loaded; the previous one still serves');
    const bound: Promise<void>[] = [];
    let failStart: (e: unknown) => void = () => undefined;
    const failed = new Promise<never>((_, reject) => (failStart = reject));
    const listener = (kind: 'tcp' | 'ws'): Observable<Connection> => {
      const at = cfg[kind];
      if (!at) return EMPTY;
      let onListening: (a: string) => void = () => undefined;
      bound.push(new Promise<void>((resolve) => (onListening = (a) => ((this.addresses[kind] = a), resolve()))));
      const make = kind === 'tcp' ? tcpConnection$ : wsConnection$;
      return make({ at, tls, tlsReload$, onTlsError, limits, admission: this.admission, handshakes: this.handshakes, nextId: () => this.nextConnId++, onListening: (a) => onListening(a) }).pipe(
        takeUntil(this.stopAccepting),
      );
    };

    // connections → per-connection frame pipelines → REQUEST jobs → request pool → answers.
    // Every link feeds its REQUEST jobs into `jobs`: the merge of all connections' frame
    // pipelines. (A Subject at the boundary rather than `mergeMap(conn ⇒ link$)`: the inner
    // subscriber mergeMap keeps per connection cost about 0.5 KB, an eighth of the budget.)
    const link$ = merge(listener('tcp'), listener('ws'), this.extraConnections$.pipe(takeUntil(this.stopAccepting)));
    const answer$ = this.jobs$.pipe(
      requestPool<RequestJob, Answer>({
        key: (j) => j.session.playerId,
        work: (j) => this.call$(j),
        reject: (j) => ({ job: j, outcome: { ok: false, code: 'OVERLOADED', message: `request queue is full (--queue-max ${this.cfg.queueMax})` } }),
        fail: (j, e) => ({ job: j, outcome: { ok: false, code: 'UPSTREAM_UNAVAILABLE', message: String(e) } }),
        pool: this.pool,
        playerConcurrency: cfg.playerConcurrency,
        queueMax: cfg.queueMax,
        limits$: this.config$.pipe(
          skip(1),
          map((c): PoolLimits => ({ workers: c.workers, playerConcurrency: c.playerConcurrency, queueMax: c.queueMax })),
          distinctUntilChanged((a, b) => a.workers === b.workers && a.playerConcurrency === b.playerConcurrency && a.queueMax === b.queueMax),
        ),
        lingerMs: GROUP_LINGER_MS,
        onDepth: (d) => {
          this.depth = d;
          // Only shutdown listens, and only for zero: no Subject emission per request.
          if (d === 0 && this.depthChanged.observed) this.depthChanged.next(0);
        },
      }),
    );
    this.subs.add(
      answer$.subscribe({
        next: (a) => this.deliver(a),
        error: (e: unknown) => failStart(e),
      }),
    );
    this.subs.add(
      link$.subscribe({
        next: (conn) => this.openLink(conn),
        error: (e: unknown) => failStart(e),
      }),
    );
    if (this.events) this.subs.add(this.events.drain$.subscribe());
    // The session layer first: a cluster member that cannot reach Redis must not accept clients it cannot log in.
    await this.sessions.start();
    if (this.clusterEvents) this.subs.add(this.clusterEvents.drain$.subscribe());
    await Promise.race([Promise.all(bound), failed]);
  }

  /** Starts the periodic PUT /gates/{id} (§3); failures are logged, never fatal. */
  startRegistration(): void {
    const backend = this.backend;
    if (!backend) return;
    this.registered = true;
    this.subs.add(
      timer(0, this.cfg.registerEveryMs)
        .pipe(
          exhaustMap(() =>
            from(backend.putGate(this.registration())).pipe(
              catchError((e: unknown) => {
                this.log.warn({ err: (e as Error).message }, 'PUT /gates failed; will retry');
                return EMPTY;
              }),
            ),
          ),
          takeUntil(this.stopAccepting),
        )
        .subscribe(),
    );
  }

  registration() {
    return {
      gateId: this.cfg.gateId,
      tcp: this.addresses.tcp,
      ws: this.addresses.ws,
      api: this.addresses.api ?? '',
      startedAt: this.startedAt,
      sessions: this.sessions.store.size,
    };
  }

  // ---------------------------------------------------------------- connections

  /**
   * One connection's frames: watched for 3× heartbeat silence and for a HELLO within
   * --hello-timeout, dispatched frame by frame; emits the REQUEST jobs it admits for upstream.
   * Every error ends in a BYE for this connection only.
   */
  private openLink(conn: Connection): void {
    this.open[conn.transport]++;
    // Guarded: the remote address is a getpeername syscall, too dear to build for a line not written.
    if (this.log.isLevelEnabled('debug')) this.log.debug({ connId: conn.id, transport: conn.transport, remote: conn.remoteAddress }, 'connection opened');
    new Link(this, conn, this.jobSink).start();
  }

  /** @internal */
  closeWith(conn: Connection, err: GatewayError): void {
    this.log.debug({ connId: conn.id, code: err.code, reason: err.message }, 'closing connection');
    conn.close(err);
  }

  /** @internal */
  connectionEnded(conn: Connection, st: ConnState, caught: GatewayError | null): void {
    this.open[conn.transport]--;
    // A link the transport closed itself (slow consumer inside send) says why on the connection.
    const err = caught ?? conn.closedWith;
    if (err) {
      this.metrics.closes.inc({ code: err.bye ?? err.code });
      if (err.bye === 'protocol_error') this.metrics.countProtocolError(err.code).inc();
      if (err.code === 'GW_ERR_SLOW_CONSUMER') {
        this.metrics.slowConsumer.inc();
        this.log.info({ connId: conn.id, playerId: st.session?.playerId, sessionId: st.session?.sessionId }, 'slow consumer dropped');
      }
    }
    conn.close(null);
    const s = st.session;
    if (s && s.conn === conn && s.state === 'online') this.sessions.detach(s, detachReason(err));
    this.log.debug({ connId: conn.id, playerId: s?.playerId, sessionId: s?.sessionId }, 'connection closed');
  }

  /** Handles one frame; returns the REQUEST job to run upstream, or null. Throws to end the link. */
  /** @internal */
  onFrame(conn: Connection, st: ConnState, f: Frame): RequestJob | null {
    switch (f.type) {
      case FrameType.PING:
        conn.send(frame(FrameType.PONG, f.seq));
        return null;
      case FrameType.PONG:
        return null;
      case FrameType.HELLO: {
        if (st.phase !== 'hello') throw new GatewayError('GW_ERR_FRAME_UNEXPECTED', 'second HELLO on one connection');
        st.phase = 'authing';
        const hello = parseHello(f.body);
        st.traceparent = hello.traceparent;
        this.sessions.login(conn, st, hello).catch((e: unknown) => {
          // Redis away: the client is told so (and to try again), not that its login was refused.
          if (isGatewayError(e, 'GW_ERR_CLUSTER_UNAVAILABLE')) conn.send(errorFrame(0, 0, 'CLUSTER_UNAVAILABLE', e.message));
          this.closeWith(conn, isGatewayError(e) ? e : new GatewayError('GW_ERR_AUTH_FAILED', `login failed: ${(e as Error)?.message ?? String(e)}`));
        });
        return null;
      }
      case FrameType.REQUEST:
        return this.onRequest(conn, st, f);
      case FrameType.ACK:
        if (st.session && st.phase === 'online') {
          const upTo = Math.min(f.seq, st.session.pushSeq);
          this.sessions.ack(st.session, upTo);
        }
        return null;
      case FrameType.BYE:
        this.onClientBye(conn, st, f);
        return null;
      default:
        throw new GatewayError('GW_ERR_FRAME_UNEXPECTED', `frame type ${f.type} is gate-to-client only`);
    }
  }

  private onRequest(conn: Connection, st: ConnState, f: Frame): RequestJob | null {
    const s = st.session;
    if (!s || st.phase !== 'online' || s.conn !== conn) {
      this.metrics.countRequest('unauthorized').inc();
      if (f.seq !== 0) conn.send(errorFrame(f.seq, f.route, 'UNAUTHORIZED', 'REQUEST before WELCOME'));
      return null;
    }
    this.sessions.touch(s);
    // Inflated first: a bad body is a protocol error whatever the window says.
    const inflated = inboundBody(f, this.cfg.maxFrame);
    // The frame's body is a view of the receive chunk: copy it (once) unless inflating made a new buffer.
    const body = inflated === f.body ? Buffer.from(inflated) : inflated;
    if (f.seq !== 0) {
      // §2.5: a seq seen before never runs upstream twice.
      const v = s.window.admit(f.seq);
      switch (v.kind) {
        case 'running':
          this.metrics.countRequest('duplicate').inc();
          return null; // its answer goes to the session's link when it completes
        case 'done':
          this.metrics.countRequest('duplicate').inc();
          this.sessions.sendAnswer(s, conn, v.answer);
          return null;
        case 'stale':
          this.metrics.countRequest('stale_request').inc();
          conn.send(errorFrame(f.seq, f.route, 'STALE_REQUEST', `seq ${f.seq} is older than the request window or not increasing`));
          return null;
        case 'new':
          break;
      }
    }
    if (this.draining) {
      this.metrics.countRequest('overloaded').inc();
      if (f.seq !== 0) {
        s.window.forget(f.seq);
        conn.send(errorFrame(f.seq, f.route, 'OVERLOADED', 'gate is shutting down'));
      }
      return null;
    }
    // Fast writers: past --player-queue-max unanswered requests, stop reading this link until
    // half of them are answered (ws style inbound throttling), instead of queueing more.
    if (++s.unanswered >= this.cfg.playerQueueMax && s.pausedLink === null) {
      s.pausedLink = conn;
      conn.pause();
    }
    // Cluster mode: the cluster-wide window's verdict, asked now in arrival order; the job waits for it in the pool.
    const fence = s.fence;
    const admission = fence !== null && f.seq !== 0 ? this.sessions.admit(s, f.seq) : undefined;
    // --otlp: the request's span starts at admission, so its queued time is measured too.
    const trace = this.tracer === null ? null : this.tracer.request(f.route, f.seq, s.sessionId, s.playerId, st.traceparent);
    if (admission !== undefined && fence !== null) return { session: s, route: f.route, seq: f.seq, body, traceparent: st.traceparent, trace, admission, fence };
    return { session: s, route: f.route, seq: f.seq, body, traceparent: st.traceparent, trace };
  }

  /** @internal */
  onRateLimited(conn: Connection, f: Frame): void {
    this.metrics.countRequest('rate_limited').inc();
    if (f.seq !== 0) conn.send(errorFrame(f.seq, f.route, 'RATE_LIMITED', `over --rate-limit (${this.cfg.rateLimit}/s)`));
  }

  private onClientBye(conn: Connection, st: ConnState, f: Frame): void {
    let code: unknown;
    try {
      code = (JSON.parse(f.body.toString('utf8')) as { code?: unknown }).code;
    } catch {
      code = undefined;
    }
    const s = st.session;
    if (code === 'logout' && s && s.conn === conn) this.sessions.endSession(s, 'logout', null);
    conn.close(null);
  }

  // ---------------------------------------------------------------- requests

  private call$(j: RequestJob): Observable<Answer> {
    const { admission, fence } = j;
    if (admission === undefined || fence === undefined) return this.upstream$(j);
    return from(admission).pipe(
      mergeMap((v): Observable<Answer> => {
        const unrun = (code: 'OUTCOME_UNKNOWN' | 'STALE_REQUEST', message: string): Answer => ({
          job: j,
          settled: errorFrame(j.seq, j.route, code, message),
          result: code.toLowerCase(),
          ...(code === 'STALE_REQUEST' ? { stale: true as const } : {}),
        });
        switch (v?.kind) {
          case undefined:
            return this.upstream$(j);
          case 'new':
            return this.upstream$(j).pipe(map((a) => ({ ...a, ran: fence })));
          case 'running':
            return of({ job: j, settled: 'pending', result: 'duplicate' });
          case 'done':
            return of({ job: j, settled: v.answer, result: 'duplicate' });
          case 'outcome_unknown':
            return of(unrun('OUTCOME_UNKNOWN', 'the gate running this request died mid-call: whether the backend ran it is unknown (x-request-id / Idempotency-Key name it)'));
          case 'stale':
            return of(unrun('STALE_REQUEST', `seq ${j.seq} is older than the request window or not increasing`));
          case 'lost':
            return of({ job: j, settled: 'lost', result: 'moved' });
        }
      }),
    );
  }

  private upstream$(j: RequestJob): Observable<Answer> {
    const rpc = this.rpc;
    if (!rpc) return of({ job: j, outcome: { ok: false, code: 'UPSTREAM_UNAVAILABLE', message: 'no backend configured' } });
    const s = j.session;
    // Queued behind its player's earlier requests until now: a session that ended meanwhile
    // (kick, logout, replaced, idle) has nobody to answer, so the backend is spared the call.
    // (Cluster mode runs a job the cluster window admitted if the session moved rather than ended:
    // it lives on at another holder, whose client's re-send waits for this outcome.)
    if (s.state === 'ended' && !(s.moved && j.admission !== undefined)) return of({ job: j, outcome: { ok: false, code: 'UPSTREAM_UNAVAILABLE', message: 'session ended before the request ran' } });
    const headers: Record<string, string> = {
      'x-gate-id': this.cfg.gateId,
      'x-player-id': s.playerId,
      'x-session-id': s.sessionId,
      'x-request-id': `${s.sessionId}.${j.seq}`,
      // The same key under the name HTTP's idempotency draft and many frameworks' middleware use.
      'idempotency-key': `${s.sessionId}.${j.seq}`,
      'content-type': 'application/octet-stream',
    };
    // Traced (--otlp): sampled, each attempt's span names itself in the header (the trace's rpc
    // sets it); not sampled, the trace's own traceparent with flag 00 goes upstream.
    const trace = j.trace;
    const traceparent = trace === null ? childTraceparent(j.traceparent) : trace.traceparent;
    headers.traceparent = traceparent;
    const t0 = performance.now();
    return upstreamCall$(trace === null ? rpc : trace.upstream(rpc), { route: j.route, body: j.body, headers }, this.upstreamCfg, (outcome): Answer => {
      this.metrics.upstreamTime(outcome.ok ? 'ok' : outcome.code).observe((performance.now() - t0) / 1000);
      this.metrics.upstream(j.route, upstreamResult(outcome));
      if (!outcome.ok)
        this.log.warn({ playerId: s.playerId, sessionId: s.sessionId, route: j.route, seq: j.seq, code: outcome.code, status: outcome.status, traceparent }, 'upstream failure');
      return { job: j, outcome };
    });
  }

  /**
   * Records an answer in the session's request window, then sends it on whatever link the
   * session has now: an answer that lands while the session is detached waits in the window
   * for the client to re-send the seq after resuming.
   */
  private deliver(a: Answer): void {
    const job = a.job;
    const result = 'settled' in a ? a.result : a.outcome.ok ? 'ok' : a.outcome.code.toLowerCase();
    this.metrics.countRequest(result).inc();
    // Ended before the answer is written: a client that has its answer finds the span ended.
    if (job.trace !== null) job.trace.end(result, 'settled' in a || a.outcome.ok ? undefined : a.outcome.message);
    const s = job.session;
    if (--s.unanswered <= this.cfg.playerQueueMax >> 1 && s.pausedLink !== null) {
      s.pausedLink.resume();
      s.pausedLink = null;
    }
    if (job.seq === 0) return; // notify: no answer
    if ('settled' in a) {
      const settled = a.settled;
      if (settled === 'pending') return; // running on another gate: its notice answers (answered())
      if (settled === 'lost') {
        s.window.forget(job.seq); // the session's new holder answers a re-send
        return;
      }
      // The outcome may have come first as a notice (answered()): one answer per send.
      if (!s.window.isRunning(job.seq)) return;
      if (a.stale) s.window.forget(job.seq);
      else s.window.complete(job.seq, settled);
      if (s.conn) this.sessions.sendAnswer(s, s.conn, settled);
      return;
    }
    const outcome = a.outcome;
    let answer: Frame;
    if (outcome.ok) {
      // The RpcClient stops reading a reply at --max-frame, so every body here fits in a frame.
      answer = frame(FrameType.RESPONSE, job.seq, outcome.body, job.route);
    } else {
      answer = errorFrame(job.seq, job.route, outcome.code, outcome.message, outcome.status);
      // Refused before it ran: the client may re-send the same seq and have it run.
      if (outcome.code === 'OVERLOADED') {
        s.window.forget(job.seq);
        if (s.conn) s.conn.send(answer);
        // If the cluster window recorded it as running here: it did not run.
        const { admission, fence } = job;
        if (admission && fence) void admission.then((v) => v?.kind === 'new' && this.sessions.finished(s, fence, job.seq, null));
        return;
      }
    }
    s.window.complete(job.seq, answer);
    if (s.conn) this.sessions.sendAnswer(s, s.conn, answer);
    // Stored for the cluster after the answer went out (off the latency path).
    if (a.ran) this.sessions.finished(s, a.ran, job.seq, answer);
  }

  stats() {
    const { online, detached } = this.sessions.counts();
    return {
      gateId: this.cfg.gateId,
      connections: this.admission.open,
      sessions: this.sessions.store.size,
      online,
      detached,
      inflight: this.pool.busy,
      queued: this.queued,
      refused: this.admission.refused,
      eventsQueued: this.events?.length ?? 0,
    };
  }

  /**
   * What is in use now, without the pass over the sessions `stats()` makes: connections by
   * transport, workers busy, requests queued for one, backend events waiting (null in cluster
   * mode, where they wait in Redis). Read by the dashboard's sampler (lib/streams/stats.ts).
   */
  load(): { connections: Readonly<Record<Transport, number>>; busy: number; queued: number; eventsQueued: number | null } {
    return { connections: { ...this.open }, busy: this.pool.busy, queued: this.queued, eventsQueued: this.events?.length ?? null };
  }

  /** This gate as /v1/gates lists it, with its sessions by state (each cluster beat carries these). */
  figures(): GateFigures & { online: number; detached: number } {
    const st = this.stats();
    return { gateId: this.cfg.gateId, member: this.cfg.gateId, pid: process.pid, startedAt: this.startedAt, ...this.addresses, connections: st.connections, sessions: st.sessions, online: st.online, detached: st.detached };
  }

  /** /v1/stats: this gate's counts; in cluster mode also every live gate's (from their beats) and the totals (CONTRACT §5). */
  async statsAll(): Promise<ReturnType<Gate['stats']> & { gates?: GateFigures[]; cluster?: { connections: number; sessions: number } }> {
    if (!this.sessions.clustered) return this.stats();
    const gates = await this.sessions.gates();
    return {
      ...this.stats(),
      gates,
      cluster: { connections: gates.reduce((n, g) => n + g.connections, 0), sessions: gates.reduce((n, g) => n + g.sessions, 0) },
    };
  }

  /**
   * Graceful shutdown, in the order of CONTRACT §5: not ready; listeners closed; in-flight
   * requests get up to the grace period and their answers delivered; BYE shutdown to every
   * client; each session ends (`offline`, reason shutdown); events flushed; DELETE /gates.
   */
  async shutdown(step: (name: string) => void = () => undefined, bounds: ShutdownBounds = {}): Promise<void> {
    const graceMs = bounds.graceMs ?? this.cfg.shutdownGraceMs;
    const flushMs = bounds.flushMs ?? this.cfg.eventsFlushMs;
    if (this.draining) return;
    const registered = this.registered;
    this.ready = false;
    this.draining = true;
    step('not ready');
    this.stopAccepting.next();
    this.stopAccepting.complete();
    step('listeners closed');
    if (this.depth > 0) {
      const drained = await firstValueFrom(
        merge(this.depthChanged.pipe(filter((d) => d === 0), map(() => true)), timer(graceMs).pipe(map(() => false)), this.depth === 0 ? of(true) : NEVER),
      );
      step(drained ? 'in-flight requests finished' : 'in-flight requests cut off after grace');
    } else step('no requests in flight');
    // Single node: every session ends; cluster mode (§5): they detach, to resume on another gate.
    step(await this.sessions.shutdown());
    // A gate that never finished starting never told the backend anything: nothing to flush or withdraw.
    if (this.events && registered) {
      const ok = await this.events.flushed(flushMs);
      step(ok ? 'events flushed' : `events not flushed (${this.events.length} left)`);
    }
    if (this.clusterEvents && registered) {
      const ok = await this.clusterEvents.flushed(flushMs);
      step(ok ? 'events flushed (or left to the member holding the lease)' : 'events not flushed: the next member to hold the lease posts them');
    }
    if (this.backend && registered) {
      try {
        await this.backend.deleteGate(this.cfg.gateId);
        step('gate deregistered');
      } catch (e) {
        step(`DELETE /gates failed: ${(e as Error).message}`);
      }
    }
    this.subs.unsubscribe();
    this.sampler.flush();
    await this.sessions.close();
    await this.rpc?.close();
    this.backend?.close();
  }
}

/** The clock of link deadlines: bucketed timers (they are many and long), at most 5% late. */
function deadlineClock(cfg: GateConfig): CoarseScheduler {
  const shortest = Math.min(cfg.helloTimeoutMs, 3 * cfg.heartbeatMs, cfg.idleTimeoutMs);
  return new CoarseScheduler(Math.min(250, Math.max(5, Math.floor(shortest / 20))));
}

/** Status class or failure kind of an upstream outcome, for the per-route counter. */
function upstreamResult(o: RpcOutcome): string {
  if (o.ok) return '2xx';
  if (o.code === 'UPSTREAM_STATUS') return o.status !== undefined ? `${Math.floor(o.status / 100)}xx` : '5xx';
  return o.code === 'UPSTREAM_TIMEOUT' ? 'timeout' : 'unavailable';
}

function detachReason(err: GatewayError | null): string {
  if (!err) return 'closed';
  switch (err.code) {
    case 'GW_ERR_HEARTBEAT_TIMEOUT':
      return 'heartbeat';
    case 'GW_ERR_SLOW_CONSUMER':
      return 'slow_consumer';
    default:
      return err.bye ?? 'closed';
  }
}

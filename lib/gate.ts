import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import {
  EMPTY,
  NEVER,
  Subject,
  Subscription,
  catchError,
  exhaustMap,
  mergeMap,
  filter,
  firstValueFrom,
  from,
  map,
  merge,
  of,
  takeUntil,
  takeWhile,
  timer,
  Observable,
  type SchedulerLike,
  type Subscriber,
} from 'rxjs';
import { authenticator, type Authenticator } from './auth.js';
import type { GateConfig } from './config.js';
import type { Connection } from './connection.js';
import { GatewayError, isGatewayError } from './errors.js';
import { FrameType, frame, type Frame } from './frame.js';
import { CoarseScheduler } from './coarseScheduler.js';
import { createMetrics, type Metrics } from './metrics.js';
import { QuietWatch } from './ops/idleTimeout.js';
import { paceByCredit } from './ops/paceByCredit.js';
import { requestPool } from './ops/requestPool.js';
import { workerPool, type WorkerPool } from './ops/workerPool.js';
import type { ClusterNode, SessionHolder } from './cluster/clusterNode.js';
import { EventStream } from './cluster/eventStream.js';
import type { EndReason, Fence, PushResult as StoredPush } from './cluster/redisSessions.js';
import type { KeptPush } from './session/pushBuffer.js';
import { PUSH_IDS_MIN, PushIds } from './session/pushIds.js';
import { Session, newResumeToken } from './session/session.js';
import { childTraceparent } from './trace.js';
import { MemorySessionStore, type SessionStore } from './session/sessionStore.js';
import { gotBackendClient, type BackendClient, type BackendEvent } from './streams/backend.js';
import { EventQueue } from './streams/events.js';
import { tcpConnection$, wsConnection$, type Admission } from './streams/listeners.js';
import { undiciRpcClient, type RpcClient } from './streams/rpcClient.js';
import { upstreamCall$, type RpcOutcome, type UpstreamCallConfig } from './streams/upstream.js';
import { COMPRESS_MIN_BYTES, errorFrame, inboundBody, jsonFrame, outboundFrame, parseHello, type Hello } from './wire.js';
import { Link, type ConnState, type RequestJob } from './link.js';

export type { RequestJob } from './link.js';

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

export interface PushResult {
  seq: number;
  status: 'sent' | 'buffered';
  /** Set when a push with this `id` was already stored: nothing was stored or sent again. */
  duplicate?: true;
}

export interface PlayerInfo {
  playerId: string;
  sessionId: string;
  state: 'online' | 'detached';
  pushSeq: number;
  buffered: number;
  gateId: string;
}

/** One live gate as /v1/gates and /v1/stats list it. */
export interface GateFigures {
  gateId: string;
  /** Its member id in the cluster (`<gateId>~<hex>`, new at each start); the gateId on a single node. */
  member: string;
  pid: number;
  startedAt: number;
  tcp: string | null;
  ws: string | null;
  api: string | null;
  connections: number;
  /** Sessions held here (online, or detached from here). */
  sessions: number;
}

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
}

/** Backoff for upstream retries: 50 ms doubling to 1 s (with equal jitter). */
const RPC_BACKOFF = { baseBackoffMs: 50, maxBackoffMs: 1_000 };
/** Cluster mode: most pushes of one batch script call (each call keeps Redis busy about 1 ms per 1,000). */
const PUSH_MANY_CHUNK = 1_000;
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
  readonly metrics: Metrics;
  readonly store: SessionStore = new MemorySessionStore();
  readonly pool: WorkerPool;
  readonly events: EventQueue | null;
  /** Cluster mode's Redis side, or null on a single node. */
  readonly cluster: ClusterNode | null;
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
  private readonly rpc: RpcClient | null;
  private readonly backend: BackendClient | null;
  private readonly auth: Authenticator;
  private readonly admission: Admission;
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
  /** The /rpc call policy, built once (not per request). */
  private readonly upstreamCfg: UpstreamCallConfig;
  private readonly idleScheduler: SchedulerLike;
  /** @internal The clock of HELLO and heartbeat deadlines (and, by default, of session idle). */
  readonly deadlineScheduler: SchedulerLike;
  private readonly extraConnections$: Observable<Connection>;

  constructor(
    readonly cfg: GateConfig,
    deps: GateDeps,
  ) {
    this.log = deps.logger.child({ gateId: cfg.gateId });
    this.metrics = createMetrics(cfg.gateId, {
      sessions: () => this.sessionCounts(),
      queued: () => Math.max(0, this.depth - this.pool.busy),
      busyWorkers: () => this.pool.busy,
      eventsQueued: () => this.events?.length ?? 0,
      refused: () => this.admission.refused,
    });
    this.pool = workerPool({ concurrency: cfg.workers });
    this.random = deps.random ?? Math.random;
    // Every request arms an attempt timeout that almost never fires: bucketed timers (at most 5%
    // late) cost a small object each instead of a Node timer. Backoff waits stay precise.
    const upstreamClock = new CoarseScheduler(Math.min(250, Math.max(1, Math.floor(cfg.upstreamTimeoutMs / 20))));
    this.upstreamCfg = { timeoutMs: cfg.upstreamTimeoutMs, retries: cfg.upstreamRetries, ...RPC_BACKOFF, random: this.random, timeoutScheduler: upstreamClock };
    // Link and session deadlines are many and long: bucketed timers, at most 5% late.
    const shortest = Math.min(cfg.helloTimeoutMs, 3 * cfg.heartbeatMs, cfg.idleTimeoutMs);
    this.deadlineScheduler = new CoarseScheduler(Math.min(250, Math.max(5, Math.floor(shortest / 20))));
    this.idleScheduler = deps.idleScheduler ?? this.deadlineScheduler;
    this.extraConnections$ = deps.connections$ ?? EMPTY;
    this.cluster = deps.cluster ?? null;
    this.rpc = deps.rpc ?? (cfg.upstream ? undiciRpcClient({ baseUrl: cfg.upstream, connections: cfg.workers, maxBody: cfg.maxFrame }) : null);
    this.backend =
      deps.backend !== undefined
        ? deps.backend
        : cfg.upstream
          ? gotBackendClient({ baseUrl: cfg.upstream, gateId: cfg.gateId, timeoutMs: cfg.upstreamTimeoutMs, retries: cfg.upstreamRetries })
          : null;
    const poster = this.backend;
    this.clusterEvents =
      this.cluster && poster
        ? new EventStream(this.cluster.sessions, (batch) => poster.postEvents(batch), { batchMax: cfg.eventsBatchMax }, (err) =>
            this.log.warn({ err: (err as Error).message }, 'backend /events failed (cluster stream); retrying'),
          )
        : null;
    this.auth = authenticator(cfg.auth, { backend: this.backend, jwtSecret: cfg.jwtSecret, gateId: cfg.gateId });
    this.admission = { open: 0, max: cfg.maxConnections, refused: 0 };
    const backend = this.backend;
    // Cluster mode: the scripts write the events into Redis and one member posts them (clusterEvents).
    this.events = backend && !this.cluster
      ? new EventQueue((batch) => backend.postEvents(batch), { batchMax: cfg.eventsBatchMax, queueMax: cfg.eventsQueueMax, baseBackoffMs: cfg.eventsBackoffMs, maxBackoffMs: cfg.eventsBackoffMaxMs }, (err, attempt) =>
          this.log.warn({ err: (err as Error).message, attempt, queued: this.events?.length }, 'backend /events failed; retrying'),
        )
      : null;
  }

  /** Binds the listeners and starts every pipeline; resolves once all listeners are bound. */
  async start(): Promise<void> {
    const cfg = this.cfg;
    const limits = { maxFrame: cfg.maxFrame, outboundMax: cfg.outboundMax };
    const tls = cfg.tlsCert && cfg.tlsKey ? { cert: cfg.tlsCert, key: cfg.tlsKey } : null;
    const bound: Promise<void>[] = [];
    let failStart: (e: unknown) => void = () => undefined;
    const failed = new Promise<never>((_, reject) => (failStart = reject));
    const listener = (kind: 'tcp' | 'ws'): Observable<Connection> => {
      const at = cfg[kind];
      if (!at) return EMPTY;
      let onListening: (a: string) => void = () => undefined;
      bound.push(new Promise<void>((resolve) => (onListening = (a) => ((this.addresses[kind] = a), resolve()))));
      const make = kind === 'tcp' ? tcpConnection$ : wsConnection$;
      return make({ at, tls, limits, admission: this.admission, nextId: () => this.nextConnId++, onListening: (a) => onListening(a) }).pipe(
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
        reject: (j) => ({ job: j, outcome: { ok: false, code: 'OVERLOADED', message: `request queue is full (--queue-max ${cfg.queueMax})` } }),
        fail: (j, e) => ({ job: j, outcome: { ok: false, code: 'UPSTREAM_UNAVAILABLE', message: String(e) } }),
        pool: this.pool,
        playerConcurrency: cfg.playerConcurrency,
        queueMax: cfg.queueMax,
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
    // Redis first: a member that cannot reach it must not accept clients it cannot log in.
    if (this.cluster) await this.cluster.start(this.holder);
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
      sessions: this.store.size,
    };
  }

  // ---------------------------------------------------------------- connections

  /**
   * One connection's frames: watched for 3× heartbeat silence and for a HELLO within
   * --hello-timeout, dispatched frame by frame; emits the REQUEST jobs it admits for upstream.
   * Every error ends in a BYE for this connection only.
   */
  private openLink(conn: Connection): void {
    this.metrics.connections.inc({ transport: conn.transport });
    this.log.info({ connId: conn.id, transport: conn.transport, remote: conn.remoteAddress }, 'connection opened');
    new Link(this, conn, this.jobSink).start();
  }

  /** @internal */
  closeWith(conn: Connection, err: GatewayError): void {
    this.log.info({ connId: conn.id, code: err.code, reason: err.message }, 'closing connection');
    conn.close(err);
  }

  /** @internal */
  connectionEnded(conn: Connection, st: ConnState, caught: GatewayError | null): void {
    this.metrics.connections.dec({ transport: conn.transport });
    // A link the transport closed itself (slow consumer inside send) says why on the connection.
    const err = caught ?? conn.closedWith;
    if (err) {
      this.metrics.closes.inc({ code: err.bye ?? err.code });
      if (err.bye === 'protocol_error') this.metrics.protocolErrors.inc({ code: err.code });
      if (err.code === 'GW_ERR_SLOW_CONSUMER') {
        this.metrics.slowConsumers.inc();
        this.log.info({ connId: conn.id, playerId: st.session?.playerId, sessionId: st.session?.sessionId }, 'slow consumer dropped');
      }
    }
    conn.close(null);
    const s = st.session;
    if (s && s.conn === conn && s.state === 'online') this.detach(s, detachReason(err));
    this.log.info({ connId: conn.id, playerId: s?.playerId, sessionId: s?.sessionId }, 'connection closed');
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
      case FrameType.HELLO:
        if (st.phase !== 'hello') throw new GatewayError('GW_ERR_FRAME_UNEXPECTED', 'second HELLO on one connection');
        st.phase = 'authing';
        st.hello = parseHello(f.body);
        this.login(conn, st, st.hello).catch((e: unknown) => {
          // Redis away: the client is told so (and to try again), not that its login was refused.
          if (isGatewayError(e, 'GW_ERR_CLUSTER_UNAVAILABLE')) conn.send(errorFrame(0, 0, 'CLUSTER_UNAVAILABLE', e.message));
          this.closeWith(conn, isGatewayError(e) ? e : new GatewayError('GW_ERR_AUTH_FAILED', `login failed: ${(e as Error)?.message ?? String(e)}`));
        });
        return null;
      case FrameType.REQUEST:
        return this.onRequest(conn, st, f);
      case FrameType.ACK:
        if (st.session && st.phase === 'online') {
          const upTo = Math.min(f.seq, st.session.pushSeq);
          st.session.buffer.ack(upTo);
          this.cluster?.ack(st.session, upTo);
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
    s.touch();
    this.cluster?.touch(s);
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
          this.sendAnswer(s, conn, v.answer);
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
    const fence = s.fence;
    if (this.cluster && fence !== null && f.seq !== 0) {
      // Asked now, in arrival order on one Redis connection; the job waits for it in the pool.
      const admission = this.cluster.sessions.reqBegin(fence, f.seq, this.cfg.requestWindow).catch((e: unknown) => {
        this.log.warn({ sessionId: s.sessionId, seq: f.seq, err: (e as Error).message }, 'cluster request window unavailable; the local window decides');
        return null;
      });
      return { session: s, route: f.route, seq: f.seq, body, traceparent: st.hello?.traceparent, admission, fence };
    }
    return { session: s, route: f.route, seq: f.seq, body, traceparent: st.hello?.traceparent };
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
    if (code === 'logout' && s && s.conn === conn) this.endSession(s, 'logout', null);
    conn.close(null);
  }

  // ---------------------------------------------------------------- login and sessions

  private async login(conn: Connection, st: ConnState, hello: Hello): Promise<void> {
    const r = hello.resume;
    if (r) {
      if (this.cluster) {
        if (await this.resumeFromCluster(this.cluster, conn, st, r, hello.compress)) return;
      } else {
        const s = this.store.bySession(r.sessionId);
        if (s && s.state !== 'ended' && sameSecret(s.resumeToken, r.resumeToken)) {
          this.resume(conn, st, s, r.lastSeq, hello.compress);
          return;
        }
      }
      this.metrics.resumes.inc({ result: 'fresh' });
    }
    // The id is chosen now so that POST /connect (§3) names the session this login will create.
    const sessionId = randomUUID();
    const res = await this.auth({ token: hello.token, sessionId, remoteAddress: conn.remoteAddress });
    if (!res.ok) {
      this.log.info({ connId: conn.id, reason: res.reason }, 'login refused');
      throw new GatewayError('GW_ERR_AUTH_FAILED', res.reason);
    }
    if (!conn.isOpen) return; // the link went away while the backend was deciding
    const resumeToken = newResumeToken();
    let fence: Fence | null = null;
    let replacedElsewhere: string | null = null;
    if (this.cluster) {
      // Stored first: the login is the cluster's (it replaces the player's session on any gate).
      const c = this.cluster;
      c.attaching(sessionId);
      try {
        const lr = await c.sessions.login({ playerId: res.playerId, sessionId, resumeToken });
        fence = lr.fence;
        replacedElsewhere = lr.replaced?.sessionId ?? null;
      } catch (e) {
        c.abandon(sessionId);
        throw clusterUnavailable(e);
      }
    }
    const old = this.store.byPlayer(res.playerId);
    const replaced = new GatewayError('GW_ERR_REPLACED', 'logged in elsewhere');
    // Cluster mode: the login script ended it in Redis already (and wrote its event): only the local part.
    if (old && fence !== null) this.dropLocal(old, replaced);
    else if (old) this.endSession(old, 'replaced', replaced);
    const s = new Session({ playerId: res.playerId, conn, bufferMax: this.cfg.bufferMax, bufferMaxBytes: this.cfg.bufferMaxBytes, requestWindow: this.cfg.requestWindow, requestWindowBytes: this.cfg.requestWindowBytes, compress: hello.compress, sessionId, resumeToken });
    s.fence = fence;
    this.store.add(s);
    st.session = s;
    st.phase = 'online';
    this.watchIdle(s);
    this.sendWelcome(conn, s, false, false);
    this.emit('online', s);
    this.log.info({ connId: conn.id, playerId: s.playerId, sessionId: s.sessionId, replaced: !!old || replacedElsewhere !== null }, 'login');
    this.cluster?.attached(s);
    // The link went away while Redis answered: the session stays, detached, for a resume.
    if (!conn.isOpen && s.conn === conn) this.detach(s, 'closed');
  }

  /**
   * Cluster mode's resume: Redis moves the session here whichever gate held it, and returns the
   * kept pushes after lastSeq. False when Redis knows no such session (or the token is wrong): a
   * fresh login follows, as on a single node.
   */
  private async resumeFromCluster(c: ClusterNode, conn: Connection, st: ConnState, r: NonNullable<Hello['resume']>, compress: boolean): Promise<boolean> {
    c.attaching(r.sessionId);
    const pushes: KeptPush[] = [];
    let res;
    try {
      res = await c.sessions.resume(r);
      if (res.kind === 'ok') {
        pushes.push(...res.replay);
        // Later pages (a replay longer than one page; at most --buffer-max pushes in all).
        for (let more = res.more; more; ) {
          const page = await c.sessions.range(res.fence, pushes.at(-1)?.seq ?? res.upTo);
          if (page.kind !== 'ok') throw new GatewayError('GW_ERR_REPLACED', 'session resumed on another connection');
          pushes.push(...page.pushes);
          more = page.pushes.length > 0 && (pushes.at(-1)?.seq ?? 0) < page.pushSeq;
        }
      }
    } catch (e) {
      c.abandon(r.sessionId);
      throw isGatewayError(e) ? e : clusterUnavailable(e);
    }
    if (res.kind !== 'ok') {
      c.abandon(r.sessionId);
      return false;
    }
    // Held here already (the same gate, an older link or a detached copy): that copy lets go.
    const old = this.store.bySession(r.sessionId);
    if (old) this.dropLocal(old, old.conn && old.conn !== conn ? new GatewayError('GW_ERR_REPLACED', 'session resumed on another connection') : null, true);
    const s = new Session({ playerId: res.fence.playerId, conn, bufferMax: this.cfg.bufferMax, bufferMaxBytes: this.cfg.bufferMaxBytes, requestWindow: this.cfg.requestWindow, requestWindowBytes: this.cfg.requestWindowBytes, compress, sessionId: r.sessionId, resumeToken: r.resumeToken });
    s.fence = res.fence;
    s.pushSeq = res.pushSeq;
    for (const p of pushes) s.buffer.add(p);
    this.store.add(s);
    st.session = s;
    st.phase = 'online';
    this.watchIdle(s);
    this.sendWelcome(conn, s, true, res.gap);
    s.sentUpTo = res.upTo;
    this.metrics.resumes.inc({ result: 'resumed' });
    this.pump(s);
    this.log.info({ connId: conn.id, playerId: s.playerId, sessionId: s.sessionId, lastSeq: r.lastSeq, gap: res.gap, from: res.previous.member }, 'session resumed');
    c.attached(s);
    if (!conn.isOpen && s.conn === conn) this.detach(s, 'closed');
    return true;
  }

  private resume(conn: Connection, st: ConnState, s: Session, lastSeq: number, compress: boolean): void {
    const prev = s.conn;
    if (prev && prev !== conn) {
      // The old link is still attached (half-open): the resume wins, the old link is told why.
      s.conn = null;
      this.closeWith(prev, new GatewayError('GW_ERR_REPLACED', 'session resumed on another connection'));
    }
    // gap: some push after lastSeq is gone (dropped, or ACKed earlier by a client that has since
    // lost it). A lastSeq past the newest push claims pushes never sent: taken as the newest.
    const upTo = Math.min(lastSeq, s.pushSeq);
    const gap = s.buffer.gapAfter(upTo);
    s.buffer.ack(upTo);
    s.conn = conn;
    s.compress = compress;
    s.state = 'online';
    st.session = s;
    st.phase = 'online';
    this.sendWelcome(conn, s, true, gap);
    s.sentUpTo = upTo;
    s.pumping = false; // a replay to an earlier link, if any, ended with that link
    this.metrics.resumes.inc({ result: 'resumed' });
    this.pump(s);
    this.emit('resumed', s);
    this.log.info({ connId: conn.id, playerId: s.playerId, sessionId: s.sessionId, lastSeq, gap }, 'session resumed');
  }

  private sendWelcome(conn: Connection, s: Session, resumed: boolean, gap: boolean): void {
    conn.send(
      jsonFrame(FrameType.WELCOME, 0, {
        playerId: s.playerId,
        sessionId: s.sessionId,
        resumeToken: s.resumeToken,
        gateId: this.cfg.gateId,
        heartbeatMs: this.cfg.heartbeatMs,
        resumed,
        gap,
        lastSeq: s.pushSeq,
      }),
    );
  }

  /** The session's idle clock: --idle-timeout without a REQUEST ends it (BYE idle). */
  /** Ends a session whose idle watch expired (one handler for every session). */
  private readonly onIdle = (s: Session, e: GatewayError): void => this.endSession(s, 'idle', e);

  private watchIdle(s: Session): void {
    s.idle = new QuietWatch(this.cfg.idleTimeoutMs, 'GW_ERR_IDLE_TIMEOUT', this.idleScheduler, this.onIdle, s);
    s.idle.arm();
  }

  private detach(s: Session, reason: string): void {
    s.conn = null;
    s.state = 'detached';
    this.emit('detached', s, reason);
    this.log.info({ playerId: s.playerId, sessionId: s.sessionId, reason }, 'session detached');
    if (this.cluster && s.fence) {
      // Stored off the request path; a session that moved or ended meanwhile is let go here.
      const f = s.fence;
      this.cluster.sessions.detach(f, reason).then(
        (r) => {
          if (r.kind !== 'ok' && s.fence === f) this.dropLocal(s, null, r.kind === 'fenced');
        },
        (e: unknown) => this.log.warn({ sessionId: s.sessionId, err: (e as Error).message }, 'detach not stored (Redis away): a resume anywhere still takes the session over'),
      );
    }
  }

  /**
   * Lets a session go here, and only here: its link (if any) is closed with `err`. No store
   * call and no event: the cluster already moved or ended it (or ends it next). `moved`: it lives
   * on at another holder.
   */
  private dropLocal(s: Session, err: GatewayError | null, moved = false): void {
    if (s.state === 'ended') return;
    s.state = 'ended';
    s.moved = moved;
    this.store.remove(s);
    s.endActivity();
    const conn = s.conn;
    s.conn = null;
    if (conn) {
      if (err) this.closeWith(conn, err);
      else conn.close(null);
    }
  }

  /** What cluster notices may do to this gate's sessions. */
  private readonly holder: SessionHolder = {
    local: (sessionId) => this.store.bySession(sessionId),
    deliver: (s, p) => {
      s.pushSeq = p.seq;
      const dropped = s.buffer.add(p);
      if (dropped > 0) this.metrics.pushDrops.inc(dropped);
      this.sendPush(s, p.seq, p.route, p.body);
    },
    drop: (s, err, moved) => this.dropLocal(s, err, moved),
    answered: (s, seq, answer) => this.answered(s, seq, answer),
    release: (s) => {
      // Closed without a BYE: the session detaches, and the client's resume learns the rest.
      if (s.conn) s.conn.close(null);
    },
    all: () => this.store.all(),
    figures: () => {
      const st = this.stats();
      return { gateId: this.cfg.gateId, pid: process.pid, startedAt: this.startedAt, tcp: this.addresses.tcp ?? '', ws: this.addresses.ws ?? '', api: this.addresses.api ?? '', connections: st.connections, sessions: st.sessions, online: st.online, detached: st.detached };
    },
  };

  /** Ends a session for good: its link (if any) gets the BYE of `err`, the backend an `offline` event. */
  endSession(s: Session, reason: string, err: GatewayError | null): void {
    if (s.state === 'ended') return;
    this.dropLocal(s, err);
    this.log.info({ playerId: s.playerId, sessionId: s.sessionId, reason }, reason === 'kicked' ? 'kick' : 'session ended');
    const f = s.fence;
    if (!this.cluster || f === null) {
      this.emit('offline', s, reason);
      return;
    }
    // Ended in Redis (with its event) if this gate still holds it; fenced otherwise: it moved, and lives on.
    this.cluster.sessions
      .end(f, reason as EndReason)
      .catch((e: unknown) => this.log.warn({ sessionId: s.sessionId, reason, err: (e as Error).message }, 'session end not stored (Redis away)'));
  }

  /** Queues a backend event (single node; in cluster mode the scripts that made the change wrote it). */
  private emit(type: BackendEvent['type'], s: Session, reason?: string): void {
    if (!this.events) return;
    const ev: BackendEvent =
      reason === undefined
        ? { type, playerId: s.playerId, sessionId: s.sessionId, gateId: this.cfg.gateId, at: Date.now() }
        : { type, playerId: s.playerId, sessionId: s.sessionId, gateId: this.cfg.gateId, reason, at: Date.now() };
    this.events.enqueue(ev);
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
    const traceparent = childTraceparent(j.traceparent);
    headers.traceparent = traceparent;
    const t0 = performance.now();
    return upstreamCall$(rpc, { route: j.route, body: j.body, headers }, this.upstreamCfg, (outcome): Answer => {
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
    this.metrics.countRequest('settled' in a ? a.result : a.outcome.ok ? 'ok' : a.outcome.code.toLowerCase()).inc();
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
      if (s.conn) this.sendAnswer(s, s.conn, settled);
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
        this.forgetInCluster(job);
        return;
      }
    }
    s.window.complete(job.seq, answer);
    if (s.conn) this.sendAnswer(s, s.conn, answer);
    // Stored for the cluster after the answer went out (off the latency path).
    if (a.ran && this.cluster)
      this.cluster.sessions
        .reqFinish(a.ran, job.seq, answer)
        .catch((e: unknown) => this.log.warn({ sessionId: s.sessionId, seq: job.seq, err: (e as Error).message }, 'request outcome not stored in Redis: a re-send after a move may run it again'));
  }

  /** A job refused before it ran (OVERLOADED): if the cluster window recorded it as running here, it did not run. */
  private forgetInCluster(job: RequestJob): void {
    const c = this.cluster;
    const f = job.fence;
    if (!c || !job.admission || !f) return;
    void job.admission.then((v) => (v?.kind === 'new' ? c.sessions.reqFinish(f, job.seq, null) : false)).catch(() => undefined);
  }

  /** Cluster notice: the answer of a REQUEST this session's client re-sent here while another gate ran it. */
  private answered(s: Session, seq: number, answer: Frame | 'unknown' | null): void {
    if (!s.window.isRunning(seq)) return;
    if (answer === null) {
      // Too large for the notice: read it from the window in Redis.
      const f = s.fence;
      if (!f || !this.cluster) return;
      this.cluster.sessions.reqBegin(f, seq, this.cfg.requestWindow).then(
        (v) => {
          if (v.kind === 'done') this.answered(s, seq, v.answer);
          else if (v.kind === 'outcome_unknown') this.answered(s, seq, 'unknown');
        },
        (e: unknown) => this.log.warn({ sessionId: s.sessionId, seq, err: (e as Error).message }, 'stored answer not read'),
      );
      return;
    }
    const f =
      answer === 'unknown'
        ? errorFrame(seq, 0, 'OUTCOME_UNKNOWN', 'the gate running this request died mid-call: whether the backend ran it is unknown (x-request-id / Idempotency-Key name it)')
        : { ...answer, seq };
    s.window.complete(seq, f);
    if (s.conn) this.sendAnswer(s, s.conn, f);
  }

  /** RESPONSE bodies are kept uncompressed in the window and deflated per link, as that link asked. */
  private sendAnswer(s: Session, conn: Connection, answer: Frame): void {
    // Only a RESPONSE the client wants deflated needs a new frame; the rest go out as kept.
    const deflate = s.compress && answer.type === FrameType.RESPONSE && answer.body.length > COMPRESS_MIN_BYTES;
    conn.send(deflate ? outboundFrame(FrameType.RESPONSE, answer.route, answer.seq, answer.body, true) : answer);
  }

  // ---------------------------------------------------------------- push API

  /**
   * `id`: the backend's own id for this push; a second push with it is stored once (a retried
   * POST). Synchronous on a single node; in cluster mode a promise, settled once Redis stored it
   * (rejects with GW_ERR_CLUSTER_UNAVAILABLE when Redis is away: never a receipt for a push not stored).
   */
  push(playerId: string, route: number, body: Buffer, id?: string): PushResult | null | Promise<PushResult | null> {
    if (this.cluster) return this.pushManyToCluster(this.cluster, [{ playerId, route, body, id }]).then((rs) => rs[0] ?? null);
    const s = this.store.byPlayer(playerId);
    return s ? this.pushTo(s, route, body, id) : null;
  }

  /**
   * Several pushes, in order (a batch, a broadcast page): synchronous on a single node; in
   * cluster mode one Redis pipeline (auto-pipelining sends the scripts of one tick as one write).
   */
  pushMany(items: readonly { playerId: string; route: number; body: Buffer; id?: string | undefined }[]): (PushResult | null)[] | Promise<(PushResult | null)[]> {
    const c = this.cluster;
    if (c) return this.pushManyToCluster(c, items);
    return items.map((p) => this.push(p.playerId, p.route, p.body, p.id) as PushResult | null);
  }

  /** One script call per PUSH_MANY_CHUNK pushes, in order. */
  private async pushManyToCluster(c: ClusterNode, items: readonly { playerId: string; route: number; body: Buffer; id?: string | undefined }[]): Promise<(PushResult | null)[]> {
    const out: (PushResult | null)[] = [];
    for (let i = 0; i < items.length; i += PUSH_MANY_CHUNK) {
      let rs;
      try {
        rs = await c.sessions.pushMany(items.slice(i, i + PUSH_MANY_CHUNK));
      } catch (e) {
        throw clusterUnavailable(e);
      }
      for (const r of rs) out.push(this.receipt(r));
    }
    return out;
  }

  /** The API's receipt for a push Redis stored (null: no session). */
  private receipt(r: StoredPush): PushResult | null {
    if (r.kind !== 'ok') return null;
    if (r.dropped > 0) this.metrics.pushDrops.inc(r.dropped);
    // `sent`: handed to the gate holding the link (its notice had a subscriber).
    const status = r.state === 'online' && (r.notified || r.duplicate) ? 'sent' : 'buffered';
    this.metrics.countPush(r.duplicate ? 'duplicate' : status).inc();
    return r.duplicate ? { seq: r.seq, status, duplicate: true } : { seq: r.seq, status };
  }

  /** Every player with a session, in pages: this gate's (single node) or the cluster's. */
  async *playerPages(): AsyncGenerator<string[]> {
    if (this.cluster) yield* this.cluster.sessions.playerPages();
    else yield [...this.store.all()].map((s) => s.playerId);
  }

  pushTo(s: Session, route: number, body: Buffer, id?: string): PushResult {
    if (id !== undefined) {
      const seen = s.pushIds?.seqOf(id);
      if (seen !== undefined) {
        this.metrics.countPush('duplicate').inc();
        return { seq: seen, status: seen <= s.sentUpTo ? 'sent' : 'buffered', duplicate: true };
      }
    }
    const seq = ++s.pushSeq;
    if (id !== undefined) (s.pushIds ??= new PushIds(Math.max(this.cfg.bufferMax, PUSH_IDS_MIN))).remember(id, seq);
    const dropped = s.buffer.add({ seq, route, body });
    if (dropped > 0) this.metrics.pushDrops.inc(dropped);
    const status = this.sendPush(s, seq, route, body) ? 'sent' : 'buffered';
    this.metrics.countPush(status).inc();
    return { seq, status };
  }

  /** Sends a buffered push on the session's link, unless a replay owns the order; true if it is on its way. */
  private sendPush(s: Session, seq: number, route: number, body: Buffer): boolean {
    if (s.conn === null) return false;
    if (s.pumping) return true; // queued behind the replay: the pump sends it in order
    if (!s.conn.send(outboundFrame(FrameType.PUSH, route, seq, body, s.compress))) return false;
    s.sentUpTo = seq;
    return true;
  }

  /**
   * Replays kept pushes after `sentUpTo` to the session's link, paced by the link: kept pushes
   * go through `paceByCredit` with half of --outbound-max as the budget, and each frame's socket
   * flush credits its bytes back. A healthy client resuming after a long absence is never cut
   * off as a slow consumer by its own replay. Live pushes that arrive meanwhile wait in the
   * buffer (`pumping`) and go out after it, in order.
   */
  private pump(s: Session): void {
    const conn = s.conn;
    if (!conn || s.pumping) return;
    s.pumping = true;
    // Adapter from socket flush callbacks to the credit stream; it lives as long as this replay.
    const credit = new Subject<number>();
    from(s.buffer.after(s.sentUpTo))
      .pipe(
        paceByCredit(credit, { budget: this.cfg.outboundMax >> 1, size: (p) => p.body.length }),
        // A link that went away (or a session resumed elsewhere) ends this replay; so would a
        // push already sent, which cannot happen while the replay owns the order.
        takeWhile((p) => s.conn === conn && p.seq > s.sentUpTo),
      )
      .subscribe({
        next: (p) => {
          const f = outboundFrame(FrameType.PUSH, p.route, p.seq, p.body, s.compress);
          if (!conn.send(f, () => credit.next(f.body.length))) return;
          s.sentUpTo = p.seq;
          this.metrics.replays.inc();
        },
        complete: () => {
          if (s.conn !== conn) return; // a newer link owns the session (and its own replay)
          s.pumping = false;
          // Pushes that arrived during the replay are in the buffer: send them, in order.
          if (s.buffer.newest > s.sentUpTo) this.pump(s);
        },
      });
  }

  kick(playerId: string, reason: string | undefined): boolean | Promise<boolean> {
    if (this.cluster) return this.kickInCluster(this.cluster, playerId, reason);
    const s = this.store.byPlayer(playerId);
    if (!s) return false;
    this.endSession(s, 'kicked', new GatewayError('GW_ERR_KICKED', reason ?? 'kicked by the backend'));
    return true;
  }

  /** Ends the player's session wherever it is; the gate holding it closes the link (BYE kicked). */
  private async kickInCluster(c: ClusterNode, playerId: string, reason: string | undefined): Promise<boolean> {
    let r;
    try {
      r = await c.sessions.end({ playerId }, 'kicked', reason);
    } catch (e) {
      throw clusterUnavailable(e);
    }
    if (r.kind !== 'ok') return false;
    const local = this.store.bySession(r.sessionId);
    if (local) this.dropLocal(local, new GatewayError('GW_ERR_KICKED', reason ?? 'kicked by the backend'));
    this.log.info({ playerId, sessionId: r.sessionId, holder: r.owner }, 'kick');
    return true;
  }

  /** The player's session wherever it is: this gate's (single node), or from Redis (cluster mode). */
  findPlayer(playerId: string): PlayerInfo | null | Promise<PlayerInfo | null> {
    if (this.cluster) {
      return this.cluster.sessions.info(playerId).then(
        (i) => (i ? { playerId, sessionId: i.sessionId, state: i.state, pushSeq: i.pushSeq, buffered: i.kept, gateId: i.holder ? gateIdOf(i.holder) : '' } : null),
        (e: unknown) => {
          throw clusterUnavailable(e);
        },
      );
    }
    return this.player(playerId);
  }

  /** The player's session if this gate holds it. */
  player(playerId: string): PlayerInfo | null {
    const s = this.store.byPlayer(playerId);
    if (!s || s.state === 'ended') return null;
    return { playerId: s.playerId, sessionId: s.sessionId, state: s.state, pushSeq: s.pushSeq, buffered: s.buffer.size, gateId: this.cfg.gateId };
  }

  /** Sessions by state and the pushes they keep: one pass, for /v1/stats and /metrics. */
  private sessionCounts(): { online: number; detached: number; buffered: number } {
    let online = 0;
    let buffered = 0;
    for (const s of this.store.all()) {
      if (s.state === 'online') online++;
      buffered += s.buffer.size;
    }
    return { online, detached: this.store.size - online, buffered };
  }

  stats() {
    const { online, detached } = this.sessionCounts();
    return {
      gateId: this.cfg.gateId,
      connections: this.admission.open,
      sessions: this.store.size,
      online,
      detached,
      inflight: this.pool.busy,
      queued: Math.max(0, this.depth - this.pool.busy),
      refused: this.admission.refused,
      eventsQueued: this.events?.length ?? 0,
    };
  }

  /**
   * /v1/stats: this gate's counts; in cluster mode also every live gate's (from their beats) and
   * the totals (CONTRACT §5).
   */
  statsAll(): ReturnType<Gate['stats']> | Promise<ReturnType<Gate['stats']> & { gates: GateFigures[]; cluster: { connections: number; sessions: number } }> {
    if (!this.cluster) return this.stats();
    return this.gates().then((gates) => ({
      ...this.stats(),
      gates,
      cluster: { connections: gates.reduce((n, g) => n + g.connections, 0), sessions: gates.reduce((n, g) => n + g.sessions, 0) },
    }));
  }

  /** /v1/gates: the live gates of the cluster (this one alone on a single node). */
  async gates(): Promise<GateFigures[]> {
    if (!this.cluster) {
      const st = this.stats();
      return [{ gateId: this.cfg.gateId, member: this.cfg.gateId, pid: process.pid, startedAt: this.startedAt, ...this.addresses, connections: st.connections, sessions: st.sessions }];
    }
    let ms;
    try {
      ms = await this.cluster.members();
    } catch (e) {
      throw clusterUnavailable(e);
    }
    return ms.map(({ member, fields: f }) => ({
      gateId: f.gateId ?? gateIdOf(member),
      member,
      pid: Number(f.pid ?? 0),
      startedAt: Number(f.startedAt ?? 0),
      tcp: f.tcp || null,
      ws: f.ws || null,
      api: f.api || null,
      connections: Number(f.connections ?? 0),
      sessions: Number(f.sessions ?? 0),
    }));
  }

  // ---------------------------------------------------------------- shutdown

  /** Cluster shutdown of one session: BYE shutdown to its link, detached in Redis, `detached` event. */
  private async detachForShutdown(s: Session): Promise<void> {
    const f = s.fence;
    const conn = s.conn;
    const wasOnline = s.state === 'online';
    s.state = 'ended'; // nothing here acts on it any more; Redis keeps it for a resume elsewhere
    this.store.remove(s);
    s.endActivity();
    s.conn = null;
    if (conn) this.closeWith(conn, new GatewayError('GW_ERR_SHUTDOWN'));
    if (!wasOnline || f === null || !this.cluster) return;
    try {
      await this.cluster.sessions.detach(f, 'shutdown');
    } catch (e) {
      this.log.warn({ sessionId: s.sessionId, err: (e as Error).message }, 'detach at shutdown not stored (Redis away)');
    }
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
    if (this.cluster) {
      // Cluster mode (§5): sessions detach instead of ending, to resume on another gate.
      const held = [...this.store.all()];
      await Promise.allSettled(held.map((s) => this.detachForShutdown(s)));
      step(`sessions detached (${held.length})`);
    } else {
      for (const s of [...this.store.all()]) this.endSession(s, 'shutdown', new GatewayError('GW_ERR_SHUTDOWN'));
      step('sessions ended');
    }
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
    await this.cluster?.close();
    await this.rpc?.close();
    this.backend?.close();
  }
}

/** A Redis failure as the error clients and the push API see (a GatewayError passes through). */
function clusterUnavailable(e: unknown): GatewayError {
  if (isGatewayError(e)) return e;
  return new GatewayError('GW_ERR_CLUSTER_UNAVAILABLE', `Redis unavailable: ${(e as Error)?.message ?? String(e)}`, undefined, { cause: e });
}

/** The gateId part of a member id (`<gateId>~<hex>`). */
export const gateIdOf = (member: string): string => {
  const i = member.lastIndexOf('~');
  return i === -1 ? member : member.slice(0, i);
};

/** Constant-time comparison, so response timing says nothing about a resume token. */
function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
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

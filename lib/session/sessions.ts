// The session layer (split out of gate.ts, which wires the streams): login, resume, detach and
// end; pushes numbered, kept and sent in order; kicks and player lookups. This class is the
// single-node layer, whose sessions live in this process. Cluster mode's layer
// (lib/cluster/clusterSessions.ts) extends it and keeps the same sessions in Redis: the gate and
// the push API talk to either through the same methods, all of which may answer with a promise.
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { Subject, from, takeWhile, type SchedulerLike } from 'rxjs';
import type { Authenticator } from '../auth.js';
import type { ClusterVerdict, Fence } from '../cluster/redisSessions.js';
import type { GateConfig } from '../config.js';
import type { Connection } from '../connection.js';
import { GatewayError } from '../errors.js';
import { FrameType, type Frame } from '../frame.js';
import type { ConnState } from '../link.js';
import type { LogSampler } from '../logSampler.js';
import type { Metrics } from '../metrics.js';
import { QuietWatch } from '../ops/idleTimeout.js';
import { paceByCredit } from '../ops/paceByCredit.js';
import type { BackendEvent } from '../streams/backend.js';
import type { EventQueue } from '../streams/events.js';
import { COMPRESS_MIN_BYTES, jsonFrame, outboundFrame, type Hello } from '../wire.js';
import { PUSH_IDS_MIN, PushIds } from './pushIds.js';
import { Session, newResumeToken } from './session.js';
import { MemorySessionStore, type SessionStore } from './sessionStore.js';

export interface PushResult {
  seq: number;
  status: 'sent' | 'buffered';
  /** Set when a push with this `id` was already stored: nothing was stored or sent again. */
  duplicate?: true;
}

export interface PushItem {
  playerId: string;
  route: number;
  body: Buffer;
  /** The backend's own id for this push: a second push with it is stored once (a retried POST). */
  id?: string | undefined;
}

export interface PlayerInfo {
  playerId: string;
  sessionId: string;
  state: 'online' | 'detached';
  pushSeq: number;
  buffered: number;
  gateId: string;
  /**
   * When the session's last REQUEST arrived, ms since the epoch; null before its first, and in
   * cluster mode whenever the gate asked is not the one holding the session (Redis keeps no such time).
   */
  lastRequestAt: number | null;
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

/** What the session layer needs from the gate that holds it. */
export interface SessionsDeps {
  /** The gate's configuration now (a reload replaces it). */
  readonly cfg: GateConfig;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Session lifecycle lines go through it (--log-sample). */
  readonly sampler: LogSampler;
  readonly auth: Authenticator;
  /** The backend's /events queue (single node); null without a backend or in cluster mode. */
  readonly events: EventQueue | null;
  /** Clock of the session idle timeouts (--idle-timeout). */
  readonly idleScheduler: SchedulerLike;
  /** Closes a link with a BYE (logged, counted by the gate). */
  closeWith(conn: Connection, err: GatewayError): void;
  /** This gate's own figures. */
  figures(): GateFigures & { online: number; detached: number };
}

export class Sessions {
  /** The sessions held in this process (all of them on a single node; those attached here in a cluster). */
  readonly store: SessionStore = new MemorySessionStore();
  protected readonly metrics: Metrics;
  protected readonly log: Logger;
  /** Session lifecycle lines: sampled under a storm (--log-sample). */
  protected readonly note: LogSampler;

  constructor(protected readonly deps: SessionsDeps) {
    this.metrics = deps.metrics;
    this.log = deps.log;
    this.note = deps.sampler;
  }

  /** The gate's configuration now: a reload applies to what reads it from here on. */
  protected get cfg(): GateConfig {
    return this.deps.cfg;
  }

  /**
   * A reload changed the configuration: sessions held here take the new --idle-timeout (measured
   * from their last REQUEST) and the new replay buffer bounds (a lowered bound drops the oldest
   * pushes kept, counted in gate_push_buffer_drops_total).
   */
  reconfigure(prev: GateConfig, next: GateConfig): void {
    const idle = next.idleTimeoutMs !== prev.idleTimeoutMs;
    const bounds = next.bufferMax !== prev.bufferMax || next.bufferMaxBytes !== prev.bufferMaxBytes;
    if (!idle && !bounds) return;
    for (const s of this.store.all()) {
      if (idle) s.idle?.retime(next.idleTimeoutMs);
      if (bounds) {
        const dropped = s.buffer.setBounds(next.bufferMax, next.bufferMaxBytes);
        if (dropped > 0) this.metrics.pushDrops.inc(dropped);
      }
    }
  }

  /** True when sessions are shared with other gates (cluster mode): /v1/stats then lists every gate. */
  get clustered(): boolean {
    return false;
  }

  /** False while the shared store is unreachable (`/readyz`); always true on a single node. */
  get up(): boolean {
    return true;
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}

  // ---------------------------------------------------------------- login and resume

  /**
   * HELLO's second half: a resume of a session this layer knows, or a fresh login (the backend
   * decides who the player is). Throws to end the link with that error.
   */
  async login(conn: Connection, st: ConnState, hello: Hello): Promise<void> {
    const r = hello.resume;
    if (r) {
      if (await this.resume(conn, st, r, hello.compress)) return;
      this.metrics.resumes.inc({ result: 'fresh' });
    }
    // The id is chosen now so that POST /connect (§3) names the session this login will create.
    const sessionId = randomUUID();
    // The remote address is a getpeername syscall: read only by an authenticator that uses it.
    const res = await this.deps.auth({
      token: hello.token,
      sessionId,
      get remoteAddress() {
        return conn.remoteAddress;
      },
    });
    if (!res.ok) {
      if (this.note.on('login refused')) this.log.info({ connId: conn.id, reason: res.reason }, 'login refused');
      throw new GatewayError('GW_ERR_AUTH_FAILED', res.reason);
    }
    if (!conn.isOpen) return; // the link went away while the backend was deciding
    const resumeToken = newResumeToken();
    const claim = await this.claim(res.playerId, sessionId, resumeToken);
    const old = this.store.byPlayer(res.playerId);
    // A claim with a fence ended the old session in the shared store already: only the local part.
    if (old && claim.fence !== null) this.dropLocal(old, new GatewayError('GW_ERR_REPLACED', 'logged in elsewhere'));
    else if (old) this.endSession(old, 'replaced', new GatewayError('GW_ERR_REPLACED', 'logged in elsewhere'));
    const s = this.newSession(conn, res.playerId, sessionId, resumeToken, hello.compress);
    s.fence = claim.fence;
    this.store.add(s);
    st.session = s;
    st.phase = 'online';
    this.watchIdle(s);
    this.sendWelcome(conn, s, false, false);
    this.emit('online', s);
    if (this.note.on('login')) this.log.info({ connId: conn.id, playerId: s.playerId, sessionId: s.sessionId, replaced: !!old || claim.replacedElsewhere }, 'login');
    this.attached(s);
    // The link went away while the store answered: the session stays, detached, for a resume.
    if (!conn.isOpen && s.conn === conn) this.detach(s, 'closed');
  }

  /**
   * Makes the login the player's one session wherever sessions are kept (nothing to do on a
   * single node). `fence`: the generation it is held at in the shared store.
   */
  protected claim(_playerId: string, _sessionId: string, _resumeToken: string): Promise<{ fence: Fence | null; replacedElsewhere: boolean }> {
    return Promise.resolve({ fence: null, replacedElsewhere: false });
  }

  /** A session attached here (login or resume done): the cluster layer starts following it. */
  protected attached(_s: Session): void {}

  protected newSession(conn: Connection, playerId: string, sessionId: string, resumeToken: string, compress: boolean): Session {
    const c = this.cfg;
    return new Session({ playerId, conn, bufferMax: c.bufferMax, bufferMaxBytes: c.bufferMaxBytes, requestWindow: c.requestWindow, requestWindowBytes: c.requestWindowBytes, compress, sessionId, resumeToken });
  }

  /** A resume of a session held here; false (a fresh login follows) when there is none or the token is wrong. */
  protected resume(conn: Connection, st: ConnState, r: NonNullable<Hello['resume']>, compress: boolean): Promise<boolean> {
    const s = this.store.bySession(r.sessionId);
    if (!s || s.state === 'ended' || !sameSecret(s.resumeToken, r.resumeToken)) return Promise.resolve(false);
    const prev = s.conn;
    if (prev && prev !== conn) {
      // The old link is still attached (half-open): the resume wins, the old link is told why.
      s.conn = null;
      this.deps.closeWith(prev, new GatewayError('GW_ERR_REPLACED', 'session resumed on another connection'));
    }
    // gap: some push after lastSeq is gone (dropped, or ACKed earlier by a client that has since
    // lost it). A lastSeq past the newest push claims pushes never sent: taken as the newest.
    const upTo = Math.min(r.lastSeq, s.pushSeq);
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
    if (this.note.on('session resumed')) this.log.info({ connId: conn.id, playerId: s.playerId, sessionId: s.sessionId, lastSeq: r.lastSeq, gap }, 'session resumed');
    return Promise.resolve(true);
  }

  protected sendWelcome(conn: Connection, s: Session, resumed: boolean, gap: boolean): void {
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

  /** Ends a session whose idle watch expired (one handler for every session). */
  private readonly onIdle = (s: Session, e: GatewayError): void => this.endSession(s, 'idle', e);

  /** The session's idle clock: --idle-timeout without a REQUEST ends it (BYE idle). */
  protected watchIdle(s: Session): void {
    s.idle = new QuietWatch(this.cfg.idleTimeoutMs, 'GW_ERR_IDLE_TIMEOUT', this.deps.idleScheduler, this.onIdle, s);
    s.idle.arm();
  }

  // ---------------------------------------------------------------- link events

  /** The client's REQUEST: the session is active (its idle clock starts over). */
  touch(s: Session): void {
    s.touch();
  }

  /** The client's ACK: pushes up to `upTo` need not be kept for a resume. */
  ack(s: Session, upTo: number): void {
    s.buffer.ack(upTo);
  }

  /** Its link went away: the session waits, detached, for a resume (or its idle timeout). */
  detach(s: Session, reason: string): void {
    s.conn = null;
    s.state = 'detached';
    this.emit('detached', s, reason);
    if (this.note.on('session detached')) this.log.info({ playerId: s.playerId, sessionId: s.sessionId, reason }, 'session detached');
  }

  /**
   * Lets a session go here, and only here: its link (if any) is closed with `err`. No store
   * call and no event: the cluster already moved or ended it (or ends it next). `moved`: it lives
   * on at another holder.
   */
  dropLocal(s: Session, err: GatewayError | null, moved = false): void {
    if (s.state === 'ended') return;
    s.state = 'ended';
    s.moved = moved;
    this.store.remove(s);
    s.endActivity();
    const conn = s.conn;
    s.conn = null;
    if (conn) {
      if (err) this.deps.closeWith(conn, err);
      else conn.close(null);
    }
  }

  /** Ends a session for good: its link (if any) gets the BYE of `err`, the backend an `offline` event. */
  endSession(s: Session, reason: string, err: GatewayError | null): void {
    if (s.state === 'ended') return;
    this.dropLocal(s, err);
    const line = reason === 'kicked' ? 'kick' : 'session ended';
    if (this.note.on(line)) this.log.info({ playerId: s.playerId, sessionId: s.sessionId, reason }, line);
    this.ended(s, reason);
  }

  /** A session ended here for good: the backend hears of it. */
  protected ended(s: Session, reason: string): void {
    this.emit('offline', s, reason);
  }

  /** Queues a backend event (single node; in cluster mode the scripts that made the change wrote it). */
  protected emit(type: BackendEvent['type'], s: Session, reason?: string): void {
    const events = this.deps.events;
    if (!events) return;
    const ev: BackendEvent =
      reason === undefined
        ? { type, playerId: s.playerId, sessionId: s.sessionId, gateId: this.cfg.gateId, at: Date.now() }
        : { type, playerId: s.playerId, sessionId: s.sessionId, gateId: this.cfg.gateId, reason, at: Date.now() };
    events.enqueue(ev);
  }

  /** Shutdown (§5): every session ends with BYE shutdown and an `offline` event. Returns the step's name. */
  shutdown(): Promise<string> {
    // One error for every link's BYE: a stack trace each would cost a gate of 100,000 sessions seconds.
    const bye = new GatewayError('GW_ERR_SHUTDOWN');
    for (const s of [...this.store.all()]) this.endSession(s, 'shutdown', bye);
    return Promise.resolve('sessions ended');
  }

  // ---------------------------------------------------------------- requests

  /**
   * The shared store's say on a REQUEST seq, asked in arrival order (cluster mode); undefined
   * on a single node, where the session's own window decides.
   */
  admit(_s: Session, _seq: number): Promise<ClusterVerdict | null> | undefined {
    return undefined;
  }

  /** A REQUEST that ran here under `fence` has its answer (null: it did not run after all). */
  finished(_s: Session, _fence: Fence, _seq: number, _answer: Frame | null): void {}

  /** RESPONSE bodies are kept uncompressed in the window and deflated per link, as that link asked. */
  sendAnswer(s: Session, conn: Connection, answer: Frame): void {
    // Only a RESPONSE the client wants deflated needs a new frame; the rest go out as kept.
    const deflate = s.compress && answer.type === FrameType.RESPONSE && answer.body.length > COMPRESS_MIN_BYTES;
    conn.send(deflate ? outboundFrame(FrameType.RESPONSE, answer.route, answer.seq, answer.body, true) : answer);
  }

  // ---------------------------------------------------------------- pushes

  /**
   * A push to the player's session; null when the player has none. Synchronous here; in
   * cluster mode a promise, settled once Redis stored it (rejects with
   * GW_ERR_CLUSTER_UNAVAILABLE when Redis is away: never a receipt for a push not stored).
   */
  push(playerId: string, route: number, body: Buffer, id?: string): PushResult | null | Promise<PushResult | null> {
    const s = this.store.byPlayer(playerId);
    return s ? this.pushTo(s, route, body, id) : null;
  }

  /** Several pushes, in order (a batch, a broadcast page). */
  pushMany(items: readonly PushItem[]): (PushResult | null)[] | Promise<(PushResult | null)[]> {
    return items.map((p) => {
      const s = this.store.byPlayer(p.playerId);
      return s ? this.pushTo(s, p.route, p.body, p.id) : null;
    });
  }

  /** One push to every session; `count` sees each receipt. */
  broadcast(route: number, body: Buffer, count: (r: PushResult | null) => void): Promise<void> {
    for (const s of [...this.store.all()]) count(this.pushTo(s, route, body));
    return Promise.resolve();
  }

  protected pushTo(s: Session, route: number, body: Buffer, id?: string): PushResult {
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
  protected sendPush(s: Session, seq: number, route: number, body: Buffer): boolean {
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
  protected pump(s: Session): void {
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

  // ---------------------------------------------------------------- kicks and lookups

  /** Ends the player's session (BYE kicked); false when the player has none. */
  kick(playerId: string, reason: string | undefined): boolean | Promise<boolean> {
    const s = this.store.byPlayer(playerId);
    if (!s) return false;
    this.endSession(s, 'kicked', new GatewayError('GW_ERR_KICKED', reason ?? 'kicked by the backend'));
    return true;
  }

  /** The player's session wherever it is (here on a single node; from Redis in cluster mode). */
  findPlayer(playerId: string): PlayerInfo | null | Promise<PlayerInfo | null> {
    return this.player(playerId);
  }

  /** The player's session if this gate holds it. */
  player(playerId: string): PlayerInfo | null {
    const s = this.store.byPlayer(playerId);
    if (!s || s.state === 'ended') return null;
    return { playerId: s.playerId, sessionId: s.sessionId, state: s.state, pushSeq: s.pushSeq, buffered: s.buffer.size, gateId: this.cfg.gateId, lastRequestAt: s.lastRequestAt };
  }

  /** Sessions held here by state and the pushes they keep: one pass, for /v1/stats and /metrics. */
  counts(): { online: number; detached: number; buffered: number } {
    let online = 0;
    let buffered = 0;
    for (const s of this.store.all()) {
      if (s.state === 'online') online++;
      buffered += s.buffer.size;
    }
    return { online, detached: this.store.size - online, buffered };
  }

  /** /v1/gates: the live gates (this one alone on a single node). */
  gates(): Promise<GateFigures[]> {
    const { online: _o, detached: _d, ...self } = this.deps.figures();
    return Promise.resolve([self]);
  }
}

/** Constant-time comparison, so response timing says nothing about a resume token. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

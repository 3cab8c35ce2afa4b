// Cluster mode's session layer: the single-node layer's sessions, kept in Redis. Every change
// is first a fenced script (lib/cluster/redisSessions.ts), then its local part here; notices
// from other members (ClusterNode) reach the sessions through the SessionHolder below. The
// scripts write the backend events, so this layer emits none itself.
import { GatewayError, isGatewayError } from '../errors.js';
import type { GateConfig } from '../config.js';
import type { Connection } from '../connection.js';
import { errorFrame, type Hello } from '../wire.js';
import type { Frame } from '../frame.js';
import type { ConnState } from '../link.js';
import type { KeptPush } from '../session/pushBuffer.js';
import type { Session } from '../session/session.js';
import { Sessions, type GateFigures, type PlayerInfo, type PushItem, type PushResult, type SessionsDeps } from '../session/sessions.js';
import type { ClusterNode, SessionHolder } from './clusterNode.js';
import type { ClusterVerdict, EndReason, Fence, PushResult as StoredPush } from './redisSessions.js';

/** Most pushes of one batch script call (each call keeps Redis busy about 1 ms per 1,000). */
const PUSH_MANY_CHUNK = 1_000;

const OUTCOME_UNKNOWN_MESSAGE = 'the gate running this request died mid-call: whether the backend ran it is unknown (x-request-id / Idempotency-Key name it)';

export class ClusterSessions extends Sessions {
  constructor(
    deps: SessionsDeps,
    readonly node: ClusterNode,
  ) {
    super(deps);
  }

  /** Also the cluster's own copies: the idle sweep's bound and the buffer bounds the scripts enforce. */
  override reconfigure(prev: GateConfig, next: GateConfig): void {
    super.reconfigure(prev, next);
    this.node.reconfigure({ idleTimeoutMs: next.idleTimeoutMs, bufferMax: next.bufferMax, bufferMaxBytes: next.bufferMaxBytes });
  }

  override get clustered(): boolean {
    return true;
  }

  override get up(): boolean {
    return this.node.up;
  }

  /** Redis first: a member that cannot reach it must not accept clients it cannot log in. */
  override start(): Promise<void> {
    return this.node.start(this.holder);
  }

  override close(): Promise<void> {
    return this.node.close();
  }

  // ---------------------------------------------------------------- login and resume

  /** Stored first: the login is the cluster's (it replaces the player's session on any gate). */
  protected override async claim(playerId: string, sessionId: string, resumeToken: string): Promise<{ fence: Fence | null; replacedElsewhere: boolean }> {
    this.node.attaching(sessionId);
    try {
      const lr = await this.node.sessions.login({ playerId, sessionId, resumeToken });
      return { fence: lr.fence, replacedElsewhere: lr.replaced !== null && lr.replaced !== undefined };
    } catch (e) {
      this.node.abandon(sessionId);
      throw clusterUnavailable(e);
    }
  }

  protected override attached(s: Session): void {
    this.node.attached(s);
  }

  /**
   * Redis moves the session here whichever gate held it, and returns the kept pushes after
   * lastSeq. False when Redis knows no such session (or the token is wrong): a fresh login
   * follows, as on a single node.
   */
  protected override async resume(conn: Connection, st: ConnState, r: NonNullable<Hello['resume']>, compress: boolean): Promise<boolean> {
    const c = this.node;
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
      throw clusterUnavailable(e);
    }
    if (res.kind !== 'ok') {
      c.abandon(r.sessionId);
      return false;
    }
    // Held here already (the same gate, an older link or a detached copy): that copy lets go.
    const old = this.store.bySession(r.sessionId);
    if (old) this.dropLocal(old, old.conn && old.conn !== conn ? new GatewayError('GW_ERR_REPLACED', 'session resumed on another connection') : null, true);
    const s = this.newSession(conn, res.fence.playerId, r.sessionId, r.resumeToken, compress);
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
    if (this.note.on('session resumed')) this.log.info({ connId: conn.id, playerId: s.playerId, sessionId: s.sessionId, lastSeq: r.lastSeq, gap: res.gap, from: res.previous.member }, 'session resumed');
    c.attached(s);
    if (!conn.isOpen && s.conn === conn) this.detach(s, 'closed');
    return true;
  }

  // ---------------------------------------------------------------- link events

  override touch(s: Session): void {
    s.touch();
    this.node.touch(s);
  }

  override ack(s: Session, upTo: number): void {
    s.buffer.ack(upTo);
    this.node.ack(s, upTo);
  }

  override detach(s: Session, reason: string): void {
    super.detach(s, reason);
    const f = s.fence;
    if (!f) return;
    // Stored off the request path; a session that moved or ended meanwhile is let go here.
    this.node.sessions.detach(f, reason).then(
      (r) => {
        if (r.kind !== 'ok' && s.fence === f) this.dropLocal(s, null, r.kind === 'fenced');
      },
      (e: unknown) => this.log.warn({ sessionId: s.sessionId, err: (e as Error).message }, 'detach not stored (Redis away): a resume anywhere still takes the session over'),
    );
  }

  /** Ended in Redis (with its event) if this gate still holds it; fenced otherwise: it moved, and lives on. */
  protected override ended(s: Session, reason: string): void {
    const f = s.fence;
    if (f === null) return;
    this.node.sessions
      .end(f, reason as EndReason)
      .catch((e: unknown) => this.log.warn({ sessionId: s.sessionId, reason, err: (e as Error).message }, 'session end not stored (Redis away)'));
  }

  /** Shutdown (§5): sessions detach instead of ending, to resume on another gate. */
  override async shutdown(): Promise<string> {
    const held = [...this.store.all()];
    const bye = new GatewayError('GW_ERR_SHUTDOWN');
    await Promise.allSettled(held.map((s) => this.detachForShutdown(s, bye)));
    return `sessions detached (${held.length})`;
  }

  /** One session at shutdown: BYE shutdown to its link, detached in Redis (its script writes the `detached` event). */
  private async detachForShutdown(s: Session, bye: GatewayError): Promise<void> {
    const f = s.fence;
    const wasOnline = s.state === 'online';
    // Let go here (nothing here acts on it any more); Redis keeps it for a resume elsewhere.
    this.dropLocal(s, bye);
    if (!wasOnline || f === null) return;
    try {
      await this.node.sessions.detach(f, 'shutdown');
    } catch (e) {
      this.log.warn({ sessionId: s.sessionId, err: (e as Error).message }, 'detach at shutdown not stored (Redis away)');
    }
  }

  // ---------------------------------------------------------------- requests

  /** Asked now, in arrival order on one Redis connection; the job waits for it in the pool. */
  override admit(s: Session, seq: number): Promise<ClusterVerdict | null> | undefined {
    const f = s.fence;
    if (f === null) return undefined;
    return this.node.sessions.reqBegin(f, seq, this.cfg.requestWindow).catch((e: unknown) => {
      this.log.warn({ sessionId: s.sessionId, seq, err: (e as Error).message }, 'cluster request window unavailable; the local window decides');
      return null;
    });
  }

  /** Stored for the cluster after the answer went out (off the latency path). */
  override finished(s: Session, fence: Fence, seq: number, answer: Frame | null): void {
    this.node.sessions
      .reqFinish(fence, seq, answer)
      .catch((e: unknown) => this.log.warn({ sessionId: s.sessionId, seq, err: (e as Error).message }, 'request outcome not stored in Redis: a re-send after a move may run it again'));
  }

  /** Cluster notice: the answer of a REQUEST this session's client re-sent here while another gate ran it. */
  private answered(s: Session, seq: number, answer: Frame | 'unknown' | null): void {
    if (!s.window.isRunning(seq)) return;
    if (answer === null) {
      // Too large for the notice: read it from the window in Redis.
      const f = s.fence;
      if (!f) return;
      this.node.sessions.reqBegin(f, seq, this.cfg.requestWindow).then(
        (v) => {
          if (v.kind === 'done') this.answered(s, seq, v.answer);
          else if (v.kind === 'outcome_unknown') this.answered(s, seq, 'unknown');
        },
        (e: unknown) => this.log.warn({ sessionId: s.sessionId, seq, err: (e as Error).message }, 'stored answer not read'),
      );
      return;
    }
    const f = answer === 'unknown' ? errorFrame(seq, 0, 'OUTCOME_UNKNOWN', OUTCOME_UNKNOWN_MESSAGE) : { ...answer, seq };
    s.window.complete(seq, f);
    if (s.conn) this.sendAnswer(s, s.conn, f);
  }

  // ---------------------------------------------------------------- pushes

  override push(playerId: string, route: number, body: Buffer, id?: string): Promise<PushResult | null> {
    return this.pushMany([{ playerId, route, body, id }]).then((rs) => rs[0] ?? null);
  }

  /** One script call per PUSH_MANY_CHUNK pushes, in order (auto-pipelining sends one tick's calls as one write). */
  override async pushMany(items: readonly PushItem[]): Promise<(PushResult | null)[]> {
    const out: (PushResult | null)[] = [];
    for (let i = 0; i < items.length; i += PUSH_MANY_CHUNK) {
      let rs;
      try {
        rs = await this.node.sessions.pushMany(items.length <= PUSH_MANY_CHUNK ? items : items.slice(i, i + PUSH_MANY_CHUNK));
      } catch (e) {
        throw clusterUnavailable(e);
      }
      for (const r of rs) out.push(this.receipt(r));
    }
    return out;
  }

  /** Cluster-wide: every session in Redis, a SCAN page (one pipeline of pushes) at a time. */
  override async broadcast(route: number, body: Buffer, count: (r: PushResult | null) => void): Promise<void> {
    for await (const page of this.node.sessions.playerPages()) for (const r of await this.pushMany(page.map((playerId) => ({ playerId, route, body })))) if (r) count(r);
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

  // ---------------------------------------------------------------- kicks and lookups

  /** Ends the player's session wherever it is; the gate holding it closes the link (BYE kicked). */
  override async kick(playerId: string, reason: string | undefined): Promise<boolean> {
    let r;
    try {
      r = await this.node.sessions.end({ playerId }, 'kicked', reason);
    } catch (e) {
      throw clusterUnavailable(e);
    }
    if (r.kind !== 'ok') return false;
    const local = this.store.bySession(r.sessionId);
    if (local) this.dropLocal(local, new GatewayError('GW_ERR_KICKED', reason ?? 'kicked by the backend'));
    if (this.note.on('kick')) this.log.info({ playerId, sessionId: r.sessionId, holder: r.owner }, 'kick');
    return true;
  }

  override findPlayer(playerId: string): Promise<PlayerInfo | null> {
    return this.node.sessions.info(playerId).then(
      (i) => {
        if (!i) return null;
        // Redis keeps idle times, coalesced and touched at login too: not a REQUEST's time. Only the holder knows that.
        const local = this.store.byPlayer(playerId);
        const lastRequestAt = local && local.sessionId === i.sessionId ? local.lastRequestAt : null;
        return { playerId, sessionId: i.sessionId, state: i.state, pushSeq: i.pushSeq, buffered: i.kept, gateId: i.holder ? gateIdOf(i.holder) : '', lastRequestAt };
      },
      (e: unknown) => {
        throw clusterUnavailable(e);
      },
    );
  }

  /** Every live member, from their beats. */
  override async gates(): Promise<GateFigures[]> {
    let ms;
    try {
      ms = await this.node.members();
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
      const g = this.deps.figures();
      return { gateId: g.gateId, pid: g.pid, startedAt: g.startedAt, tcp: g.tcp ?? '', ws: g.ws ?? '', api: g.api ?? '', connections: g.connections, sessions: g.sessions, online: g.online, detached: g.detached };
    },
  };
}

/** A Redis failure as the error clients and the push API see (a GatewayError passes through). */
export function clusterUnavailable(e: unknown): GatewayError {
  if (isGatewayError(e)) return e;
  return new GatewayError('GW_ERR_CLUSTER_UNAVAILABLE', `Redis unavailable: ${(e as Error)?.message ?? String(e)}`, undefined, { cause: e });
}

/** The gateId part of a member id (`<gateId>~<hex>`). */
export const gateIdOf = (member: string): string => {
  const i = member.lastIndexOf('~');
  return i === -1 ? member : member.slice(0, i);
};

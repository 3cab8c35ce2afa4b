/**
 * This member's side of the cluster (docs/design/cluster.md §1, §4): its two Redis connections
 * (commands, and the subscriber of its notice channel), the session store over the first, and
 * what keeps a held session in step with Redis: notices turned into deliveries, holes filled
 * from the stored list, ACKs coalesced, and the checks that catch a subscriber gone deaf.
 *
 * Redis holds the truth; the gate holds links. A push is numbered and stored by a script, which
 * PUBLISHes it to the member holding the link; that member adds it to the session's local buffer
 * (a cache of the stored list for its link) and sends it. Pub/sub is at-most-once, so every
 * notice is checked against the session's last seq: a jump is a hole, filled with `range`.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { exhaustMap, interval, type Subscription } from 'rxjs';
import { GatewayError } from '../errors.js';
import type { KeptPush } from '../session/pushBuffer.js';
import type { Session, SessionSync } from '../session/session.js';
import { noticeChannel } from './keys.js';
import type { Frame } from '../frame.js';
import { RedisSessions, decodeAnswer, type RedisSessionsConfig } from './redisSessions.js';

/** What a notice asks of the member holding a session. */
export type Notice =
  | { readonly kind: 'push'; readonly sessionId: string; readonly seq: number; readonly push: KeptPush | null }
  | { readonly kind: 'moved'; readonly sessionId: string; readonly gen: number }
  /** A REQUEST's outcome from the gate that ran it (null: too large to inline; 'unknown': that gate died). */
  | { readonly kind: 'answer'; readonly sessionId: string; readonly seq: number; readonly answer: Frame | 'unknown' | null }
  | { readonly kind: 'ended'; readonly sessionId: string; readonly reason: string; readonly message: string };

/** The gate's side: its local sessions and what may be done to them. */
export interface SessionHolder {
  /** The session this member holds under that id, if any. */
  local(sessionId: string): Session | undefined;
  /** Adds a push Redis numbered (seq = the session's last + 1) to the local buffer and sends it. */
  deliver(s: Session, push: KeptPush): void;
  /** A REQUEST re-sent here while another gate ran it has its outcome: answer the client. */
  answered(s: Session, seq: number, answer: Frame | 'unknown' | null): void;
  /**
   * Lets the session go here: its link (if any) is closed with `err`; no store call, no event.
   * `moved`: it lives on at another holder (its requests admitted here still run: their outcome
   * answers the client's re-send there); otherwise it ended.
   */
  drop(s: Session, err: GatewayError | null, moved: boolean): void;
  /** Closes the session's link without a BYE: it detaches, and the client's resume learns the rest. */
  release(s: Session): void;
  /** Every session held here (resync after the subscriber was away). */
  all(): Iterable<Session>;
  /** This member's figures for its beat (/v1/gates, /v1/stats of every gate). */
  figures(): Record<string, string | number>;
}

export interface ClusterNodeConfig extends RedisSessionsConfig {
  /** `--redis` */
  readonly url: string;
  /** How often the subscriber is probed (a PUBLISH to itself), ms. */
  readonly probeEveryMs?: number;
  /** How often this member beats; silent for 3 beats, it is declared dead and reaped. ms. */
  readonly beatMs?: number;
  /** `--idle-timeout`: sessions without a REQUEST this long end cluster-wide, held or not. ms. */
  readonly idleTimeoutMs: number;
  /** A member this one replaces (a --procs worker restarted after it died): reaped at start, not after 3 beats. */
  readonly reapAtStart?: string | null;
}

/** Kept pushes one `range` reads. */
const FILL_PAGE = 256;
/** Notices kept for a session while its login or resume is on the way; past it, a fill after. */
const ATTACHING_MAX = 1_024;
const PROBE_EVERY_MS = 5_000;
const BEAT_MS = 1_000;

/** How often coalesced REQUEST touches reach Redis (and the idle sweep runs): a tenth of --idle-timeout, 10 ms to 1 s. */
const touchEvery = (idleTimeoutMs: number): number => Math.max(10, Math.min(1_000, Math.floor(idleTimeoutMs / 10)));
/** Beats a member may miss before another declares it dead. */
const DEAD_AFTER_BEATS = 3;

/** The decimal number in msg[from, to); -1 unless it is one (digits only, at most 15 of them). */
function digits(msg: Buffer, from: number, to: number): number {
  if (to <= from || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = msg[i]! - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

const REPLACED_HERE = (): GatewayError => new GatewayError('GW_ERR_REPLACED', 'session resumed on another gate');

export class ClusterNode {
  readonly sessions: RedisSessions;
  readonly member: string;
  /** Errors of the connections and of work off the request path, for the log. */
  private readonly log: Logger;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly channel: string;
  /** Notices for sessions whose login or resume script is on the way (the reply and the notice race). */
  private readonly waiting = new Map<string, Notice[] | 'overflow'>();
  private holder: SessionHolder | null = null;
  private readonly subs: Subscription[] = [];
  private probeSent = 0;
  private probeSeen = 0;
  private booted = false;
  private closing = false;
  /** Players whose sessions got a REQUEST since the last touch flush. */
  private readonly touched = new Set<string>();
  /** How stale an idle time in Redis may be (touches are coalesced): also the sweep's period. */
  touchEveryMs: number;
  private readonly beatMs: number;

  constructor(
    private cfg: ClusterNodeConfig,
    log: Logger,
  ) {
    this.member = cfg.member;
    this.log = log.child({ component: 'cluster', member: cfg.member });
    // No offline queue: while Redis is away a command fails at once (push → 503, HELLO →
    // CLUSTER_UNAVAILABLE) instead of waiting in memory; reconnects go on in the background.
    const common = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (n: number) => Math.min(100 * n, 1_000) };
    // Auto-pipelining: the scripts of one tick (a batch's pushes, many links' ACKs) go as one write.
    this.cmd = new Redis(cfg.url, { ...common, enableAutoPipelining: true, connectionName: `gate:${cfg.member}` });
    this.sub = new Redis(cfg.url, { ...common, connectionName: `gate-sub:${cfg.member}` });
    this.sessions = new RedisSessions(this.cmd, cfg);
    this.beatMs = cfg.beatMs ?? BEAT_MS;
    this.touchEveryMs = touchEvery(cfg.idleTimeoutMs);
    this.channel = noticeChannel(this.sessions.prefix, cfg.member);
    for (const [name, c] of [['commands', this.cmd], ['subscriber', this.sub]] as const) {
      c.on('error', (e: Error) => this.log.warn({ connection: name, err: e.message }, 'redis connection error'));
      c.on('close', () => {
        if (!this.closing) this.log.warn({ connection: name }, 'redis connection lost; reconnecting');
      });
    }
  }

  /** A reload: the idle bound the sweep uses and the buffer bounds the push scripts enforce, from now on. */
  reconfigure(c: Pick<ClusterNodeConfig, 'idleTimeoutMs' | 'bufferMax' | 'bufferMaxBytes'>): void {
    this.cfg = { ...this.cfg, ...c };
    this.touchEveryMs = touchEvery(c.idleTimeoutMs);
    this.sessions.setBufferBounds(c.bufferMax, c.bufferMaxBytes ?? Infinity);
  }

  /** True while both connections are ready: /readyz, and whether a HELLO or push can be served. */
  get up(): boolean {
    return this.cmd.status === 'ready' && this.sub.status === 'ready';
  }

  /** Connects both, boots the epoch and subscribes; rejects (one clear line) when Redis is not there. */
  async start(holder: SessionHolder): Promise<void> {
    this.holder = holder;
    try {
      await Promise.all([this.cmd.connect(), this.sub.connect()]);
      await this.sessions.boot();
      await this.sub.subscribe(this.channel);
    } catch (e) {
      this.cmd.disconnect();
      this.sub.disconnect();
      throw new GatewayError('GW_ERR_CLUSTER_UNAVAILABLE', `cannot use Redis at ${this.cfg.url}: ${(e as Error).message}`);
    }
    this.booted = true;
    this.sub.on('messageBuffer', (channel: Buffer, msg: Buffer) => {
      if (channel.toString() === this.channel) this.onMessage(msg);
    });
    // A reconnected command connection boots first: a restarted Redis gets a new epoch.
    this.cmd.on('ready', () => void this.onCommandsBack());
    // A resubscribed subscriber missed what was published meanwhile: fill every held session.
    this.sub.on('ready', () => this.resyncAll('subscriber reconnected'));
    const every = this.cfg.probeEveryMs ?? PROBE_EVERY_MS;
    this.subs.push(interval(every).subscribe(() => this.probe()));
    // The predecessor's sessions first: once this member shows in /v1/gates they are taken over.
    const predecessor = this.cfg.reapAtStart;
    if (predecessor) await this.reap(predecessor, 0).catch((e: unknown) => this.log.warn({ dead: predecessor, err: (e as Error).message }, 'reap of the predecessor failed; the beats catch it'));
    await this.beat();
    // exhaustMap: a slow Redis never stacks beats, sweeps or flushes up.
    this.subs.push(interval(this.beatMs).pipe(exhaustMap(() => this.beat())).subscribe());
    this.subs.push(interval(this.touchEveryMs).pipe(exhaustMap(() => this.sweep())).subscribe());
  }

  /** A REQUEST came for a session held here: its idle time in Redis follows, coalesced. */
  touch(s: Session): void {
    this.touched.add(s.playerId);
  }

  /** The live members and their figures (/v1/gates, /v1/stats). */
  members(): Promise<{ member: string; fields: Record<string, string> }[]> {
    return this.sessions.members(DEAD_AFTER_BEATS * this.beatMs);
  }

  /** Beats, then reaps the members that went silent. */
  private async beat(): Promise<void> {
    if (!this.up || !this.holder) return;
    try {
      const r = await this.sessions.beat(this.holder.figures(), DEAD_AFTER_BEATS * this.beatMs);
      if (r.kind === 'dead') {
        // Declared dead (a stall longer than 3 beats): its sessions were taken over, so its
        // links go (their clients resume anywhere) before it serves again as a live member.
        this.log.error({ reaper: r.reaper }, 'this gate was declared dead by another; closing its links and rejoining');
        for (const s of [...this.holder.all()]) this.holder.release(s);
        await this.sessions.rejoin();
        return;
      }
      for (const x of await this.sessions.silentMembers(DEAD_AFTER_BEATS * this.beatMs)) await this.reap(x);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'beat failed');
    }
  }

  /** Takes over a silent member's sessions: detached, for a resume anywhere (event `detached`, gate_lost). */
  private async reap(x: string, silentMs = DEAD_AFTER_BEATS * this.beatMs): Promise<void> {
    let total = 0;
    for (;;) {
      const r = await this.sessions.reapPage(x, silentMs);
      if (r.kind !== 'ok') break;
      total += r.detached.length;
      if (r.left === 0) break;
    }
    if (total > 0) this.log.warn({ dead: x, sessions: total }, 'member silent for 3 beats declared dead; its sessions are detached for a resume anywhere');
  }

  /** Flushes the coalesced touches, then ends the sessions idle past --idle-timeout, anywhere. */
  private async sweep(): Promise<void> {
    if (!this.up) return;
    try {
      if (this.touched.size > 0) {
        const pids = [...this.touched];
        this.touched.clear();
        await this.sessions.touch(pids);
      }
      // Touches are up to one period stale: a session is idle past the timeout plus that.
      for (let more = true; more; ) {
        // Each one's holder is told by its E notice (this member included): BYE idle on its link.
        more = (await this.sessions.sweepIdle(this.cfg.idleTimeoutMs + this.touchEveryMs)).more;
      }
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'idle sweep failed; next period retries');
    }
  }

  /** Before a login or resume script for `sessionId`: its notices wait until `attached`. */
  attaching(sessionId: string): void {
    this.waiting.set(sessionId, []);
  }

  /** The session is held here now: apply what came for it meanwhile. */
  attached(s: Session): void {
    const queued = this.waiting.get(s.sessionId);
    this.waiting.delete(s.sessionId);
    if (queued === 'overflow') this.fill(s, s.pushSeq + 1);
    else if (queued) for (const n of queued) this.apply(n);
  }

  /** The login or resume failed: forget what waited for it. */
  abandon(sessionId: string): void {
    this.waiting.delete(sessionId);
  }

  /** The client holds every push up to `seq`: at most one ACK script per session in flight. */
  ack(s: Session, seq: number): void {
    const f = s.fence;
    if (f === null) return;
    const sync = syncOf(s);
    if (sync.acking) {
      sync.ackWanted = Math.max(sync.ackWanted, seq);
      return;
    }
    sync.acking = true;
    this.sessions
      .ack(f, seq)
      .catch((e: unknown) => this.log.warn({ sessionId: s.sessionId, err: (e as Error).message }, 'ACK not stored'))
      .finally(() => {
        sync.acking = false;
        const next = sync.ackWanted;
        sync.ackWanted = 0;
        if (next > seq) this.ack(s, next);
      });
  }

  private onMessage(msg: Buffer): void {
    if (msg[0] === 0x42 /* B */ && msg[1] === 10) {
      // A batch: each push's own notice, behind a u32 length.
      for (let at = 2; at + 4 <= msg.length; ) {
        const len = msg.readUInt32BE(at);
        this.onMessage(msg.subarray(at + 4, at + 4 + len));
        at += 4 + len;
      }
      return;
    }
    const nl = msg.indexOf(10);
    const end = nl === -1 ? msg.length : nl;
    if (msg[0] === 0x50 /* P */ && msg[1] === 0x20) {
      // The hot one (a push): parsed in place, without splitting the line into strings.
      const sp = msg.indexOf(0x20, 2);
      const seq = sp === -1 || sp >= end ? -1 : digits(msg, sp + 1, end);
      if (seq <= 0) {
        this.log.warn({ notice: msg.toString('utf8', 0, Math.min(end, 80)) }, 'malformed push notice ignored');
        return;
      }
      const el = nl === -1 ? null : msg.subarray(nl + 1);
      // Copied: the body must not pin the subscriber's receive buffer.
      const push = el !== null && el.length >= 2 ? { seq, route: el.readUInt16BE(0), body: Buffer.from(el.subarray(2)) } : null;
      if (!this.closing) this.apply({ kind: 'push', sessionId: msg.toString('utf8', 2, sp), seq, push });
      return;
    }
    const line = msg.toString('utf8', 0, end);
    const [kind, sessionId = '', arg = ''] = line.split(' ', 3);
    let n: Notice;
    if (kind === 'M') n = { kind: 'moved', sessionId, gen: Number(arg) };
    else if (kind === 'A') {
      const seq = Number(arg);
      const rec = nl === -1 ? null : msg.subarray(nl + 1);
      const answer = rec === null || rec.length === 0 ? null : rec[0] === 0x55 /* U */ ? 'unknown' : decodeAnswer(rec, seq);
      n = { kind: 'answer', sessionId, seq, answer };
    } else if (kind === 'E') n = { kind: 'ended', sessionId, reason: arg, message: line.split(' ').slice(3).join(' ') };
    else if (kind === 'K') {
      this.probeSeen = Math.max(this.probeSeen, Number(sessionId));
      return;
    } else {
      this.log.warn({ notice: line.slice(0, 80) }, 'unknown notice ignored');
      return;
    }
    if (!this.closing) this.apply(n);
  }

  private apply(n: Notice): void {
    const queued = this.waiting.get(n.sessionId);
    if (queued !== undefined) {
      if (queued === 'overflow') return;
      if (queued.length >= ATTACHING_MAX) this.waiting.set(n.sessionId, 'overflow');
      else queued.push(n);
      return;
    }
    const s = this.holder?.local(n.sessionId);
    if (!s || s.state === 'ended') return;
    switch (n.kind) {
      case 'push':
        if (n.seq <= s.pushSeq) return; // already here (a fill read it first)
        if (s.state !== 'online') return; // detached here: the resume reads Redis
        if (n.seq === s.pushSeq + 1 && n.push !== null && !syncOf(s).filling) this.holder?.deliver(s, n.push);
        else this.fill(s, n.seq);
        return;
      case 'moved':
        if (s.fence !== null && n.gen > s.fence.gen) this.holder?.drop(s, s.conn ? REPLACED_HERE() : null, true);
        return;
      case 'ended':
        this.holder?.drop(s, endError(n.reason, n.message), false);
        return;
      case 'answer':
        this.holder?.answered(s, n.seq, n.answer);
        return;
    }
  }

  /** Reads the stored pushes the session lacks, up to at least `upTo`; one fill per session at a time. */
  private fill(s: Session, upTo: number): void {
    const sync = syncOf(s);
    sync.fillTo = Math.max(sync.fillTo, upTo);
    if (sync.filling) return;
    sync.filling = true;
    this.fillLoop(s, sync)
      .catch((e: unknown) => this.log.warn({ sessionId: s.sessionId, err: (e as Error).message }, 'hole fill failed; the probe retries'))
      .finally(() => (sync.filling = false));
  }

  private async fillLoop(s: Session, sync: SessionSync): Promise<void> {
    for (;;) {
      const f = s.fence;
      if (f === null || s.state !== 'online') return;
      const r = await this.sessions.range(f, s.pushSeq, FILL_PAGE);
      if (s.fence !== f || s.state !== 'online') return; // moved or ended meanwhile
      if (r.kind !== 'ok') {
        this.holder?.drop(s, r.kind === 'fenced' ? REPLACED_HERE() : null, r.kind === 'fenced');
        return;
      }
      const first = r.pushes[0];
      if (r.pushSeq > s.pushSeq && (first === undefined || first.seq > s.pushSeq + 1)) {
        // Trimmed by the bound before this member read them: the client must resume to be told
        // `gap` (a closed link detaches; the resume reports it). Never a silent hole.
        this.log.warn({ sessionId: s.sessionId, have: s.pushSeq, forgottenUpTo: r.forgottenUpTo }, 'pushes lost to the buffer bound before delivery; closing the link to resume');
        this.holder?.release(s);
        return;
      }
      for (const p of r.pushes) if (p.seq === s.pushSeq + 1) this.holder?.deliver(s, p);
      if (s.pushSeq >= Math.max(r.pushSeq, sync.fillTo)) return;
      if (r.pushes.length === 0) sync.fillTo = r.pushSeq; // a notice ran ahead of what Redis shows: none
    }
  }

  private resyncAll(why: string): void {
    if (!this.booted || this.closing || !this.holder) return;
    let n = 0;
    for (const s of this.holder.all()) {
      if (s.state !== 'online' || s.fence === null) continue;
      this.fill(s, s.pushSeq);
      n++;
    }
    this.log.info({ why, sessions: n }, 'resync of held sessions');
  }

  private async onCommandsBack(): Promise<void> {
    if (!this.booted || this.closing) return;
    try {
      const { changed } = await this.sessions.boot();
      if (!changed) return this.resyncAll('commands reconnected');
      // Redis restarted and may have lost up to its fsync window: every held link is closed so
      // that its client resumes, and the resume tells it `gap` (the epoch burn), or starts fresh.
      this.log.warn('Redis came back with a new run_id (restart or failover): links close so that clients resume and learn what was lost');
      for (const s of [...(this.holder?.all() ?? [])]) this.holder?.release(s);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'boot after reconnect failed; retried on the next ready');
    }
  }

  /** Publishes to its own channel; a probe not heard back by the next tick means a deaf subscriber. */
  private probe(): void {
    if (!this.up) return;
    if (this.probeSeen < this.probeSent) {
      this.log.warn({ sent: this.probeSent, seen: this.probeSeen }, 'notice subscriber deaf; reconnecting it');
      this.probeSeen = this.probeSent;
      this.sub.disconnect(true);
      return;
    }
    this.cmd.publish(this.channel, `K ${++this.probeSent}`).catch(() => undefined);
  }

  /** Closes both connections (shutdown, after the sessions were detached). */
  async close(): Promise<void> {
    this.closing = true;
    for (const s of this.subs) s.unsubscribe();
    await Promise.allSettled([this.cmd.quit(), this.sub.quit()]);
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}

const syncOf = (s: Session): SessionSync => (s.sync ??= { filling: false, fillTo: 0, acking: false, ackWanted: 0 });

/** The BYE a link gets when its session ended on another member. */
function endError(reason: string, message: string): GatewayError | null {
  switch (reason) {
    case 'replaced':
      return new GatewayError('GW_ERR_REPLACED', 'logged in elsewhere');
    case 'kicked':
      return new GatewayError('GW_ERR_KICKED', message || 'kicked by the backend');
    case 'idle':
      return new GatewayError('GW_ERR_IDLE_TIMEOUT');
    case 'shutdown':
      return new GatewayError('GW_ERR_SHUTDOWN');
    default:
      return null;
  }
}

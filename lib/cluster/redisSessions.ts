/**
 * The cluster session store's core over Redis (docs/design/cluster.md §2–§3, build step 5):
 * login, resume, push, ack, detach, end and range, each one Lua script, so every step is atomic
 * and costs one round trip. Not wired into the gate yet (`gate serve --redis` still exits 2).
 *
 * Semantics are the single node's, kept in Redis: pushes numbered per session and kept under
 * the same two bounds as PushBuffer (count, then bytes, the newest always kept), the same gap
 * rule on resume, push ids deduped as PushIds does. What a single node gets from being one
 * process, this gets from a fence: a member that lost a session (another resumed it, or a new
 * login replaced it) holds a stale generation, and every script it runs with it answers
 * `fenced` or `unknown` and changes nothing.
 *
 * The caller runs `boot()` when its connection becomes ready (a restarted Redis gets a new
 * epoch, and sessions that crossed it burn a seq). A script that finds no epoch at all boots
 * and runs again by itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Frame } from '../frame.js';
import type { KeptPush } from '../session/pushBuffer.js';
import { PUSH_IDS_MIN } from '../session/pushIds.js';
import {
  DEFAULT_PREFIX,
  KEY_TAGS,
  NOTICE_INLINE_MAX,
  TOMBSTONE_MS,
  deadKey,
  epochKey,
  eventLeaseKey,
  eventsKey,
  heldKey,
  idleKey,
  memberKey,
  membersKey,
  runIdKey,
  sessionIdKey,
  sessionKeys,
} from './keys.js';
import { defineScripts, runScript, type ScriptArg, type ScriptName } from './scripts.js';

export interface RedisSessionsConfig {
  /** Key prefix (`--redis-prefix`): every member on the same Redis and prefix is one cluster. Default `gate:`. */
  prefix?: string;
  /** This member's id (one gate process), the owner of the sessions it attaches. Non-empty. */
  member: string;
  /** `--buffer-max`: pushes kept per session, >= 1. */
  bufferMax: number;
  /** `--buffer-max-bytes`: body bytes kept per session (the newest push always). Default Infinity. */
  bufferMaxBytes?: number;
  /** Push ids remembered per session. Default max(bufferMax, PUSH_IDS_MIN), as on a single node. */
  pushIdsMax?: number;
  /** Kept pushes a resume returns at most; the rest come by `range`. Default 256. */
  replayPage?: number;
  /** `--request-window-bytes`: answer bytes kept per session's request window; past it the oldest seqs leave. Default Infinity. */
  requestWindowBytes?: number;
}

/** What lets a member change a session: the session and the generation its login or resume got. */
export interface Fence {
  readonly playerId: string;
  readonly sessionId: string;
  readonly gen: number;
}

/** The session is another member's now (or nobody's: detached), at generation `gen`. */
export interface Fenced {
  readonly kind: 'fenced';
  /** null while detached */
  readonly owner: string | null;
  readonly gen: number;
}

/** No such session: it ended, or a new login replaced it. */
export interface Unknown {
  readonly kind: 'unknown';
}

export type SessionStatus = 'online' | 'detached';
export type EndReason = 'logout' | 'kicked' | 'replaced' | 'idle' | 'shutdown';

export interface LoginResult {
  readonly kind: 'ok';
  readonly fence: Fence;
  /** The player's previous session, ended by this login; its owner (null: detached) should close its link. */
  readonly replaced: { readonly sessionId: string; readonly member: string | null; readonly gen: number } | null;
}

export type ResumeResult =
  | {
      readonly kind: 'ok';
      readonly fence: Fence;
      /** Seq of the newest push. */
      readonly pushSeq: number;
      /** min(lastSeq, pushSeq): the client holds everything up to here. */
      readonly upTo: number;
      /** Some push after `upTo` will not be replayed (dropped by a bound, ACKed earlier, or lost by Redis). */
      readonly gap: boolean;
      /** Kept pushes after `upTo`, oldest first, at most `replayPage` of them. */
      readonly replay: readonly KeptPush[];
      /** More kept pushes follow the page: read them with `range`. */
      readonly more: boolean;
      /** Who held the session before (member null: detached); that member's generation is stale now. */
      readonly previous: { readonly member: string | null; readonly gen: number; readonly state: SessionStatus };
    }
  /** `ended`: why, while its tombstone lasts; null for no such session or a wrong token. */
  | { readonly kind: 'unknown'; readonly ended: string | null };

export type PushResult =
  | {
      readonly kind: 'ok';
      readonly seq: number;
      /** The push id was seen: `seq` is the first push's, and nothing was stored. */
      readonly duplicate: boolean;
      /** Older pushes the bounds dropped to keep this one. */
      readonly dropped: number;
      /** The member holding the session's link, null while detached. */
      readonly owner: string | null;
      readonly state: SessionStatus;
      /** The owner's notice channel had a subscriber: the push is on its way to the link. */
      readonly notified: boolean;
    }
  | Unknown;

/** A session as any gate reads it from Redis (/v1/players). */
export interface SessionInfo {
  readonly playerId: string;
  readonly sessionId: string;
  readonly state: SessionStatus;
  readonly pushSeq: number;
  /** Pushes kept for replay. */
  readonly kept: number;
  /** The member holding its link, or while detached the member it was detached from; null if none. */
  readonly holder: string | null;
}

/** A backend event as the scripts wrote it to the stream; `id` is its stream id (for dedupe). */
export interface StreamEvent {
  readonly id: string;
  readonly type: 'online' | 'detached' | 'resumed' | 'offline';
  readonly playerId: string;
  readonly sessionId: string;
  readonly gateId: string;
  /** '' when the event has none */
  readonly reason: string;
  readonly at: number;
}

/** The cluster-wide request window's verdict on a REQUEST seq (reqBegin). */
export type ClusterVerdict =
  | { readonly kind: 'new' }
  /** Running on some gate: its answer comes as a notice to the session's holder. */
  | { readonly kind: 'running' }
  | { readonly kind: 'done'; readonly answer: Frame }
  /** The gate running it died mid-call: whether the backend ran it cannot be known. */
  | { readonly kind: 'outcome_unknown' }
  | { readonly kind: 'stale' }
  /** This member no longer holds the session (moved or ended). */
  | { readonly kind: 'lost' };

export type AckResult = { readonly kind: 'ok'; readonly forgottenUpTo: number } | Fenced | Unknown;
export type DetachResult = { readonly kind: 'ok' } | Fenced | Unknown;
export type EndResult = { readonly kind: 'ok'; readonly sessionId: string; readonly owner: string | null } | Fenced | Unknown;
export type RangeResult = { readonly kind: 'ok'; readonly forgottenUpTo: number; readonly pushSeq: number; readonly pushes: readonly KeptPush[] } | Fenced | Unknown;

/** Default page of kept pushes a resume returns (the design's replay page). */
export const REPLAY_PAGE = 256;

const ROUTE_MAX = 0xffff;
/** `bufferMaxBytes` for the scripts when there is no byte bound. */
const NO_BYTE_BOUND = -1;
const UNKNOWN: Unknown = { kind: 'unknown' };

export class RedisSessions {
  readonly prefix: string;
  readonly member: string;
  private bufferMax = 1; // set by setBufferBounds in the constructor
  /** NO_BYTE_BOUND or the byte bound. */
  private bufferMaxBytes = NO_BYTE_BOUND;
  private readonly pushIdsMax: number;
  private readonly replayPage: number;
  /** NO_BYTE_BOUND or --request-window-bytes. */
  private readonly windowBytes: number;
  /** reqBegin calls of this event-loop turn, sent together. */
  private readonly begins: { f: Fence; seq: number; size: number; resolve: (v: ClusterVerdict) => void; reject: (e: unknown) => void }[] = [];
  /** ACKs of this event-loop turn (ack). */
  private readonly acks: { f: Fence; seq: number; resolve: (v: AckResult) => void; reject: (e: unknown) => void }[] = [];
  /** reqFinish calls of this event-loop turn. */
  private readonly finishes: { f: Fence; seq: number; record: Buffer | string; resolve: (stored: boolean) => void; reject: (e: unknown) => void }[] = [];
  /** The boot in progress, shared by every script that found no epoch meanwhile. */
  private booting: Promise<{ epoch: string; changed: boolean }> | null = null;

  constructor(
    private readonly redis: Redis,
    config: RedisSessionsConfig,
  ) {
    const { prefix = DEFAULT_PREFIX, member, bufferMax, bufferMaxBytes = Infinity, replayPage = REPLAY_PAGE } = config;
    const pushIdsMax = config.pushIdsMax ?? Math.max(bufferMax, PUSH_IDS_MIN);
    // Fail at creation: a bad bound would otherwise show up as a script error on the first push.
    if (typeof member !== 'string' || member === '') throw new TypeError('RedisSessions: member must be a non-empty string');
    // ioredis would prefix KEYS but not the names the scripts compute: use `prefix` instead.
    if (redis.options.keyPrefix) throw new TypeError('RedisSessions: the ioredis client must have no keyPrefix (use the prefix option)');
    this.setBufferBounds(bufferMax, bufferMaxBytes);
    if (!Number.isInteger(pushIdsMax) || pushIdsMax < 1) throw new TypeError('RedisSessions: pushIdsMax must be an integer >= 1');
    if (!Number.isInteger(replayPage) || replayPage < 1) throw new TypeError('RedisSessions: replayPage must be an integer >= 1');
    this.prefix = prefix;
    this.member = member;
    this.pushIdsMax = pushIdsMax;
    this.replayPage = replayPage;
    const wb = config.requestWindowBytes ?? Infinity;
    if (!(wb >= 0)) throw new TypeError('RedisSessions: requestWindowBytes must be >= 0');
    this.windowBytes = Number.isFinite(wb) ? Math.floor(wb) : NO_BYTE_BOUND;
    defineScripts(redis);
  }

  /**
   * The replay buffer bounds, checked (at creation, and on a reload for the pushes stored from
   * then on: a buffer is trimmed to them at its next push). The push ids remembered keep their bound (it only grows at a restart).
   */
  setBufferBounds(bufferMax: number, bufferMaxBytes: number): void {
    if (!Number.isInteger(bufferMax) || bufferMax < 1) throw new TypeError('RedisSessions: bufferMax must be an integer >= 1');
    if (!(bufferMaxBytes >= 0)) throw new TypeError('RedisSessions: bufferMaxBytes must be >= 0');
    this.bufferMax = bufferMax;
    this.bufferMaxBytes = Number.isFinite(bufferMaxBytes) ? Math.floor(bufferMaxBytes) : NO_BYTE_BOUND;
  }

  /**
   * Starts a new cluster epoch if Redis is not the server the current one belongs to (its
   * run_id changed: a restart or failover, which may have lost writes). Run it on every `ready`
   * of the connection; members booting at once agree on one epoch.
   */
  boot(): Promise<{ epoch: string; changed: boolean }> {
    this.booting ??= this.bootOnce().finally(() => (this.booting = null));
    return this.booting;
  }

  private async bootOnce(): Promise<{ epoch: string; changed: boolean }> {
    const runId = /^run_id:(\w+)/m.exec(await this.redis.info('server'))?.[1];
    if (runId === undefined) throw new Error('RedisSessions.boot: INFO server has no run_id');
    const r = await this.call('boot', [epochKey(this.prefix), runIdKey(this.prefix), runId, randomBytes(8).toString('hex')]);
    return { epoch: text(r[0]), changed: int(r[1]) === 1 };
  }

  /** A new session for the player, owned here; ends the player's previous session, if any. */
  async login(p: { playerId: string; sessionId: string; resumeToken: string }): Promise<LoginResult> {
    const k = sessionKeys(this.prefix, p.playerId);
    const r = await this.call('login', [
      k.meta, k.pushes, k.pushIds, sessionIdKey(this.prefix, p.sessionId), epochKey(this.prefix),
      p.playerId, p.sessionId, tokenHash(p.resumeToken), this.member, this.prefix, TOMBSTONE_MS,
    ]);
    status(r, 'login', 'OK');
    const oldSid = text(r[2]);
    return {
      kind: 'ok',
      fence: { playerId: p.playerId, sessionId: p.sessionId, gen: int(r[1]) },
      replaced: oldSid === '' ? null : { sessionId: oldSid, member: text(r[3]) || null, gen: int(r[4]) },
    };
  }

  /**
   * Moves the session here, whoever held it, if the token matches. The gap rule is the single
   * node's: the client holds up to min(lastSeq, pushSeq), and `gap` says whether some push after
   * that is gone. Returns the first `page` kept pushes after it.
   */
  async resume(r: { sessionId: string; resumeToken: string; lastSeq: number }, page = this.replayPage): Promise<ResumeResult> {
    const lastSeq = seqArg(r.lastSeq, 'lastSeq');
    if (!Number.isInteger(page) || page < 1) throw new TypeError('RedisSessions.resume: page must be an integer >= 1');
    const x = await this.call(
      'resume',
      [sessionIdKey(this.prefix, r.sessionId), epochKey(this.prefix), this.prefix, r.sessionId, tokenHash(r.resumeToken), lastSeq, this.member, page],
      true,
    );
    if (status(x, 'resume', 'OK', 'UNKNOWN') === 'UNKNOWN') return { kind: 'unknown', ended: text(x[1]) || null };
    const playerId = text(x[1]);
    const pushSeq = int(x[4]);
    const forgottenUpTo = int(x[5]);
    const replay = decodePushes(x[10], forgottenUpTo + 1);
    return {
      kind: 'ok',
      fence: { playerId, sessionId: r.sessionId, gen: int(x[2]) },
      pushSeq,
      upTo: int(x[6]),
      gap: int(x[3]) === 1,
      replay,
      more: pushSeq > forgottenUpTo + replay.length,
      previous: { member: text(x[7]) || null, gen: int(x[8]), state: sessionStatus(text(x[9])) },
    };
  }

  /**
   * Stores a push for the player's session, wherever it is attached: numbered, kept under the
   * bounds, deduped by `id` among the session's last `pushIdsMax` ids.
   */
  async push(p: { playerId: string; route: number; body: Buffer; id?: string }): Promise<PushResult> {
    return (await this.pushMany([p]))[0]!;
  }

  /**
   * Several pushes in one script call (a batch, a broadcast page), each exactly as `push`, in
   * order; every owner gets one notice for all of its pushes.
   */
  async pushMany(ps: readonly { playerId: string; route: number; body: Buffer; id?: string | undefined }[]): Promise<PushResult[]> {
    if (ps.length === 0) return [];
    const r = await this.call('pushMany', [epochKey(this.prefix), this.prefix, this.bufferMax, this.bufferMaxBytes, this.pushIdsMax, NOTICE_INLINE_MAX, packPushes(ps)]);
    const owners = r.length - 6 * ps.length;
    const out: PushResult[] = new Array<PushResult>(ps.length);
    for (let i = 0, k = 0; i < ps.length; i++, k += 6) {
      const st = int(r[k]);
      if (st === 0) {
        out[i] = UNKNOWN;
        continue;
      }
      const o = int(r[k + 2]);
      if (st > 2 || o < 0 || o > owners) throw new Error(`RedisSessions: script pushMany answered status ${st}, owner ${o}`);
      out[i] = { kind: 'ok', seq: int(r[k + 1]), duplicate: st === 2, dropped: int(r[k + 4]), owner: o === 0 ? null : text(r[6 * ps.length + o - 1]), state: int(r[k + 3]) === 1 ? 'online' : 'detached', notified: int(r[k + 5]) > 0 };
    }
    return out;
  }

  /**
   * The client holds every push up to `seq` (at most the newest): forget them. Fenced. The ACKs
   * of one event-loop turn (any sessions) go as one script call.
   */
  ack(f: Fence, seq: number): Promise<AckResult> {
    return new Promise((resolve, reject) => {
      this.acks.push({ f, seq: seqArg(seq, 'seq'), resolve, reject });
      if (this.acks.length === 1) setImmediate(() => this.flushAcks());
    });
  }

  private flushAcks(): void {
    const batch = this.acks.splice(0);
    if (batch.length === 0) return;
    const args: ScriptArg[] = [epochKey(this.prefix), this.prefix, this.member];
    for (const b of batch) args.push(b.f.playerId, b.f.sessionId, b.f.gen, b.seq);
    this.call('ackMany', args).then(
      (r) =>
        batch.forEach((b, i) => {
          const x = r[i] as unknown[];
          const st = status(x, 'ack', 'OK', 'FENCED', 'UNKNOWN');
          b.resolve(st === 'OK' ? { kind: 'ok', forgottenUpTo: int(x[1]) } : lost(st, x));
        }),
      (e: unknown) => batch.forEach((b) => b.reject(e)),
    );
  }

  /** This member's link to the session went away: it stays, detached, storing pushes. Fenced. */
  async detach(f: Fence, reason = 'closed'): Promise<DetachResult> {
    const k = sessionKeys(this.prefix, f.playerId);
    const r = await this.call('detach', [k.meta, k.pushes, epochKey(this.prefix), f.sessionId, this.member, f.gen, this.prefix, f.playerId, reason]);
    const st = status(r, 'detach', 'OK', 'FENCED', 'UNKNOWN');
    return st === 'OK' ? { kind: 'ok' } : lost(st, r);
  }

  /**
   * Ends a session: fenced when given a fence (the owner ends its own: logout, shutdown),
   * whichever session the player has when given only the player (kick, idle). Its keys go; its
   * sessionId answers a late resume with `ended: reason` for TOMBSTONE_MS. The member holding it
   * is told (`E <sid> <reason> <message>`) and closes its link with that BYE.
   */
  async end(target: Fence | { readonly playerId: string }, reason: EndReason, message = ''): Promise<EndResult> {
    const k = sessionKeys(this.prefix, target.playerId);
    const [sid, gen] = 'sessionId' in target ? [target.sessionId, target.gen] : ['', 0];
    // The notice is one line: the message (a kick's reason for the BYE) is kept to that.
    const note = message.replace(/[\r\n]+/g, ' ').slice(0, 256);
    const r = await this.call('end', [k.meta, k.pushes, k.pushIds, this.prefix, sid, this.member, gen, reason, TOMBSTONE_MS, note, target.playerId]);
    const st = status(r, 'end', 'OK', 'FENCED', 'UNKNOWN');
    return st === 'OK' ? { kind: 'ok', sessionId: text(r[1]), owner: text(r[2]) || null } : lost(st, r);
  }

  /** Up to `limit` kept pushes after seq `after`, oldest first (replay pages, hole filling). Fenced. */
  async range(f: Fence, after: number, limit = this.replayPage): Promise<RangeResult> {
    if (!Number.isInteger(limit) || limit < 1) throw new TypeError('RedisSessions.range: limit must be an integer >= 1');
    const k = sessionKeys(this.prefix, f.playerId);
    const r = await this.call('range', [k.meta, k.pushes, epochKey(this.prefix), f.sessionId, this.member, f.gen, seqArg(after, 'after'), limit], true);
    const st = status(r, 'range', 'OK', 'FENCED', 'UNKNOWN');
    if (st !== 'OK') return lost(st, r);
    return { kind: 'ok', forgottenUpTo: int(r[1]), pushSeq: int(r[2]), pushes: decodePushes(r[4], int(r[3])) };
  }

  /**
   * Before REQUEST `seq` runs upstream: the cluster-wide window's verdict. `new` records it as
   * running here, so a client that moves and re-sends it never runs it twice.
   * Every call of one event-loop turn goes as one script call (a gate under load admits many
   * REQUESTs per turn: one round trip and one command for all of them); results come back per
   * call, in call order.
   */
  reqBegin(f: Fence, seq: number, windowSize: number): Promise<ClusterVerdict> {
    return new Promise((resolve, reject) => {
      this.begins.push({ f, seq: seqArg(seq, 'seq'), size: windowSize, resolve, reject });
      if (this.begins.length === 1) setImmediate(() => this.flushBegins());
    });
  }

  private flushBegins(): void {
    const batch = this.begins.splice(0);
    if (batch.length === 0) return;
    // One window size per call: the gate's --request-window (a mixed batch goes in groups).
    const size = batch[0]!.size;
    const now = batch.filter((b) => b.size === size);
    const later = batch.filter((b) => b.size !== size);
    if (later.length > 0) {
      this.begins.push(...later);
      setImmediate(() => this.flushBegins());
    }
    const args: ScriptArg[] = [epochKey(this.prefix), this.prefix, this.member, size];
    for (const b of now) args.push(b.f.playerId, b.f.sessionId, b.f.gen, b.seq);
    this.call('reqBeginMany', args, true).then(
      (r) => now.forEach((b, i) => b.resolve(verdict(r[i] as unknown[], b.seq))),
      (e: unknown) => now.forEach((b) => b.reject(e)),
    );
  }

  /**
   * The outcome of REQUEST `seq`, run here under fence `f` (as at its reqBegin): stored even if the
   * session moved since, whose new holder is then told. `answer` null: refused before it ran
   * (OVERLOADED), so a re-send runs it. Resolves false when the record is gone (session ended).
   * The outcomes of one event-loop turn go as one script call.
   */
  reqFinish(f: Fence, seq: number, answer: Frame | null): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.finishes.push({ f, seq: seqArg(seq, 'seq'), record: answer === null ? 'N' : encodeAnswer(answer), resolve, reject });
      if (this.finishes.length === 1) setImmediate(() => this.flushFinishes());
    });
  }

  private flushFinishes(): void {
    const batch = this.finishes.splice(0);
    if (batch.length === 0) return;
    const args: ScriptArg[] = [this.prefix, this.member, NOTICE_INLINE_MAX, this.windowBytes];
    for (const b of batch) args.push(b.f.playerId, b.f.sessionId, b.f.gen, b.seq, b.record);
    this.call('reqFinishMany', args).then(
      (r) => batch.forEach((b, i) => b.resolve(status(r[i] as unknown[], 'reqFinish', 'OK', 'LOST') === 'OK')),
      (e: unknown) => batch.forEach((b) => b.reject(e)),
    );
  }

  /**
   * Takes (or renews) the lease on posting the event stream and reads its oldest `count` events;
   * `busy` while another member holds the lease.
   */
  async evTake(leaseMs: number, count: number): Promise<{ kind: 'lease'; events: StreamEvent[] } | { kind: 'busy' }> {
    const r = await this.call('evTake', [eventsKey(this.prefix), eventLeaseKey(this.prefix), this.member, leaseMs, count]);
    if (status(r, 'evTake', 'LEASE', 'BUSY') === 'BUSY') return { kind: 'busy' };
    return { kind: 'lease', events: (r[1] as unknown[]).map(decodeEvent) };
  }

  /** The backend took these events: they leave the stream. False if the lease was lost meanwhile. */
  async evDone(ids: readonly string[], leaseMs: number): Promise<boolean> {
    const r = await this.call('evDone', [eventsKey(this.prefix), eventLeaseKey(this.prefix), this.member, leaseMs, ...ids]);
    return status(r, 'evDone', 'OK', 'LOST') === 'OK';
  }

  /** Gives the event lease up, if held (shutdown): another member posts the rest at once. */
  async evRelease(): Promise<void> {
    await this.call('evRelease', [eventLeaseKey(this.prefix), this.member]);
  }

  /** REQUESTs came for these players' sessions: their idle clocks restart (Redis time). */
  async touch(playerIds: readonly string[]): Promise<void> {
    if (playerIds.length > 0) await this.call('touch', [idleKey(this.prefix), ...playerIds]);
  }

  /**
   * Ends up to `limit` sessions idle for `idleMs` or more, wherever they are held (a dead gate's
   * too), each once cluster-wide. Returns the ended ones and whether more may be due.
   */
  async sweepIdle(idleMs: number, limit = 100): Promise<{ ended: { playerId: string; sessionId: string }[]; more: boolean }> {
    const r = await this.call('sweepIdle', [idleKey(this.prefix), this.prefix, Math.max(0, Math.floor(idleMs)), limit, TOMBSTONE_MS]);
    status(r, 'sweepIdle', 'OK');
    return { ended: pairs(r, 2), more: int(r[1]) === 1 };
  }

  /**
   * This member is alive (its figures live `ttlMs`). `dead`: another member declared it dead and
   * took its sessions over; it must let its links go, then `rejoin`.
   */
  async beat(fields: Readonly<Record<string, string | number>>, ttlMs: number): Promise<{ kind: 'ok'; now: number } | { kind: 'dead'; reaper: string }> {
    const p = this.prefix;
    const r = await this.call('beat', [membersKey(p), memberKey(p, this.member), deadKey(p, this.member), this.member, Math.ceil(ttlMs), ...Object.entries(fields).flat()]);
    return status(r, 'beat', 'OK', 'DEAD') === 'OK' ? { kind: 'ok', now: int(r[1]) } : { kind: 'dead', reaper: text(r[1]) };
  }

  /** After `beat` said dead and the links were let go: beat again as a live member. */
  async rejoin(): Promise<void> {
    await this.call('rejoin', [deadKey(this.prefix, this.member)]);
  }

  /** Members whose last beat is older than `deadAfterMs` by Redis time (reap candidates). */
  async silentMembers(deadAfterMs: number): Promise<string[]> {
    const [sec, micro] = await this.redis.time();
    const now = Number(sec) * 1000 + Math.floor(Number(micro) / 1000);
    return (await this.redis.zrangebyscore(membersKey(this.prefix), '-inf', now - deadAfterMs)).filter((m) => m !== this.member);
  }

  /**
   * Declares member `x` dead if it is silent for `deadAfterMs` (once, cluster-wide) and detaches a
   * page of the sessions it held. `gone`: another member reaps it, or nothing is left.
   */
  async reapPage(x: string, deadAfterMs: number, count = 100): Promise<{ kind: 'alive' | 'gone' } | { kind: 'ok'; left: number; detached: { playerId: string; sessionId: string }[] }> {
    const p = this.prefix;
    const r = await this.call('reapPage', [membersKey(p), deadKey(p, x), heldKey(p, x), x, this.member, deadAfterMs, count, p]);
    const st = status(r, 'reapPage', 'OK', 'ALIVE', 'GONE');
    if (st !== 'OK') return { kind: st === 'ALIVE' ? 'alive' : 'gone' };
    return { kind: 'ok', left: int(r[1]), detached: pairs(r, 2) };
  }

  /** The live members (beat within `liveMs`) and their figures, as their beats wrote them. */
  async members(liveMs: number): Promise<{ member: string; fields: Record<string, string> }[]> {
    const [sec, micro] = await this.redis.time();
    const now = Number(sec) * 1000 + Math.floor(Number(micro) / 1000);
    const ids = await this.redis.zrangebyscore(membersKey(this.prefix), now - liveMs, '+inf');
    const all = await Promise.all(ids.map((m) => this.redis.hgetall(memberKey(this.prefix, m))));
    return ids.map((member, i) => ({ member, fields: all[i] ?? {} })).filter((m) => Object.keys(m.fields).length > 0);
  }

  /** The player's session as Redis has it (any gate's), or null. One HMGET and one LLEN, pipelined. */
  async info(playerId: string): Promise<SessionInfo | null> {
    const k = sessionKeys(this.prefix, playerId);
    const [meta, kept] = await Promise.all([this.redis.hmget(k.meta, 'sid', 'own', 'st', 'seq', 'lo'), this.redis.llen(k.pushes)]);
    const [sid, own, st, seq, lo] = meta;
    if (!sid || (st !== 'online' && st !== 'detached')) return null;
    return { playerId, sessionId: sid, state: st, pushSeq: Number(seq ?? 0), kept, holder: (own || lo) ?? null };
  }

  /** Every player with a session, in pages (SCAN: a long cluster-wide walk never blocks Redis). */
  async *playerPages(count = 1_000): AsyncGenerator<string[]> {
    const tag = this.prefix + KEY_TAGS.meta;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${globEscape(tag)}*`, 'COUNT', count);
      cursor = next;
      if (keys.length > 0) yield keys.map((key) => key.slice(tag.length));
    } while (cursor !== '0');
  }

  /**
   * Runs a script; when it finds no cluster epoch (Redis lost everything, or nobody booted yet),
   * boots and runs it once more. Safe to repeat: a script checks the epoch before it writes.
   */
  private async call(name: ScriptName, args: readonly ScriptArg[], binary = false): Promise<unknown[]> {
    let raw: unknown;
    try {
      raw = await runScript(this.redis, name, args, binary);
    } catch (e) {
      if (name === 'boot' || !(e instanceof Error) || !e.message.includes('NOEPOCH')) throw e;
      await this.boot();
      raw = await runScript(this.redis, name, args, binary);
    }
    if (!Array.isArray(raw) || raw.length === 0) throw new Error(`RedisSessions: script ${name} answered ${String(raw)}`);
    return raw as unknown[];
  }
}

/** A stored answer: 'D' ‖ frame type u8 ‖ route u16 ‖ body. */
function encodeAnswer(f: Frame): Buffer {
  const b = Buffer.allocUnsafe(4 + f.body.length);
  b.write('D', 0, 'latin1');
  b.writeUInt8(f.type, 1);
  b.writeUInt16BE(f.route, 2);
  f.body.copy(b, 4);
  return b;
}

/** A stored answer back to the frame that answers `seq` (body copied off the reply). */
export function decodeAnswer(v: unknown, seq: number): Frame {
  if (!Buffer.isBuffer(v) || v.length < 4 || v[0] !== 0x44) throw new Error('RedisSessions: malformed stored answer');
  return { type: v.readUInt8(1), flags: 0, route: v.readUInt16BE(2), seq, body: Buffer.from(v.subarray(4)) };
}

const EVENT_TYPES = new Set(['online', 'detached', 'resumed', 'offline']);

/** One XRANGE entry, [id, [field, value, …]], back to its event. */
function decodeEvent(entry: unknown): StreamEvent {
  if (!Array.isArray(entry) || !Array.isArray(entry[1])) throw new Error('RedisSessions: malformed event entry');
  const f: Record<string, string> = {};
  const kv = entry[1] as unknown[];
  for (let i = 0; i + 1 < kv.length; i += 2) f[text(kv[i])] = text(kv[i + 1]);
  const type = f.t ?? '';
  if (!EVENT_TYPES.has(type)) throw new Error(`RedisSessions: unknown event type ${JSON.stringify(type)}`);
  return { id: text(entry[0]), type: type as StreamEvent['type'], playerId: f.p ?? '', sessionId: f.s ?? '', gateId: f.g ?? '', reason: f.r ?? '', at: Number(f.a ?? 0) };
}

/** One reqBegin reply as a verdict. */
function verdict(r: readonly unknown[], seq: number): ClusterVerdict {
  const st = status(r, 'reqBegin', 'NEW', 'RUNNING', 'DONE', 'UNKNOWN', 'STALE', 'FENCED', 'GONE');
  switch (st) {
    case 'NEW':
      return { kind: 'new' };
    case 'RUNNING':
      return { kind: 'running' };
    case 'DONE':
      return { kind: 'done', answer: decodeAnswer(r[1], seq) };
    case 'UNKNOWN':
      return { kind: 'outcome_unknown' };
    case 'STALE':
      return { kind: 'stale' };
    case 'FENCED':
    case 'GONE':
      return { kind: 'lost' };
  }
}

/** One push's reply: {status, seq, owner, state, dropped, notified}. */
/** (pid, sid) pairs from element `from` of a script reply on. */
function pairs(r: readonly unknown[], from: number): { playerId: string; sessionId: string }[] {
  const out: { playerId: string; sessionId: string }[] = [];
  for (let i = from; i + 1 < r.length; i += 2) out.push({ playerId: text(r[i]), sessionId: text(r[i + 1]) });
  return out;
}

/** A literal for SCAN MATCH: glob's special characters escaped. */
const globEscape = (s: string): string => s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);

/** The resume token as Redis keeps it: its sha256, so a read of Redis cannot resume anyone. */
const tokenHash = (token: string): string => createHash('sha256').update(token).digest('hex');

/**
 * pushMany's one argument: per push u16 length ‖ playerId, u16 length ‖ id, u32 length ‖ element
 * (the list element: u16 route ‖ body). One allocation for the whole batch.
 */
function packPushes(ps: readonly { playerId: string; route: number; body: Buffer; id?: string | undefined }[]): Buffer {
  let size = 0;
  for (const p of ps) {
    if (!Number.isInteger(p.route) || p.route < 0 || p.route > ROUTE_MAX) throw new TypeError(`RedisSessions.push: route must be 0..${ROUTE_MAX}`);
    if (p.id === '') throw new TypeError('RedisSessions.push: id must be non-empty when given');
    const pl = Buffer.byteLength(p.playerId);
    const il = p.id === undefined ? 0 : Buffer.byteLength(p.id);
    if (pl > 0xffff || il > 0xffff) throw new TypeError('RedisSessions.push: playerId and id must be under 64 KiB');
    size += 2 + pl + 2 + il + 4 + 2 + p.body.length;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of ps) {
    const pl = out.write(p.playerId, at + 2);
    out.writeUInt16BE(pl, at);
    at += 2 + pl;
    const il = p.id === undefined ? 0 : out.write(p.id, at + 2);
    out.writeUInt16BE(il, at);
    at += 2 + il;
    out.writeUInt32BE(2 + p.body.length, at);
    out.writeUInt16BE(p.route, at + 4);
    at += 6 + p.body.copy(out, at + 6);
  }
  return out;
}

/** List elements back to pushes numbered from `first`; bodies copied, so none holds on to a reply buffer. */
function decodePushes(v: unknown, first: number): KeptPush[] {
  if (!Array.isArray(v)) throw new Error('RedisSessions: expected a list of pushes');
  return v.map((el: unknown, k) => {
    if (!Buffer.isBuffer(el) || el.length < 2) throw new Error('RedisSessions: malformed push element');
    return { seq: first + k, route: el.readUInt16BE(0), body: Buffer.from(el.subarray(2)) };
  });
}

/** A seq argument: an integer; below 0 taken as 0 (seqs start at 1). */
function seqArg(v: number, name: string): number {
  if (!Number.isInteger(v)) throw new TypeError(`RedisSessions: ${name} must be an integer`);
  return Math.max(v, 0);
}

function text(v: unknown): string {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'string') return v;
  if (v === null) return '';
  throw new Error(`RedisSessions: expected a string in a script reply, got ${typeof v}`);
}

function int(v: unknown): number {
  if (typeof v === 'number') return v;
  throw new Error(`RedisSessions: expected an integer in a script reply, got ${typeof v}`);
}

function sessionStatus(s: string): SessionStatus {
  if (s === 'online' || s === 'detached') return s;
  throw new Error(`RedisSessions: unexpected session state ${JSON.stringify(s)}`);
}

/** The reply's status, which must be one of `allowed`. */
function status<S extends string>(r: readonly unknown[], name: string, ...allowed: S[]): S {
  const s = text(r[0]);
  if (!(allowed as string[]).includes(s)) throw new Error(`RedisSessions: script ${name} answered status ${s}`);
  return s as S;
}

/** The reply of a fenced script that did not hold the fence. */
function lost(st: 'FENCED' | 'UNKNOWN', r: readonly unknown[]): Fenced | Unknown {
  return st === 'FENCED' ? { kind: 'fenced', owner: text(r[1]) || null, gen: int(r[2]) } : UNKNOWN;
}

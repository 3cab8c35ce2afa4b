/**
 * The gate client SDK (CONTRACT §2): one logged-in session over a pluggable transport, kept
 * alive across lost links by resuming (§2.4) and re-sending unanswered requests with their
 * original seqs (§2.5), so each request settles exactly once and each push is delivered exactly
 * once, in order. Browser-safe: no Node APIs; timers run on an RxJS scheduler.
 *
 * ```text
 * state$:  idle ─connect()─▶ connecting ─WELCOME─▶ online ─link lost─▶ detached ─backoff─▶ reconnecting ─WELCOME─▶ online
 *                                 │                  │                                          │
 *                                 └─ fails ─┐        └─ terminal BYE / close() ─┐              └─ fails ─▶ detached …
 *                                           ▼                                   ▼
 *                                        closed ◀────────── maxAttempts used up ─┘
 * ```
 */
import type { RequestErrorCode as GateErrorCode } from '../errors.js';
import {
  BehaviorSubject,
  Observable,
  Subject,
  asyncScheduler,
  concatWith,
  connect,
  defer,
  filter,
  finalize,
  first,
  ignoreElements,
  interval,
  map,
  merge,
  mergeMap,
  retry,
  startWith,
  switchMap,
  tap,
  throwError,
  timeout,
  timer,
  type SchedulerLike,
  type Subscription,
} from 'rxjs';
import { FLAG_DEFLATE, FrameType, GateProtocolError, decodeJson, frame, jsonFrame, toBytes, type GateFrame } from './codec.js';

// ------------------------------------------------------------------------------------------------
// Transports

/** One open connection to a gate. */
export interface Link {
  /**
   * Decoded frames from the gate. Completes when the link closes, errors on a transport error or
   * malformed bytes (GateProtocolError). Subscribe in the same tick the Link is emitted: nothing
   * is buffered for a late subscriber. One subscriber.
   */
  readonly frames$: Observable<GateFrame>;
  /**
   * Queues one frame. Returns false when the link is closed, or when more than the transport's
   * `maxBufferedBytes` would be waiting (the link is then dropped: a stalled network is a lost link).
   */
  send(frame: GateFrame): boolean;
  /** Closes after flushing what was sent (so a BYE gets out). Idempotent. */
  close(): void;
  /** Drops the link at once without flushing, as if the network vanished (TCP destroy, WS terminate). Idempotent. */
  abort(): void;
}

/** A way to reach a gate. `open()` is cold: each subscription dials once. */
export interface Transport {
  /**
   * Emits one Link once it is open; errors if the dial fails. Unsubscribing closes the link
   * (gracefully, flushing what was sent). It may complete once the link has closed; the client
   * watches `frames$` for the end of a link, not this.
   */
  open(): Observable<Link>;
}

/** Send-side bound of the bundled transports: bytes written but not yet sent before the link is dropped. */
export const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** A link that failed or ended, with a stable code. */
export class GateLinkError extends Error {
  override readonly name = 'GateLinkError';
  constructor(
    readonly code: 'DIAL_FAILED' | 'LINK_CLOSED' | 'LINK_ERROR' | 'SLOW_LINK' | 'CONNECT_TIMEOUT' | 'HEARTBEAT_TIMEOUT',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

// ------------------------------------------------------------------------------------------------
// Public types

export type ClientState = 'idle' | 'connecting' | 'online' | 'detached' | 'reconnecting' | 'closed';

/** The WELCOME body (§2.1). */
export interface Welcome {
  readonly playerId: string;
  readonly sessionId: string;
  readonly resumeToken: string;
  readonly gateId: string;
  readonly heartbeatMs: number;
  readonly resumed: boolean;
  readonly gap: boolean;
  readonly lastSeq: number;
}

/** A PUSH as the app sees it: `seq` is the session's push number. */
export interface Push {
  readonly route: number;
  readonly seq: number;
  readonly body: Uint8Array;
}

/** BYE codes of §2.1. */
export type ByeCode = 'auth_failed' | 'protocol_error' | 'hello_timeout' | 'replaced' | 'kicked' | 'idle' | 'slow_consumer' | 'shutdown' | 'logout';

/** BYE codes after which the client must not reconnect on its own (docs/protocol.md). */
export const TERMINAL_BYES: ReadonlySet<string> = new Set(['auth_failed', 'protocol_error', 'replaced', 'kicked', 'logout']);

/** What happened to the client, for logs and UI. */
export type ClientEvent =
  | { readonly type: 'welcome'; readonly welcome: Welcome }
  /** The old session is gone (`refused`: the resume became a fresh login; `idle`: BYE idle). Reload app state. */
  | { readonly type: 'session_lost'; readonly reason: 'refused' | 'idle' }
  | { readonly type: 'link_lost'; readonly error: Error }
  | { readonly type: 'bye'; readonly code: string; readonly reason?: string }
  /** An ERROR frame no pending request owns (seq 0, or an answer already given). */
  | { readonly type: 'error'; readonly seq: number; readonly code: string; readonly message: string }
  | { readonly type: 'closed'; readonly error: GateClosedError };

/** ERROR codes from the gate (§2.1, one list with the gate's own: a type-only import, so nothing loads) and the client's own. */
export type RequestErrorCode =
  | GateErrorCode
  /** The request had been sent on a session that ended: its outcome is unknown, and it was not re-sent. */
  | 'SESSION_LOST'
  /** The client closed (close(), a terminal BYE, or reconnecting gave up) before an answer came. */
  | 'CLOSED'
  /** More than `maxPending` requests were waiting; this one was never sent. */
  | 'TOO_MANY_PENDING'
  /** Bad arguments (route or body); never sent. */
  | 'BAD_REQUEST';

/** How a `request()` fails: `code` as in the gate's ERROR body (`status` for UPSTREAM_STATUS), or the client's own. */
export class GateRequestError extends Error {
  override readonly name = 'GateRequestError';
  constructor(
    readonly code: RequestErrorCode | (string & {}),
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Why the client closed: a BYE code (`kicked`, `replaced`, `auth_failed`, `protocol_error`),
 * `closed` (close() was called), `connect_failed` (the first login failed) or
 * `reconnect_failed` (`reconnect.maxAttempts` used up, or reconnecting is off).
 */
export class GateClosedError extends Error {
  override readonly name = 'GateClosedError';
  constructor(
    readonly code: ByeCode | 'closed' | 'connect_failed' | 'reconnect_failed' | (string & {}),
    message: string,
    readonly reason?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ReconnectConfig {
  /** First wait after a lost link, ms; doubles per failed attempt. */
  readonly baseMs: number;
  /** Longest wait, ms. */
  readonly maxMs: number;
  /** Attempts in a row before giving up (state `closed`). Default: never give up. */
  readonly maxAttempts?: number;
}

export interface GateClientOptions {
  readonly transport: Transport;
  /** HELLO token (the playerId under `--auth none`). */
  readonly token?: string;
  /**
   * Raw-DEFLATE decompressor. When given, HELLO asks for `compress: true` and flagged bodies are
   * inflated with it (Node: `inflateRaw` from `gate/client/node`). Without it the gate never
   * compresses, and a flagged frame is a protocol error.
   */
  readonly inflate?: (body: Uint8Array) => Uint8Array;
  /** PING interval, ms. Default: WELCOME's heartbeatMs. A link silent for 3× this is dropped. */
  readonly heartbeatMs?: number;
  /** Dial + HELLO → WELCOME must take at most this, ms. Default 10 000. */
  readonly connectTimeoutMs?: number;
  /** Backoff between reconnect attempts (equal jitter); `false`: a lost link closes the client. Default `{ baseMs: 250, maxMs: 10_000 }`. */
  readonly reconnect?: ReconnectConfig | false;
  /** Jitter source in [0, 1). Default Math.random. */
  readonly random?: () => number;
  /** ACK at once when this many pushes are unacknowledged. Default 32. */
  readonly ackEvery?: number;
  /** Otherwise ACK this long after the first unacknowledged push, ms. Default 100. */
  readonly ackDelayMs?: number;
  /** Requests waiting for an answer (sent or queued while offline); past it `request()` rejects TOO_MANY_PENDING. Default 1024. */
  readonly maxPending?: number;
  /** Every timer runs on it (TestScheduler virtualises them). Default asyncScheduler. */
  readonly scheduler?: SchedulerLike;
  /**
   * Start by resuming a session that an earlier client (or process) left detached: the first
   * HELLO carries it, with `lastSeq` the highest push that client had. If the gate refuses it
   * (`resumed: false`), the client simply has a fresh session.
   */
  readonly resume?: { readonly sessionId: string; readonly resumeToken: string; readonly lastSeq: number };
}

// ------------------------------------------------------------------------------------------------
// Internals

/** A request waiting for its answer. */
interface Pending {
  readonly seq: number;
  readonly route: number;
  /** Kept for re-sending after a resume. */
  readonly body: Uint8Array;
  readonly resolve: (body: Uint8Array) => void;
  readonly reject: (err: GateRequestError) => void;
  /** Written to a link of the current session: it may have run, so it is re-sent only on a resume. */
  sent: boolean;
}

/** Per-link state, from dial to loss. */
interface LinkLife {
  readonly link: Link;
  welcomed: boolean;
  heartbeatMs: number;
  /** WELCOME said gap: the next push is accepted whatever its seq. */
  gapOpen: boolean;
  /** Seq of our last PING. */
  pings: number;
}

/** A BYE from the gate, as the error that ends its link. */
class ByeReceived extends Error {
  override readonly name = 'ByeReceived';
  constructor(
    readonly code: string,
    readonly reason: string | undefined,
  ) {
    super(`gate said BYE ${code}${reason ? ` (${reason})` : ''}`);
  }
}

const DEFAULTS = {
  connectTimeoutMs: 10_000,
  reconnect: { baseMs: 250, maxMs: 10_000 },
  ackEvery: 32,
  ackDelayMs: 100,
  maxPending: 1024,
} as const;
/** Silence longer than this many heartbeats means the link is dead (§2.4). */
const SILENT_HEARTBEATS = 3;
/** Floor for a heartbeat told by a gate, ms (the gate's own minimum is 10). */
const MIN_HEARTBEAT_MS = 10;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

const isWelcome = (w: Welcome | null): w is Welcome => w !== null;

function parseWelcome(body: Uint8Array): Welcome {
  const w = decodeJson<Partial<Welcome> | null>(body);
  if (typeof w !== 'object' || w === null || typeof w.sessionId !== 'string' || typeof w.resumeToken !== 'string' || typeof w.heartbeatMs !== 'number')
    throw new GateProtocolError('BAD_JSON', 'WELCOME lacks sessionId, resumeToken or heartbeatMs');
  return {
    playerId: String(w.playerId ?? ''),
    sessionId: w.sessionId,
    resumeToken: w.resumeToken,
    gateId: String(w.gateId ?? ''),
    heartbeatMs: w.heartbeatMs,
    resumed: w.resumed === true,
    gap: w.gap === true,
    lastSeq: typeof w.lastSeq === 'number' ? w.lastSeq : 0,
  };
}

function positive(name: string, v: number | undefined, fallback: number): number {
  const n = v ?? fallback;
  if (!(n > 0) || !Number.isFinite(n)) throw new TypeError(`GateClient: ${name} must be a positive number`);
  return n;
}

/**
 * A game client for one player. Subscribe to `pushes$` (and `gap$`, `events$`) before
 * `connect()`; they are hot and do not replay. Single use: after `closed`, make a new one.
 */
export class GateClient {
  /** Each push once, in seq order, across reconnects. Completes when the client closes. */
  readonly pushes$: Observable<Push>;
  /** Current state; replays the latest to new subscribers. Completes after `closed`. */
  readonly state$: Observable<ClientState>;
  /** A resume reported `gap: true`: some pushes after lastSeq were dropped or already ACKed; reload app state from the game. */
  readonly gap$: Observable<void>;
  readonly events$: Observable<ClientEvent>;

  private readonly transport: Transport;
  private readonly token: string | undefined;
  private readonly inflate: ((body: Uint8Array) => Uint8Array) | undefined;
  private readonly heartbeatMs: number | undefined;
  private readonly connectTimeoutMs: number;
  private readonly reconnect: ReconnectConfig | false;
  private readonly random: () => number;
  private readonly ackEvery: number;
  private readonly ackDelayMs: number;
  private readonly maxPending: number;
  private readonly scheduler: SchedulerLike;

  // Subjects adapt this imperative API to Rx at the boundary; exposed read-only.
  private readonly state = new BehaviorSubject<ClientState>('idle');
  private readonly pushes = new Subject<Push>();
  private readonly gaps = new Subject<void>();
  private readonly events = new Subject<ClientEvent>();

  /** The resumable session, once welcomed; null before, and after it was lost. */
  private session: { sessionId: string; resumeToken: string } | null = null;
  /** The last WELCOME. */
  private lastWelcome: Welcome | null = null;
  /** The welcomed link requests and ACKs go to; null while offline. */
  private link: Link | null = null;
  /** The link being dialled or used, for dropLink(). */
  private life: LinkLife | null = null;
  /** Requests without an answer, by seq; a Map iterates in insertion (= seq) order. Bound: maxPending. */
  private readonly pending = new Map<number, Pending>();
  /** Last request seq used; seqs keep increasing for the client's whole life (§2.5). */
  private lastSeq = 0;
  /** Highest push seq delivered to pushes$ with none missing below it (since the last gap). */
  private delivered = 0;
  /** Highest push seq ACKed (or implied by a resume's lastSeq). */
  private acked = 0;
  /** The pending delayed ACK. */
  private ackTimer: Subscription | null = null;
  /** The connection loop. */
  private run: Subscription | null = null;
  /** Settles connect(). */
  private first: { promise: Promise<Welcome>; resolve: (w: Welcome) => void; reject: (e: GateClosedError) => void } | null = null;
  private closedWith: GateClosedError | null = null;

  constructor(opts: GateClientOptions) {
    if (!opts || typeof opts.transport?.open !== 'function') throw new TypeError('GateClient: transport must have an open() method');
    this.transport = opts.transport;
    this.token = opts.token;
    this.inflate = opts.inflate;
    if (opts.resume) {
      const r = opts.resume;
      if (typeof r.sessionId !== 'string' || typeof r.resumeToken !== 'string' || !(Number.isInteger(r.lastSeq) && r.lastSeq >= 0))
        throw new TypeError('GateClient: resume must be {sessionId, resumeToken, lastSeq >= 0}');
      this.session = { sessionId: r.sessionId, resumeToken: r.resumeToken };
      this.delivered = r.lastSeq;
    }
    this.heartbeatMs = opts.heartbeatMs === undefined ? undefined : positive('heartbeatMs', opts.heartbeatMs, 0);
    this.connectTimeoutMs = positive('connectTimeoutMs', opts.connectTimeoutMs, DEFAULTS.connectTimeoutMs);
    const rc: ReconnectConfig | false = opts.reconnect ?? DEFAULTS.reconnect;
    if (rc !== false) {
      positive('reconnect.baseMs', rc.baseMs, 0);
      if (!(rc.maxMs >= rc.baseMs)) throw new TypeError('GateClient: reconnect.maxMs must be >= reconnect.baseMs');
      if (rc.maxAttempts !== undefined && !(rc.maxAttempts >= 0)) throw new TypeError('GateClient: reconnect.maxAttempts must be >= 0');
    }
    this.reconnect = rc;
    this.random = opts.random ?? Math.random;
    this.ackEvery = positive('ackEvery', opts.ackEvery, DEFAULTS.ackEvery);
    this.ackDelayMs = positive('ackDelayMs', opts.ackDelayMs, DEFAULTS.ackDelayMs);
    this.maxPending = positive('maxPending', opts.maxPending, DEFAULTS.maxPending);
    this.scheduler = opts.scheduler ?? asyncScheduler;
    this.pushes$ = this.pushes.asObservable();
    this.state$ = this.state.asObservable();
    this.gap$ = this.gaps.asObservable();
    this.events$ = this.events.asObservable();
  }

  /** The current state. */
  get currentState(): ClientState {
    return this.state.value;
  }

  /** The last WELCOME (playerId, sessionId, gateId …), or null before the first. */
  get welcome(): Welcome | null {
    return this.lastWelcome;
  }

  /** Requests sent or queued and not yet settled. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Logs in. Resolves with the first WELCOME; rejects with GateClosedError if that first login
   * fails (dial error, timeout, `BYE auth_failed` …): the client is then closed. Later lost links
   * are resumed on their own. Calling it again returns the same promise.
   */
  connect(): Promise<Welcome> {
    if (this.first) return this.first.promise;
    let resolve!: (w: Welcome) => void;
    let reject!: (e: GateClosedError) => void;
    const promise = new Promise<Welcome>((res, rej) => ((resolve = res), (reject = rej)));
    this.first = { promise, resolve, reject };
    if (this.closedWith) {
      reject(this.closedWith);
      return promise;
    }
    this.run = this.loop$().subscribe({
      next: (w) => this.first?.resolve(w),
      error: (e: unknown) => this.terminate(this.closedError(e)),
    });
    return promise;
  }

  /**
   * Sends a REQUEST and resolves with the RESPONSE body. Settles exactly once: a request whose
   * link drops is re-sent with the same seq after the resume (the gate runs it once, §2.5);
   * one whose session ended rejects `SESSION_LOST`. Requests made while offline are queued and
   * sent, in order, when the client is online again. An object body is sent as JSON.
   */
  request(route: number, body?: Uint8Array | string | object): Promise<Uint8Array> {
    if (this.closedWith) return Promise.reject(new GateRequestError('CLOSED', 'the client is closed', undefined, { cause: this.closedWith }));
    if (!Number.isInteger(route) || route < 0 || route > U16_MAX) return Promise.reject(new GateRequestError('BAD_REQUEST', `route must be 0–${U16_MAX}`));
    if (this.pending.size >= this.maxPending)
      return Promise.reject(new GateRequestError('TOO_MANY_PENDING', `${this.pending.size} requests are already waiting (maxPending)`));
    if (this.lastSeq >= U32_MAX) return Promise.reject(new GateRequestError('BAD_REQUEST', 'request seqs are used up; make a new client'));
    // Copy caller-owned bytes: the body is kept for a re-send and must not change under us.
    const bytes = body instanceof Uint8Array ? new Uint8Array(body) : toBytes(body);
    const seq = ++this.lastSeq;
    return new Promise<Uint8Array>((resolve, reject) => {
      const p: Pending = { seq, route, body: bytes, resolve, reject, sent: false };
      this.pending.set(seq, p);
      if (this.link) p.sent = this.link.send(frame(FrameType.REQUEST, seq, bytes, route));
    });
  }

  /** `request()` with the answer parsed as UTF-8 JSON. */
  async requestJson<T = unknown>(route: number, body?: Uint8Array | string | object): Promise<T> {
    return decodeJson<T>(await this.request(route, body));
  }

  /** Sends a notify (REQUEST seq 0: no answer, no dedupe). Returns false, and sends nothing, while offline. */
  notify(route: number, body?: Uint8Array | string | object): boolean {
    if (!Number.isInteger(route) || route < 0 || route > U16_MAX) throw new TypeError(`GateClient.notify: route must be 0–${U16_MAX}`);
    return this.link !== null && this.link.send(frame(FrameType.REQUEST, 0, toBytes(body), route));
  }

  /**
   * Drops the current link without a goodbye, as a network loss would; the client then resumes
   * like after any lost link. For tests and "reconnect now" buttons.
   */
  dropLink(): void {
    this.life?.link.abort();
  }

  /**
   * Logs out (BYE logout: the session ends, no resume) and closes. Every pending request rejects
   * `CLOSED`; state goes `closed`. Resolves once the client has let go of its link.
   */
  close(): Promise<void> {
    if (this.closedWith) return Promise.resolve();
    this.link?.send(jsonFrame(FrameType.BYE, { code: 'logout' }));
    this.terminate(new GateClosedError('closed', 'closed by the client'));
    return Promise.resolve();
  }

  // ---------------------------------------------------------------------------------- the loop

  /**
   * Dial → HELLO → WELCOME → frames, again after every lost link (capped exponential backoff with
   * equal jitter), until a terminal BYE, close(), or maxAttempts. Emits each WELCOME; the retry
   * count resets on each (resetOnSuccess).
   */
  private loop$(): Observable<Welcome> {
    const rc = this.reconnect;
    return defer(() => this.attempt$()).pipe(
      retry({
        count: rc === false ? 0 : (rc.maxAttempts ?? Infinity),
        resetOnSuccess: true,
        delay: (err: unknown, n: number) => {
          if (rc === false || this.isTerminal(err)) return throwError(() => err);
          const d = Math.min(rc.baseMs * 2 ** (n - 1), rc.maxMs);
          return timer(d / 2 + (this.random() * d) / 2, this.scheduler);
        },
      }),
    );
  }

  /** One link's life. Errors when the link ends, in any way. */
  private attempt$(): Observable<Welcome> {
    return defer(() => {
      this.setState(this.lastWelcome ? 'reconnecting' : 'connecting');
      return this.transport.open();
    }).pipe(
      timeout({
        first: this.connectTimeoutMs,
        scheduler: this.scheduler,
        with: () => throwError(() => new GateLinkError('CONNECT_TIMEOUT', `no connection within ${this.connectTimeoutMs}ms`)),
      }),
      switchMap((link) => this.linked$(link)),
      tap({ error: (e: unknown) => this.linkLost(e) }),
    );
  }

  private linked$(link: Link): Observable<Welcome> {
    return defer(() => {
      const life: LinkLife = { link, welcomed: false, heartbeatMs: 0, gapOpen: false, pings: 0 };
      this.life = life;
      link.send(this.hello());
      return link.frames$.pipe(
        // Whatever way a link ends, it is an error here: retry() decides what comes next.
        concatWith(throwError(() => new GateLinkError('LINK_CLOSED', 'the link closed'))),
        connect((f$) =>
          merge(
            f$.pipe(
              map((f) => this.onFrame(life, f)),
              filter(isWelcome),
            ),
            // Silence watchdog: WELCOME within connectTimeoutMs, then any frame within 3 heartbeats.
            f$.pipe(
              startWith(null),
              switchMap(() =>
                life.welcomed
                  ? timer(SILENT_HEARTBEATS * life.heartbeatMs, this.scheduler).pipe(
                      mergeMap(() => throwError(() => new GateLinkError('HEARTBEAT_TIMEOUT', `nothing heard for ${SILENT_HEARTBEATS * life.heartbeatMs}ms`))),
                    )
                  : timer(this.connectTimeoutMs, this.scheduler).pipe(
                      mergeMap(() => throwError(() => new GateLinkError('CONNECT_TIMEOUT', `no WELCOME within ${this.connectTimeoutMs}ms`))),
                    ),
              ),
            ),
            // Heartbeat: PING every heartbeatMs once welcomed.
            f$.pipe(
              first((f) => f.type === FrameType.WELCOME),
              switchMap(() => interval(life.heartbeatMs, this.scheduler)),
              tap(() => link.send(frame(FrameType.PING, (life.pings = (life.pings + 1) >>> 0)))),
              ignoreElements(),
            ),
          ),
        ),
        finalize(() => this.unlink(life)),
      );
    });
  }

  private hello(): GateFrame {
    const body: Record<string, unknown> = {};
    if (this.token !== undefined) body.token = this.token;
    if (this.session) body.resume = { sessionId: this.session.sessionId, resumeToken: this.session.resumeToken, lastSeq: this.delivered };
    if (this.inflate) body.compress = true;
    return jsonFrame(FrameType.HELLO, body);
  }

  /** Handles one frame; returns the Welcome for a WELCOME. Throws to end the link (BYE, bad frame). */
  private onFrame(life: LinkLife, f: GateFrame): Welcome | null {
    switch (f.type) {
      case FrameType.WELCOME:
        return life.welcomed ? null : this.onWelcome(life, parseWelcome(this.body(f)));
      case FrameType.RESPONSE: {
        const p = this.pending.get(f.seq);
        if (p && p.sent) {
          this.pending.delete(f.seq);
          p.resolve(this.body(f));
        }
        return null;
      }
      case FrameType.ERROR:
        this.onError(f);
        return null;
      case FrameType.PUSH:
        if (life.welcomed) this.onPush(life, f);
        return null;
      case FrameType.PING:
        life.link.send(frame(FrameType.PONG, f.seq));
        return null;
      case FrameType.BYE: {
        let bye: { code?: unknown; reason?: unknown } = {};
        try {
          bye = decodeJson<typeof bye>(f.body) ?? {};
        } catch {
          // A BYE whose body is not JSON still ends the link; its code is unknown.
        }
        const code = typeof bye.code === 'string' ? bye.code : 'unknown';
        const reason = typeof bye.reason === 'string' ? bye.reason : undefined;
        this.events.next(reason === undefined ? { type: 'bye', code } : { type: 'bye', code, reason });
        if (code === 'idle') this.loseSession('idle');
        throw new ByeReceived(code, reason);
      }
      default:
        return null; // PONG (any frame is life), and types a client never gets
    }
  }

  private onWelcome(life: LinkLife, w: Welcome): Welcome {
    const resumed = this.session !== null && w.resumed;
    if (this.session && !resumed) this.loseSession('refused');
    if (resumed) {
      this.acked = this.delivered; // the HELLO's lastSeq counted as an ACK
    } else {
      this.delivered = 0;
      this.acked = 0;
    }
    this.session = { sessionId: w.sessionId, resumeToken: w.resumeToken };
    this.lastWelcome = w;
    life.welcomed = true;
    life.heartbeatMs = Math.max(MIN_HEARTBEAT_MS, this.heartbeatMs ?? w.heartbeatMs);
    life.gapOpen = resumed && w.gap;
    this.link = life.link;
    // Unanswered requests first, same seqs, in seq order (the gate answers a seen seq from its
    // window, §2.5); then the ones queued while offline. All before anyone hears we are online,
    // so a request() made from a state$ callback cannot be sent twice.
    for (const p of this.pending.values()) p.sent = life.link.send(frame(FrameType.REQUEST, p.seq, p.body, p.route)) || p.sent;
    this.setState('online');
    this.events.next({ type: 'welcome', welcome: w });
    if (life.gapOpen) this.gaps.next();
    return w;
  }

  private onError(f: GateFrame): void {
    let e: { code?: unknown; message?: unknown; status?: unknown } = {};
    try {
      e = decodeJson<typeof e>(this.body(f)) ?? {};
    } catch {
      // Keep going with an unknown code: the request still has to settle.
    }
    const code = typeof e.code === 'string' ? e.code : 'UNKNOWN';
    const message = typeof e.message === 'string' ? e.message : code;
    const p = this.pending.get(f.seq);
    if (f.seq !== 0 && p && p.sent) {
      this.pending.delete(f.seq);
      p.reject(new GateRequestError(code, message, typeof e.status === 'number' ? e.status : undefined));
    } else this.events.next({ type: 'error', seq: f.seq, code, message });
  }

  private onPush(life: LinkLife, f: GateFrame): void {
    if (f.seq <= this.delivered) return; // replayed after a resume: already delivered
    if (f.seq !== this.delivered + 1 && !life.gapOpen) this.gaps.next(); // a hole the gate did not announce
    life.gapOpen = false;
    this.delivered = f.seq;
    this.pushes.next({ route: f.route, seq: f.seq, body: this.body(f) });
    if (this.delivered - this.acked >= this.ackEvery) this.flushAck();
    else this.ackTimer ??= this.scheduler.schedule(() => {
      this.ackTimer = null;
      this.flushAck();
    }, this.ackDelayMs);
  }

  private flushAck(): void {
    this.ackTimer?.unsubscribe();
    this.ackTimer = null;
    if (this.link && this.delivered > this.acked && this.link.send(frame(FrameType.ACK, this.delivered))) this.acked = this.delivered;
  }

  /** A frame's body, inflated when flagged. */
  private body(f: GateFrame): Uint8Array {
    if ((f.flags & FLAG_DEFLATE) === 0) return f.body;
    if (!this.inflate) throw new GateProtocolError('FRAME_COMPRESSED', 'compressed frame, but no inflate was configured (HELLO did not ask for compression)');
    return this.inflate(f.body);
  }

  /** The session ended: requests it may have run are rejected (never re-sent); push seqs restart. */
  private loseSession(reason: 'refused' | 'idle'): void {
    this.session = null;
    this.delivered = 0;
    this.acked = 0;
    for (const p of [...this.pending.values()]) {
      if (!p.sent) continue;
      this.pending.delete(p.seq);
      p.reject(new GateRequestError('SESSION_LOST', `the session ended (${reason}) before request #${p.seq} was answered; it may or may not have run`));
    }
    this.events.next({ type: 'session_lost', reason });
  }

  /** A link ended (or never came up). Runs before retry() decides. */
  private linkLost(err: unknown): void {
    if (this.closedWith || this.isTerminal(err)) return;
    // A silent link may be half-open: drop it at once rather than wait for a graceful close.
    if (err instanceof GateLinkError && (err.code === 'HEARTBEAT_TIMEOUT' || err.code === 'CONNECT_TIMEOUT')) this.life?.link.abort();
    this.events.next({ type: 'link_lost', error: err instanceof Error ? err : new Error(String(err)) });
    this.setState('detached');
  }

  /** Lets go of a link whose pipeline ended. */
  private unlink(life: LinkLife): void {
    if (this.life === life) this.life = null;
    if (this.link === life.link) {
      this.link = null;
      this.ackTimer?.unsubscribe();
      this.ackTimer = null;
    }
  }

  private isTerminal(err: unknown): boolean {
    if (err instanceof ByeReceived) return TERMINAL_BYES.has(err.code);
    return this.lastWelcome === null; // the first login fails fast
  }

  private closedError(err: unknown): GateClosedError {
    if (err instanceof GateClosedError) return err;
    if (err instanceof ByeReceived) return new GateClosedError(err.code, err.message, err.reason, { cause: err });
    const why = err instanceof Error ? err.message : String(err);
    return this.lastWelcome === null
      ? new GateClosedError('connect_failed', `could not log in: ${why}`, undefined, { cause: err })
      : new GateClosedError('reconnect_failed', `gave up reconnecting: ${why}`, undefined, { cause: err });
  }

  /** Closes for good: stops the loop, rejects what is pending, completes every stream. */
  private terminate(err: GateClosedError): void {
    if (this.closedWith) return;
    this.closedWith = err;
    // close() first, so a BYE just sent is flushed; unsubscribing then tears the link down.
    this.link?.close();
    this.run?.unsubscribe();
    this.run = null;
    for (const p of [...this.pending.values()]) p.reject(new GateRequestError('CLOSED', `request #${p.seq} has no answer: ${err.message}`, undefined, { cause: err }));
    this.pending.clear();
    this.first?.reject(err);
    this.setState('closed');
    this.events.next({ type: 'closed', error: err });
    this.pushes.complete();
    this.gaps.complete();
    this.events.complete();
    this.state.complete();
  }

  private setState(s: ClientState): void {
    if (this.state.value !== s && !this.state.closed) this.state.next(s);
  }
}

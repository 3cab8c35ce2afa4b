import { randomBytes, randomUUID } from 'node:crypto';
import type { Fence } from '../cluster/redisSessions.js';
import type { Connection } from '../connection.js';
import type { QuietWatch } from '../ops/idleTimeout.js';
import { PushBuffer } from './pushBuffer.js';
import type { PushIds } from './pushIds.js';
import { RequestWindow } from './requestWindow.js';

/**
 * Resume tokens come from a pool of random base64url refilled 3 KB at a time: one call into the
 * CSPRNG per 170 logins instead of one per login (a reconnect storm logs in thousands a second).
 * 18 bytes are exactly 24 base64url characters, so each slice is one token's own 144 bits.
 */
const TOKEN_BYTES = 18;
const TOKEN_CHARS = 24;
const TOKENS_PER_FILL = 170;
let tokens = '';
let tokenAt = 0;

/** A fresh resume token: 144 random bits, URL-safe. */
export function newResumeToken(): string {
  if (tokenAt + TOKEN_CHARS > tokens.length) {
    tokens = randomBytes(TOKEN_BYTES * TOKENS_PER_FILL).toString('base64url');
    tokenAt = 0;
  }
  const t = tokens.slice(tokenAt, tokenAt + TOKEN_CHARS);
  tokenAt += TOKEN_CHARS;
  return t;
}

/** Per-session state of the cluster's notice and ACK handling, owned by ClusterNode. */
export interface SessionSync {
  /** A hole fill (range reads) is running; notices meanwhile only raise `fillTo`. */
  filling: boolean;
  fillTo: number;
  /** ACK script in flight, and the highest ACK waiting behind it (0: none). */
  acking: boolean;
  ackWanted: number;
}

export type SessionState = 'online' | 'detached' | 'ended';

/**
 * One player's session (§2.4): lives from WELCOME until logout, kick, replacement or idle
 * timeout, and outlives its connections. Holds the push sequence, the replay buffer and the
 * link it is attached to, if any.
 */
export class Session {
  readonly sessionId: string;
  readonly resumeToken: string;
  state: SessionState = 'online';
  /** The attached link; null while detached. */
  conn: Connection | null;
  /** Last push seq assigned (pushes are numbered 1, 2, 3 … per session). */
  pushSeq = 0;
  /** Highest push seq written to the current link (replay and live pushes go out in order). */
  sentUpTo = 0;
  /** True while the replay pump owns the link's push order (live pushes wait in the buffer). */
  pumping = false;
  readonly buffer: PushBuffer;
  /** Ids of recent pushes that carried one (dedupe of a retried POST); null until the first. */
  pushIds: PushIds | null = null;
  /** Created at the first REQUEST: a player that only listens never pays for it. */
  private requests: RequestWindow | null = null;
  private readonly windowSize: number;
  private readonly windowBytes: number | undefined;
  /** Requests admitted and not yet answered (--player-queue-max pauses reading past it). */
  unanswered = 0;
  /** The link whose reading was paused because `unanswered` reached the bound; null when reading. */
  pausedLink: Connection | null = null;
  /** Client asked for compressed RESPONSE/PUSH bodies (§2.2). */
  compress: boolean;
  /** The --idle-timeout clock (idleTimeout's state machine): each REQUEST touches it. Set by the gate. */
  idle: QuietWatch<Session> | null = null;
  /** Cluster mode: the generation this member holds the session at in Redis; null on a single node. */
  fence: Fence | null = null;
  /** Cluster mode: it ended here because it moved to another holder (not because it ended for good). */
  moved = false;
  /** When the last REQUEST arrived on this gate, ms since the epoch; null before the first. */
  lastRequestAt: number | null = null;
  /** Cluster mode: notices and ACKs in flight for this session (lib/cluster/clusterNode.ts). */
  sync: SessionSync | null = null;

  readonly playerId: string;

  constructor(o: {
    playerId: string;
    conn: Connection;
    /** --buffer-max */
    bufferMax: number;
    /** --buffer-max-bytes */
    bufferMaxBytes?: number;
    /** --request-window */
    requestWindow: number;
    /** --request-window-bytes */
    requestWindowBytes?: number;
    compress: boolean;
    /** Chosen before login when the backend must see it (POST /connect names the session to be). */
    sessionId?: string;
    /** A session resumed from the cluster store keeps its token; a new one gets a fresh one. */
    resumeToken?: string;
  }) {
    this.playerId = o.playerId;
    this.sessionId = o.sessionId ?? randomUUID();
    this.resumeToken = o.resumeToken ?? newResumeToken();
    this.conn = o.conn;
    this.buffer = new PushBuffer(o.bufferMax, o.bufferMaxBytes);
    this.windowSize = o.requestWindow;
    this.windowBytes = o.requestWindowBytes;
    this.compress = o.compress;
  }

  /** Outcomes of the last --request-window request seqs (§2.5). */
  get window(): RequestWindow {
    return (this.requests ??= new RequestWindow(this.windowSize, this.windowBytes));
  }

  /** The client's REQUEST: restarts the idle clock, and is remembered for lookups (`lastRequestAt`). */
  touch(): void {
    this.idle?.touch();
    this.lastRequestAt = Date.now();
  }

  /** Stops the idle clock; called once when the session ends. */
  endActivity(): void {
    this.idle?.unsubscribe();
    this.idle = null;
  }
}

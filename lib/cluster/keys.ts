/**
 * Redis key names of the cluster session store (docs/design/cluster.md §2). Every gate on the
 * same Redis and prefix is one cluster. A session is keyed by its player, so "one live session
 * per player" is part of the layout and a push by playerId is one script call.
 *
 * | key            | type   | content and bound                                                     |
 * | -------------- | ------ | --------------------------------------------------------------------- |
 * | `P epoch`      | STRING | the cluster epoch (random hex); changes when Redis's run_id changes   |
 * | `P runid`      | STRING | the Redis run_id the epoch belongs to                                 |
 * | `P s:<pid>`    | HASH   | session meta: the fields in `FIELDS`                                  |
 * | `P q:<pid>`    | LIST   | kept pushes, exactly seqs fgt+1 … seq; element = u16 route ‖ body;     |
 * |                |        | ≤ bufferMax elements and ≤ bufferMaxBytes of bodies (newest always)   |
 * | `P i:<pid>`    | ZSET   | push id → seq, the last max(bufferMax, 1024) pushes that carried one  |
 * | `P x:<sid>`    | STRING | sessionId → playerId; on end the tombstone `~<reason>` for 10 min     |
 * | `P n:<member>` | channel| notices to the member holding a session: `P` push, `M` moved, `E` ended |
 * | `P o:<member>` | SET    | players whose link the member holds (what a reaper takes over)        |
 * | `P idle`       | ZSET   | player → Redis time of its last REQUEST (login, resume); the idle sweep |
 * | `P members`    | ZSET   | member → Redis time of its last beat                                  |
 * | `P m:<member>` | HASH   | the member's figures (gateId, addresses, counts); expires after 3 beats |
 * | `P dead:<m>`   | STRING | the member that declared <m> dead and reaps it; 1 h                   |
 * | `P ctl`        | channel| cluster-wide news: `dead <member>`                                    |
 * | `P w:<pid>`    | HASH   | request seq → R<gen>:<member> running, D‖answer done, U unknown, N not run |
 * | `P wl:<pid>`   | LIST   | the window's seqs in admission order, ≤ --request-window              |
 * | `P r:<member>` | HASH   | pid → requests the member is running (what becomes U if it dies)      |
 * | `P ev`         | STREAM | backend events not yet posted, in the order of the changes (≤ 100,000) |
 * | `P ev:lease`   | STRING | the member posting them; PX 5 s, renewed while it posts               |
 */

/** The default `--redis-prefix`. */
export const DEFAULT_PREFIX = 'gate:';

/**
 * The type tag after the prefix. The scripts build the names of keys they find only while
 * running (the `x:` of a replaced session, the `s:` behind a resumed sessionId) from these too.
 */
export const KEY_TAGS = {
  meta: 's:',
  pushes: 'q:',
  pushIds: 'i:',
  sessionId: 'x:',
  notices: 'n:',
  held: 'o:',
  idle: 'idle',
  members: 'members',
  member: 'm:',
  dead: 'dead:',
  control: 'ctl',
  window: 'w:',
  windowOrder: 'wl:',
  running: 'r:',
  events: 'ev',
  eventLease: 'ev:lease',
} as const;

/** Most backend events waiting in the stream; past it the oldest go (Redis trims exactly). */
export const EVENTS_STREAM_MAX = 100_000;

/** Fields of the `s:<pid>` hash. */
export const FIELDS = {
  /** sessionId */
  sid: 'sid',
  /** sha256 hex of the resume token: the token itself never reaches Redis */
  tok: 'tok',
  /** owner member id; '' while detached */
  own: 'own',
  /** fencing generation: +1 on every login and every resume */
  gen: 'gen',
  /** `online` or `detached` */
  st: 'st',
  /** last push seq assigned */
  seq: 'seq',
  /** forgottenUpTo: highest seq no longer kept (ACKed, dropped by a bound, or burned) */
  fgt: 'fgt',
  /** highest ACK */
  ack: 'ack',
  /** body bytes kept in `q:` */
  b: 'b',
  /** the cluster epoch this session was last written under */
  ep: 'ep',
  /** 1 when the session crossed an epoch change since its last resume */
  xs: 'xs',
  /** while detached: the member it was detached from (may end it at the same gen; told when it moves) */
  lo: 'lo',
} as const;

/** The keys of one player's session. */
export interface SessionKeys {
  readonly meta: string;
  readonly pushes: string;
  readonly pushIds: string;
  readonly window: string;
  readonly windowOrder: string;
}

export const sessionKeys = (prefix: string, playerId: string): SessionKeys => ({
  meta: prefix + KEY_TAGS.meta + playerId,
  pushes: prefix + KEY_TAGS.pushes + playerId,
  pushIds: prefix + KEY_TAGS.pushIds + playerId,
  window: prefix + KEY_TAGS.window + playerId,
  windowOrder: prefix + KEY_TAGS.windowOrder + playerId,
});

/** sessionId → playerId, or the `~<reason>` tombstone of an ended session. */
export const sessionIdKey = (prefix: string, sessionId: string): string => prefix + KEY_TAGS.sessionId + sessionId;

export const epochKey = (prefix: string): string => `${prefix}epoch`;

export const runIdKey = (prefix: string): string => `${prefix}runid`;

/** How long `x:<sid>` tells a late resume why its session ended, ms. */
export const TOMBSTONE_MS = 10 * 60_000;

/** The channel a member hears its sessions' notices on. */
export const noticeChannel = (prefix: string, member: string): string => prefix + KEY_TAGS.notices + member;

/** Push bodies up to this size travel inside the notice; a larger one is read with `range`. */
export const NOTICE_INLINE_MAX = 16 * 1024;

export const idleKey = (prefix: string): string => prefix + KEY_TAGS.idle;
export const membersKey = (prefix: string): string => prefix + KEY_TAGS.members;
export const memberKey = (prefix: string, member: string): string => prefix + KEY_TAGS.member + member;
export const deadKey = (prefix: string, member: string): string => prefix + KEY_TAGS.dead + member;
export const heldKey = (prefix: string, member: string): string => prefix + KEY_TAGS.held + member;
export const eventsKey = (prefix: string): string => prefix + KEY_TAGS.events;
export const eventLeaseKey = (prefix: string): string => prefix + KEY_TAGS.eventLease;

/**
 * The demo game: rooms with chat and a shared counter per room. Pure state machine, no I/O:
 * each call returns the reply and the pushes to send, and the HTTP edge (demoBackend.ts) sends them.
 * The clock is injected so tests can pin `at`.
 */

/** Request routes (u16), as the client sends them in REQUEST frames. */
export const ROUTES = { join: 1, chat: 2, incr: 3, leave: 4, echo: 5, whoami: 6 } as const;
/** Push routes the game sends. */
export const PUSH_ROUTES = { joined: 101, chat: 102, counter: 103, left: 104 } as const;

/** Longest room name and chat text accepted, in UTF-16 units. */
export const MAX_ROOM_NAME = 64;
export const MAX_CHAT_TEXT = 2000;
/** Largest |by| for `incr`, so the counter stays a safe integer for a very long time. */
export const MAX_INCR = 1_000_000;

export interface DemoGameConfig {
  /** Epoch ms for chat `at`. Default Date.now. */ now?: () => number;
  /** Rooms kept (empty ones keep their counter until evicted, oldest first). Default 10 000. */ maxRooms?: number;
}

/** One REQUEST as the backend sees it: route, raw body, and the gate's identity headers. */
export interface RpcCall {
  readonly route: number;
  readonly body: Uint8Array;
  readonly playerId: string | null;
  readonly sessionId: string | null;
  readonly gateId: string | null;
}

/** A JSON reply, or raw bytes (echo). `status` is the HTTP status. */
export type Reply =
  | { readonly status: number; readonly json: unknown }
  | { readonly status: number; readonly bytes: Uint8Array };

/** A push to some players, in the shape of the gate's push API (CONTRACT §4) minus the fan-out. */
export interface Push {
  readonly playerIds: readonly string[];
  readonly route: number;
  readonly data: unknown;
}

export interface Outcome {
  readonly reply: Reply;
  readonly pushes: readonly Push[];
}

interface Room {
  readonly members: Set<string>; // playerIds in join order (Set keeps insertion order)
  counter: number; // shared counter; survives the room emptying until the room is evicted
}

/** A refusal raised while handling one call; becomes a 4xx/5xx JSON reply, never escapes. */
class GameRefusal extends Error {
  override readonly name = 'GameRefusal';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Body → JSON object; an empty body is `{}` so `leave`/`incr`/`whoami` need none. */
function parseObject(body: Uint8Array): Record<string, unknown> {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(body));
  } catch (err) {
    throw new GameRefusal(400, 'bad_request', `body is not UTF-8 JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GameRefusal(400, 'bad_request', 'body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

const json = (status: number, value: unknown): Reply => ({ status, json: value });
const OK: Reply = json(200, { ok: true });

export class DemoGame {
  private readonly rooms = new Map<string, Room>(); // room name → room; ≤ maxRooms
  private readonly roomOf = new Map<string, string>(); // playerId → room it is in; one room at a time
  private readonly now: () => number;
  private readonly maxRooms: number;

  constructor({ now = Date.now, maxRooms = 10_000 }: DemoGameConfig = {}) {
    if (!(Number.isInteger(maxRooms) && maxRooms > 0)) throw new TypeError('DemoGame: maxRooms must be a positive integer');
    this.now = now;
    this.maxRooms = maxRooms;
  }

  /** Handles one REQUEST. Never throws: refusals become 4xx replies. */
  rpc(call: RpcCall): Outcome {
    // echo first and without parsing: the benchmarks measure the gate, not JSON.
    if (call.route === ROUTES.echo) return { reply: { status: 200, bytes: call.body }, pushes: [] };
    try {
      switch (call.route) {
        case ROUTES.join:
          return this.join(player(call), parseObject(call.body));
        case ROUTES.chat:
          return this.chat(player(call), parseObject(call.body));
        case ROUTES.incr:
          return this.incr(player(call), parseObject(call.body));
        case ROUTES.leave:
          parseObject(call.body); // a malformed body is still a bad request
          return { reply: OK, pushes: this.leave(player(call)) };
        case ROUTES.whoami:
          return { reply: json(200, { playerId: call.playerId, sessionId: call.sessionId, gateId: call.gateId }), pushes: [] };
        default:
          return { reply: json(404, { error: 'unknown_route', message: `no route ${call.route}` }), pushes: [] };
      }
    } catch (err) {
      if (err instanceof GameRefusal) return { reply: json(err.status, { error: err.code, message: err.message }), pushes: [] };
      throw err;
    }
  }

  /** The player's session ended (`offline` event): it leaves its room. */
  offline(playerId: string): readonly Push[] {
    return this.leave(playerId);
  }

  /** Members of a room, in join order (for tests and docs). */
  members(room: string): readonly string[] {
    return [...(this.rooms.get(room)?.members ?? [])];
  }

  private join(playerId: string, body: Record<string, unknown>): Outcome {
    const name = body['room'];
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_ROOM_NAME) {
      throw new GameRefusal(400, 'bad_request', `room must be a string of 1-${MAX_ROOM_NAME} characters`);
    }
    const pushes: Push[] = [];
    if (this.roomOf.get(playerId) !== name) {
      const room = this.room(name); // first: it may refuse, and then nothing has changed
      pushes.push(...this.leave(playerId)); // one room at a time: joining elsewhere leaves the old one
      const others = [...room.members];
      room.members.add(playerId);
      this.roomOf.set(playerId, name);
      if (others.length > 0) pushes.push({ playerIds: others, route: PUSH_ROUTES.joined, data: { event: 'joined', playerId, room: name } });
    }
    const room = this.rooms.get(name);
    return { reply: json(200, { room: name, members: [...(room?.members ?? [])], counter: room?.counter ?? 0 }), pushes };
  }

  private chat(playerId: string, body: Record<string, unknown>): Outcome {
    const text = body['text'];
    if (typeof text !== 'string' || text.length === 0 || text.length > MAX_CHAT_TEXT) {
      throw new GameRefusal(400, 'bad_request', `text must be a string of 1-${MAX_CHAT_TEXT} characters`);
    }
    const room = this.joined(playerId);
    return { reply: OK, pushes: [{ playerIds: [...room.members], route: PUSH_ROUTES.chat, data: { from: playerId, text, at: this.now() } }] };
  }

  private incr(playerId: string, body: Record<string, unknown>): Outcome {
    const by = body['by'] ?? 1;
    if (typeof by !== 'number' || !Number.isInteger(by) || Math.abs(by) > MAX_INCR) {
      throw new GameRefusal(400, 'bad_request', `by must be an integer within ±${MAX_INCR}`);
    }
    const room = this.joined(playerId);
    room.counter += by;
    const counter = room.counter;
    return { reply: json(200, { counter }), pushes: [{ playerIds: [...room.members], route: PUSH_ROUTES.counter, data: { counter, by: playerId } }] };
  }

  /** Removes the player from its room, if any; the others hear about it. Idempotent. */
  private leave(playerId: string): Push[] {
    const name = this.roomOf.get(playerId);
    if (name === undefined) return [];
    this.roomOf.delete(playerId);
    const room = this.rooms.get(name);
    if (!room) return [];
    room.members.delete(playerId);
    return room.members.size > 0
      ? [{ playerIds: [...room.members], route: PUSH_ROUTES.left, data: { event: 'left', playerId } }]
      : [];
  }

  private joined(playerId: string): Room {
    const name = this.roomOf.get(playerId);
    const room = name === undefined ? undefined : this.rooms.get(name);
    if (!room) throw new GameRefusal(409, 'not_in_room', 'join a room first (route 1)');
    return room;
  }

  /** Gets or creates a room, evicting the oldest empty room past maxRooms so memory stays bounded. */
  private room(name: string): Room {
    const existing = this.rooms.get(name);
    if (existing) return existing;
    if (this.rooms.size >= this.maxRooms) {
      for (const [n, r] of this.rooms) {
        if (r.members.size === 0) {
          this.rooms.delete(n);
          break;
        }
      }
      if (this.rooms.size >= this.maxRooms) throw new GameRefusal(503, 'too_many_rooms', `all ${this.maxRooms} rooms are in use`);
    }
    const room: Room = { members: new Set(), counter: 0 };
    this.rooms.set(name, room);
    return room;
  }
}

/** Routes 1-4 act as a player, so the gate must have named one. */
function player(call: RpcCall): string {
  if (call.playerId === null || call.playerId === '') throw new GameRefusal(400, 'bad_request', 'missing x-player-id header');
  return call.playerId;
}

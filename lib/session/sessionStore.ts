import type { Session } from './session.js';

/**
 * Where sessions live. Small on purpose: cluster mode (§5) puts the same interface over Redis,
 * keeping this local index for the sessions attached here.
 */
export interface SessionStore {
  byPlayer(playerId: string): Session | undefined;
  bySession(sessionId: string): Session | undefined;
  /** Adds a session; the caller has already ended any other session of the player. */
  add(s: Session): void;
  remove(s: Session): void;
  readonly size: number;
  all(): IterableIterator<Session>;
}

/** The single-node store: two maps. */
export class MemorySessionStore implements SessionStore {
  private readonly players = new Map<string, Session>();
  private readonly sessions = new Map<string, Session>();

  byPlayer(playerId: string): Session | undefined {
    return this.players.get(playerId);
  }

  bySession(sessionId: string): Session | undefined {
    return this.sessions.get(sessionId);
  }

  add(s: Session): void {
    this.players.set(s.playerId, s);
    this.sessions.set(s.sessionId, s);
  }

  remove(s: Session): void {
    if (this.players.get(s.playerId) === s) this.players.delete(s.playerId);
    this.sessions.delete(s.sessionId);
  }

  get size(): number {
    return this.sessions.size;
  }

  all(): IterableIterator<Session> {
    return this.sessions.values();
  }
}

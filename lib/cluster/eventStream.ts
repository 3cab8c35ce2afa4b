/**
 * Cluster mode's backend events (CONTRACT §3 POST /events): the scripts that change sessions
 * write their events into one Redis stream, and one member at a time (the lease holder) posts
 * it to the backend, oldest first. So the events of a session come in the order of its changes
 * whichever gates made them, and a gate killed right after a change loses none: the event was
 * written by the same atomic step.
 *
 * At-least-once: a holder that dies between the backend's 2xx and deleting the batch leaves it
 * to the next holder, who posts it again; each event carries its stream `id` for dedupe.
 */
import { EMPTY, catchError, defer, exhaustMap, filter, firstValueFrom, from, map, merge, timer, type Observable } from 'rxjs';
import type { BackendEvent } from '../streams/backend.js';
import type { RedisSessions, StreamEvent } from './redisSessions.js';

export interface EventStreamConfig {
  /** Most events per POST /events (`--events-batch-max`). */
  readonly batchMax: number;
  /** How long a holder's lease lasts without renewal, ms: another member takes over after it. */
  readonly leaseMs?: number;
  /** How often the holder looks for new events, and others for a free lease, ms. */
  readonly pollMs?: number;
}

const LEASE_MS = 5_000;
const POLL_MS = 100;

export class EventStream {
  /** Events posted by this member, and failed posts (each retried on the next poll). */
  posted = 0;
  failures = 0;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  /** Set by `flushed`: the drain loop stops taking batches. */
  private stopping = false;
  private inflight: Promise<unknown> | null = null;

  constructor(
    private readonly sessions: RedisSessions,
    private readonly post: (batch: readonly BackendEvent[]) => Promise<void>,
    private readonly cfg: EventStreamConfig,
    private readonly onError: (err: unknown) => void,
  ) {
    this.leaseMs = cfg.leaseMs ?? LEASE_MS;
    this.pollMs = cfg.pollMs ?? POLL_MS;
  }

  /**
   * The drain loop (subscribe once, at the edge): every poll, one batch if this member holds
   * (or can take) the lease. exhaustMap: a slow backend never stacks posts up.
   */
  get drain$(): Observable<never> {
    return timer(0, this.pollMs).pipe(
      filter(() => !this.stopping),
      exhaustMap(() =>
        defer(() => this.postBatch()).pipe(
          catchError((e: unknown) => {
            this.failures++;
            this.onError(e);
            return EMPTY;
          }),
        ),
      ),
      filter((): boolean => false),
    ) as Observable<never>;
  }

  /**
   * Shutdown: stops the drain loop, then posts what is left while this member can hold the
   * lease, up to `ms`. True when the stream is empty, or another live member holds the lease (it
   * posts the rest); the lease is given up either way, so the next holder starts at once.
   */
  async flushed(ms: number): Promise<boolean> {
    this.stopping = true;
    let give = false;
    const done = (async (): Promise<boolean> => {
      await this.inflight?.catch(() => undefined); // the loop's batch in flight: never two posts of one batch
      for (;;) {
        let r: 'empty' | 'busy' | 'more';
        try {
          r = await this.postBatch();
        } catch {
          r = 'more';
          await firstValueFrom(timer(this.pollMs));
        }
        if (r !== 'more') return true;
        if (give) return false;
      }
    })();
    const ok = await firstValueFrom(merge(from(done), timer(ms).pipe(map(() => false))));
    give = true;
    await this.sessions.evRelease().catch(() => undefined);
    return ok;
  }

  /** One batch: `busy` (another member holds the lease), `empty`, or `more` (posted one; look again). */
  private postBatch(): Promise<'empty' | 'busy' | 'more'> {
    const p = this.postOnce();
    this.inflight = p;
    return p.finally(() => {
      if (this.inflight === p) this.inflight = null;
    });
  }

  private async postOnce(): Promise<'empty' | 'busy' | 'more'> {
    const r = await this.sessions.evTake(this.leaseMs, this.cfg.batchMax);
    if (r.kind === 'busy') return 'busy';
    if (r.events.length === 0) return 'empty';
    await this.post(r.events.map(toBackendEvent));
    this.posted += r.events.length;
    await this.sessions.evDone(
      r.events.map((e) => e.id),
      this.leaseMs,
    );
    return 'more';
  }
}

function toBackendEvent(e: StreamEvent): BackendEvent {
  const base = { id: e.id, type: e.type, playerId: e.playerId, sessionId: e.sessionId, gateId: e.gateId, at: e.at };
  return e.reason === '' ? base : { ...base, reason: e.reason };
}

import {
  Observable,
  asyncScheduler,
  defer,
  finalize,
  groupBy,
  type GroupedObservable,
  type Subscription,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';

/** A value that reports when the work it started is finished (so its group may be released). */
export interface Settleable {
  /** True once settled. */
  settled: boolean;
  /** Called by whoever settles the value (set by groupByPlayer; null until then). */
  onSettled: (() => void) | null;
}

export interface GroupByPlayerConfig<T> {
  key: (v: T) => string;
  /** How long a group with nothing open lingers before it is released, ms. */
  lingerMs: number;
  scheduler?: SchedulerLike;
}

/**
 * `groupBy` by player with a `duration` that ends a group `lingerMs` after its last value has
 * *settled* (not merely arrived): ending a group while one of its requests is still running
 * would let the next request of that player start in a new group, alongside it, and break the
 * per-player order. Idle players are released, so groups are bounded by players with work.
 * ```text
 * values:  -a------b----|     a settles at 3, b at 10; lingerMs = 2
 * group A: -a---|              (closes 2 after a settled)
 * group B: --------b---|       (a new group for the same player)
 * ```
 */
export function groupByPlayer<T extends Settleable>({
  key,
  lingerMs,
  scheduler = asyncScheduler,
}: GroupByPlayerConfig<T>): OperatorFunction<T, GroupedObservable<string, T>> {
  if (!(lingerMs >= 0)) throw new TypeError('groupByPlayer: lingerMs must be >= 0');
  return (source) =>
    defer(() => {
      // Per player with an open group: its unsettled values, and whether it is idle. Kept beside
      // groupBy instead of read from the group inside `duration`: a duration that subscribes to
      // its group counts as a group subscriber, and groupBy keeps the source subscribed while any
      // group has one, so unsubscribing the result would leave the source subscribed until every
      // group closed (never, while a value stays unsettled). Bound: one entry per open group.
      const players = new Map<string, Player>();
      // Counts each value as it is keyed, before groupBy creates or feeds its group, so the value
      // carries `onSettled` by the time anyone sees it. groupBy calls this once per value.
      const keyOf = (v: T): string => {
        const k = key(v);
        let player = players.get(k);
        if (!player) {
          const p: Player = { open: 0, quietSince: scheduler.now(), wake: null, settle: () => undefined };
          // One settle callback per player, shared by all its values (not a closure per value).
          p.settle = () => {
            if (--p.open === 0) {
              p.quietSince = scheduler.now();
              p.wake?.();
            }
          };
          players.set(k, (player = p));
        }
        if (!v.settled) {
          player.open++;
          v.onSettled = player.settle;
        } else if (player.open === 0) player.quietSince = scheduler.now(); // a value restarts the linger
        return k;
      };
      return source.pipe(
        groupBy(keyOf, {
          duration: (group$) => {
            const player = players.get(group$.key)!; // set by keyOf just before the group was created
            return lingerEnd(player, lingerMs, scheduler).pipe(
              finalize(() => {
                if (players.get(group$.key) === player) players.delete(group$.key);
              }),
            );
          },
        }),
      );
    });
}

/**
 * Emits once the player has been quiet (nothing open) for `lingerMs`.
 * why not composed: a `switchMap(idle ⇒ timer)` re-arms a timer on every value and every
 * settle, i.e. twice per request on the hot path. This keeps at most one timer per group: armed
 * when the player goes quiet, left alone while it is armed, re-armed for the time still to
 * wait when it fires early, and not armed at all while the player is busy.
 */
function lingerEnd(player: Player, lingerMs: number, scheduler: SchedulerLike): Observable<void> {
  return new Observable<void>((subscriber) => {
    let armed: Subscription | null = null; // the pending check, if any
    const check = (): void => {
      armed = null;
      if (player.open > 0) return; // busy: the settle that makes it quiet wakes us
      const quiet = scheduler.now() - player.quietSince;
      if (quiet >= lingerMs) subscriber.next();
      else arm(lingerMs - quiet);
    };
    const arm = (delay: number): void => {
      armed = scheduler.schedule(check, delay);
    };
    player.wake = () => {
      if (armed === null) arm(lingerMs);
    };
    if (player.open === 0) arm(lingerMs);
    return () => {
      player.wake = null;
      armed?.unsubscribe();
    };
  });
}

interface Player {
  /** Values of this player's group not yet settled. */
  open: number;
  /** When `open` last fell to 0 (or a settled value last arrived), by the scheduler's clock. */
  quietSince: number;
  /** Set while the group's linger is watched: called when `open` falls to 0. */
  wake: (() => void) | null;
  /** Given to each value as its `onSettled`. */
  settle: () => void;
}

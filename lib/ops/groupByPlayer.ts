import {
  NEVER,
  Subject,
  asyncScheduler,
  defer,
  groupBy,
  map,
  merge,
  switchMap,
  timer,
  type GroupedObservable,
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
 * group A: -a--|               (closes 2 after a settled)
 * group B: --------b---|       (a new group for the same player)
 * ```
 */
export function groupByPlayer<T extends Settleable>({
  key,
  lingerMs,
  scheduler = asyncScheduler,
}: GroupByPlayerConfig<T>): OperatorFunction<T, GroupedObservable<string, T>> {
  if (!(lingerMs >= 0)) throw new TypeError('groupByPlayer: lingerMs must be >= 0');
  return groupBy(key, {
    duration: (group$) =>
      defer(() => {
        let open = 0; // values of this group not yet settled
        // Subject adapts the settle callback into the duration stream; it lives with this group only.
        const settled$ = new Subject<void>();
        return merge(
          group$.pipe(
            map((v) => {
              if (v.settled) return open === 0;
              open++;
              v.onSettled = () => {
                open--;
                settled$.next();
              };
              return false;
            }),
          ),
          settled$.pipe(map(() => open === 0)),
        ).pipe(switchMap((idle) => (idle ? timer(lingerMs, scheduler) : NEVER)));
      }),
  });
}

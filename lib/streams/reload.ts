/**
 * Config hot reload: `config$`, the BehaviorSubject at the edge that SIGHUP and
 * `POST /v1/admin/reload` feed. A reload reads the options again (flags as given at start, the
 * environment, the --config file), validates them as start-up does, and applies the result
 * atomically: one bad value changes nothing. Options the running gate can take are applied
 * (LIVE_OPTIONS); a change to any other is reported under `restartRequired` and not applied.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BehaviorSubject } from 'rxjs';
import type { Logger } from 'pino';
import { LIVE_OPTIONS, OPTIONS, buildConfig, fieldOf, sourceOf, type GateConfig, type ValueSource } from '../config.js';
import { isGatewayError } from '../errors.js';
import type { OptionLayers } from '../cli/serveOptions.js';

export type ReloadTrigger = 'SIGHUP' | 'api' | 'primary';


export type ReloadResult =
  | {
      readonly ok: true;
      /** Options whose new value now runs (flag names). */
      readonly applied: readonly string[];
      /** Options changed in the sources that only a restart applies; they keep their running value. */
      readonly restartRequired: readonly string[];
    }
  | {
      readonly ok: false;
      /** The option at fault (flag name), or `config` for the file itself. */
      readonly option: string;
      readonly source: ValueSource | null;
      /** One line, as `gate serve` would print it at start. */
      readonly message: string;
    };

/** The option sources read again, or why they cannot be (a bad --config file, a bad flag). */
export type ReadLayers = () => { readonly ok: true; readonly layers: OptionLayers } | { readonly ok: false; readonly line: string | null };

const same = (a: unknown, b: unknown): boolean => a === b || JSON.stringify(a) === JSON.stringify(b);

/** Hash of the certificate pair's bytes: a renewed certificate keeps its file names. */
function tlsDigest(c: GateConfig): string | null {
  if (c.tlsCert === null || c.tlsKey === null) return null;
  try {
    return createHash('sha256').update(readFileSync(c.tlsCert)).update(readFileSync(c.tlsKey)).digest('hex');
  } catch {
    return null; // unreadable now: buildConfig has just said so, or will
  }
}

export class ConfigReloader {
  /** The running configuration; a reload that applies something emits the new one. */
  readonly config$: BehaviorSubject<GateConfig>;
  /** The configuration as the sources gave it (before per-process adjustments), to diff against. */
  private built: GateConfig;
  private tls: string | null;

  /**
   * @param built  what buildConfig returned at start from the layers `read` gives
   * @param running  what the gate runs with (a --procs worker's gate id, the embedded backend's URL)
   */
  constructor(
    built: GateConfig,
    running: GateConfig,
    private readonly read: ReadLayers,
    private readonly log: Logger,
  ) {
    this.built = built;
    this.config$ = new BehaviorSubject(running);
    this.tls = tlsDigest(built);
  }

  /** Reads, validates and applies; logs the outcome (a refusal names the option and its source). */
  reload(trigger: ReloadTrigger): ReloadResult {
    let r: ReloadResult;
    try {
      r = this.attempt();
    } catch (e) {
      // Never a crash from a SIGHUP: whatever went wrong, the running configuration stays.
      r = { ok: false, option: 'config', source: null, message: `reload failed: ${(e as Error)?.message ?? String(e)}` };
    }
    if (r.ok) this.log.info({ trigger, applied: r.applied, restartRequired: r.restartRequired }, r.applied.length > 0 ? 'config reloaded' : 'config reloaded: nothing to apply');
    else this.log.error({ trigger, option: r.option, source: r.source, err: r.message }, 'config reload refused; the running configuration stays');
    return r;
  }

  private attempt(): ReloadResult {
    const p = this.read();
    if (!p.ok) return { ok: false, option: 'config', source: null, message: p.line ?? 'cannot read the options' };
    const { flags, env, file } = p.layers;
    let next: GateConfig;
    try {
      next = buildConfig(flags, env, file);
    } catch (e) {
      if (!isGatewayError(e)) throw e;
      const option = typeof e.details?.option === 'string' ? e.details.option : 'config';
      const source: ValueSource = option === 'config' ? 'file' : sourceOf(option, flags, env, file);
      return { ok: false, option, source, message: e.message };
    }
    const applied: string[] = [];
    const restartRequired: string[] = [];
    const live: Partial<GateConfig> = {};
    const tlsBoth = this.built.tlsCert !== null && next.tlsCert !== null;
    const tls = tlsDigest(next);
    for (const o of OPTIONS) {
      const field = fieldOf(o);
      // The pair is live only while TLS stays on; turning it on or off rebuilds the listeners.
      const isTls = o.flag === 'tls-cert' || o.flag === 'tls-key';
      const changed = !same(this.built[field], next[field]) || (isTls && tlsBoth && tls !== this.tls);
      if (!changed) continue;
      if (LIVE_OPTIONS.has(o.flag) && (!isTls || tlsBoth)) {
        applied.push(o.flag);
        (live as Record<string, unknown>)[field] = next[field];
      } else restartRequired.push(o.flag);
    }
    if (applied.length > 0) {
      // Restart-only options keep their built value, so each later reload still lists them.
      this.built = { ...this.built, ...live };
      if (applied.some((f) => f === 'tls-cert' || f === 'tls-key')) this.tls = tls;
      this.config$.next({ ...this.config$.value, ...live });
    }
    return { ok: true, applied, restartRequired };
  }
}

/**
 * `gate config`: the configuration `gate serve` would run with, each value with where it came
 * from (flag, environment, config file, default); what an operator runs before a restart or a
 * reload. A bad value exits 2 with the same one line `gate serve` would print. Secrets
 * (`--api-key`, `--jwt-secret`) are shown as set or not, never their value.
 */
import { Option } from 'commander';
import { LIVE_OPTIONS, OPTIONS, buildConfig, camel, envName, sourceOf, type GateConfig, type ValueSource } from '../config.js';
import { isGatewayError } from '../errors.js';
import { optionLayers, type OptionLayers } from './serveOptions.js';

export type OptionSource = ValueSource;

export interface EffectiveOption {
  readonly flag: string;
  /** Its environment variable and config file key. */
  readonly env: string;
  readonly key: string;
  /** As given (or the default); null: not set and no default. Secrets: "(set)". */
  readonly value: string | null;
  readonly source: OptionSource;
  /** `live`: a reload (SIGHUP, POST /v1/admin/reload) applies a change; `restart`: only a restart does. */
  readonly reload: 'live' | 'restart';
}

const SECRETS = new Set(['api-key', 'jwt-secret']);

/** Every option's effective value and its source, in the option table's order. */
export function effectiveOptions(layers: OptionLayers, cfg: GateConfig): EffectiveOption[] {
  const { flags, env, file } = layers;
  // Defaults worked out at start-up rather than written in the table.
  const computed: Record<string, string> = { auth: cfg.auth, 'gate-id': cfg.gateId };
  return OPTIONS.map((o) => {
    const source = sourceOf(o.flag, flags, env, file);
    let value = flags[o.flag] ?? env[o.flag] ?? file[o.flag] ?? computed[o.flag] ?? o.def ?? null;
    if (SECRETS.has(o.flag) && value !== null) value = '(set)';
    return { flag: o.flag, env: envName(o.flag), key: camel(o.flag), value, source, reload: LIVE_OPTIONS.has(o.flag) ? 'live' : 'restart' };
  });
}

/** Runs `gate config argv`; returns the exit status. */
export function configCommand(argv: readonly string[], env: NodeJS.ProcessEnv, out: (s: string) => void, err: (s: string) => void): number {
  const p = optionLayers('gate config', argv, env, out, (cmd) => cmd.addOption(new Option('--json', 'print JSON instead of a table')));
  if (!p.ok) {
    if (p.line !== null) err(`${p.line}\n`);
    return p.status;
  }
  let cfg: GateConfig;
  try {
    cfg = buildConfig(p.layers.flags, p.layers.env, p.layers.file);
  } catch (e) {
    if (isGatewayError(e)) {
      err(`gate config: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const rows = effectiveOptions(p.layers, cfg);
  if (p.opts.json === true) {
    out(`${JSON.stringify({ configFile: p.layers.configPath, options: rows })}\n`);
    return 0;
  }
  const w = Math.max(...rows.map((r) => r.flag.length)) + 2;
  const v = Math.max(...rows.map((r) => (r.value ?? '(none)').length));
  out(`# the configuration gate serve would run with; config file: ${p.layers.configPath ?? 'none'}\n`);
  // The last column: whether a reload applies a change to it (live) or only a restart does.
  for (const r of rows) out(`--${r.flag.padEnd(w)}${(r.value ?? '(none)').padEnd(v)}  ${r.source.padEnd(8)}${r.reload}\n`);
  return 0;
}

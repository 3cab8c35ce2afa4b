/**
 * `gate serve`'s options, from flags, environment and --config file (CONTRACT §1): the CLI's
 * whole decision before anything starts, in one function the specs call in-process. A bad
 * option is one line for stderr and exit status 2; `--help` is output and status 0.
 */
import { Command, CommanderError, Option } from 'commander';
import { OPTIONS, buildConfig, camel, envName, readConfigFile, readEnv, type GateConfig, type RawOptions } from '../config.js';
import { isGatewayError } from '../errors.js';

export type ServeOptions = { readonly ok: true; readonly cfg: GateConfig } | { readonly ok: false; readonly status: 0 | 2; readonly line: string | null };

/** Where each raw option value came from, highest priority first. */
export interface OptionLayers {
  readonly flags: RawOptions;
  readonly env: RawOptions;
  readonly file: RawOptions;
  /** The --config file (or GATE_CONFIG) read, if any. */
  readonly configPath: string | null;
}

type Parsed =
  | { readonly ok: true; readonly layers: OptionLayers; /** Every parsed flag (a command's own extras too). */ readonly opts: Record<string, string | boolean | undefined> }
  | { readonly ok: false; readonly status: 0 | 2; readonly line: string | null };

/** The three layers `command argv` reads in environment `env`, or why it cannot (one line, status 2). */
export function optionLayers(command: string, argv: readonly string[], env: NodeJS.ProcessEnv, out: (s: string) => void = () => undefined, extra: (cmd: Command) => void = () => undefined): Parsed {
  const cmd = new Command(command)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: out })
    .allowExcessArguments(false)
    .helpOption('-h, --help', 'show the options');
  for (const o of OPTIONS) cmd.addOption(new Option(`--${o.flag} <value>`, `${o.help}${o.def ? ` (default ${o.def})` : ''} [env ${envName(o.flag)}]`));
  cmd.addOption(new Option('--config <file>', 'JSON file of options, keys in camelCase'));
  extra(cmd);
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? { ok: false, status: 0, line: null } : { ok: false, status: 2, line: `${command}: ${e.message.replace(/^error: /, '')}` };
    throw e;
  }
  const opts = cmd.opts<Record<string, string | boolean | undefined>>();
  const flags: RawOptions = {};
  for (const o of OPTIONS) {
    const v = opts[camel(o.flag)];
    if (typeof v === 'string') flags[o.flag] = v;
  }
  const configPath = typeof opts.config === 'string' ? opts.config : (env.GATE_CONFIG ?? null);
  try {
    return { ok: true, layers: { flags, env: readEnv(env), file: configPath ? readConfigFile(configPath) : {}, configPath }, opts };
  } catch (e) {
    if (isGatewayError(e)) return { ok: false, status: 2, line: `${command}: ${e.message}` };
    throw e;
  }
}

/** The configuration `gate serve argv` runs with in environment `env`, or why it does not run. */
export function serveOptions(argv: readonly string[], env: NodeJS.ProcessEnv, out: (s: string) => void = () => undefined): ServeOptions {
  const p = optionLayers('gate serve', argv, env, out);
  if (!p.ok) return p;
  try {
    return { ok: true, cfg: buildConfig(p.layers.flags, p.layers.env, p.layers.file) };
  } catch (e) {
    if (isGatewayError(e)) return { ok: false, status: 2, line: `gate serve: ${e.message}` };
    throw e;
  }
}

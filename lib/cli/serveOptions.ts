/**
 * `gate serve`'s options, from flags, environment and --config file (CONTRACT §1): the CLI's
 * whole decision before anything starts, in one function the specs call in-process. A bad
 * option is one line for stderr and exit status 2; `--help` is output and status 0.
 */
import { Command, CommanderError, Option } from 'commander';
import { OPTIONS, buildConfig, readConfigFile, readEnv, type GateConfig, type RawOptions } from '../config.js';
import { isGatewayError } from '../errors.js';

export type ServeOptions = { readonly ok: true; readonly cfg: GateConfig } | { readonly ok: false; readonly status: 0 | 2; readonly line: string | null };

/** The configuration `gate serve argv` runs with in environment `env`, or why it does not run. */
export function serveOptions(argv: readonly string[], env: NodeJS.ProcessEnv, out: (s: string) => void = () => undefined): ServeOptions {
  const cmd = new Command('gate serve')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: out })
    .allowExcessArguments(false)
    .helpOption('-h, --help', 'show the options');
  for (const o of OPTIONS) cmd.addOption(new Option(`--${o.flag} <value>`, `${o.help}${o.def ? ` (default ${o.def})` : ''} [env GATE_${o.flag.toUpperCase().replace(/-/g, '_')}]`));
  cmd.addOption(new Option('--config <file>', 'JSON file of options, keys in camelCase'));
  try {
    cmd.parse([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? { ok: false, status: 0, line: null } : { ok: false, status: 2, line: `gate serve: ${e.message.replace(/^error: /, '')}` };
    throw e;
  }
  const opts = cmd.opts<Record<string, string | undefined>>();
  const flags: RawOptions = {};
  for (const o of OPTIONS) {
    const key = o.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (opts[key] !== undefined) flags[o.flag] = opts[key];
  }
  const configPath = opts.config ?? env.GATE_CONFIG ?? null;
  try {
    return { ok: true, cfg: buildConfig(flags, readEnv(env), configPath ? readConfigFile(configPath) : {}) };
  } catch (e) {
    if (isGatewayError(e)) return { ok: false, status: 2, line: `gate serve: ${e.message}` };
    throw e;
  }
}

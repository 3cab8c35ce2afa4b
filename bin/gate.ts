#!/usr/bin/env node
import { optionLayers, serveOptions } from '../lib/cli/serveOptions.js';
import type { GateConfig } from '../lib/config.js';
import { isGatewayError } from '../lib/errors.js';
import { onParentGone } from '../lib/parentWatch.js';
import { workerIndex, type Primary } from '../lib/procs.js';
import type { RunningGate } from '../lib/serve.js';

const USAGE = `usage:
  gate serve [options]          run a gate (gate serve --help lists the options)
  gate config [options]         the configuration gate serve would run with, and each value's source
  gate client [options]         interactive client for trying a gate by hand
  gate bench [options]          load generator with a live progress line and a summary table
  gate demo-backend [--port N]  run the example game backend on its own`;

/** One line on stderr and the exit status: the CLI never shows a stack trace. */
function die(status: number, line: string): never {
  process.stderr.write(`${line.replace(/\s*\n\s*/g, ' ').trim()}\n`);
  process.exit(status);
}

async function serveCommand(argv: string[]): Promise<void> {
  const options = serveOptions(argv, process.env, (s) => process.stdout.write(s));
  if (!options.ok) {
    if (options.line !== null) die(options.status, options.line);
    process.exit(options.status);
  }
  const built = options.cfg;
  let cfg = built;
  const worker = workerIndex();
  // --procs N: this process is the primary; its workers run this same command as members `<gateId>.<i>`.
  if (cfg.procs > 1 && worker === null) return primaryCommand(cfg, argv);
  if (worker !== null) cfg = { ...cfg, procs: 1, gateId: `${cfg.gateId}.${worker}` };
  // Signals during start-up are remembered and honoured once the gate is up (shutdown needs it started).
  let running: RunningGate | null = null;
  // A reload re-reads the config file and the environment (flags stay as given); one during
  // start-up waits for it. Listened for first: SIGHUP's default action would end the process.
  let reloadPending = false;
  process.on('SIGHUP', () => {
    if (running) running.reload('SIGHUP');
    else reloadPending = true;
  });
  // Loaded once the options are valid: a bad option is refused without loading the gate (fastify, got, ws…).
  const { serve } = await import('../lib/serve.js');
  let signals = 0;
  let parentGone = false;
  const stop = (sig: string): void => {
    if (++signals > 1) die(1, `gate serve: second ${sig} during shutdown; exiting now`);
    if (!running) return;
    // Nobody waits on a gate whose parent is gone (a bench or a test that died): short waits.
    running.shutdown(parentGone ? { graceMs: PARENT_GONE_WAIT_MS, flushMs: PARENT_GONE_WAIT_MS } : undefined).then(
      () => process.exit(0),
      (e: unknown) => die(1, `gate serve: shutdown failed: ${(e as Error).message}`),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Started by a benchmark or a test with an IPC channel: when that parent dies, shut down as on SIGTERM.
  onParentGone(() => {
    parentGone = true;
    setTimeout(() => die(1, 'gate serve: parent gone and shutdown still running; exiting now'), PARENT_GONE_EXIT_MS).unref();
    stop('parent gone');
  });
  try {
    const read = () => optionLayers('gate serve', argv, process.env);
    // A --procs worker reloaded through its API: the primary reloads the others.
    const onApplied = worker !== null ? () => void process.send?.({ type: 'gate:reload' }) : undefined;
    running = await serve(cfg, { reloadSource: { read, built, ...(onApplied ? { onApplied } : {}) } });
  } catch (e) {
    if (isGatewayError(e, 'GW_ERR_CONFIG')) die(2, `gate serve: ${e.message}`);
    if (isGatewayError(e, 'GW_ERR_LISTEN')) die(1, `gate serve: ${e.message}`);
    die(1, `gate serve: failed to start: ${(e as Error).message}`);
  }
  if (signals > 0) {
    signals--;
    stop('signal');
  } else if (reloadPending) running.reload('SIGHUP');
}

/** The --procs primary: forks the workers, restarts the ones that die, forwards SIGTERM / SIGINT. */
async function primaryCommand(cfg: GateConfig, argv: string[]): Promise<void> {
  const { default: pino } = await import('pino');
  const { startPrimary } = await import('../lib/procs.js');
  const log = pino({ level: cfg.logLevel, base: { pid: process.pid } }).child({ gateId: cfg.gateId, component: 'primary' });
  // Each worker reads the options again itself (and logs what it applied or why it refused). A
  // SIGHUP before the workers are forked needs nothing: they read the options as they start.
  let started: Primary | null = null;
  process.on('SIGHUP', () => started?.reload(null));
  const primary = (started = await startPrimary(cfg, argv, log));
  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) die(1, `gate serve: second ${why} during shutdown; exiting now`);
    stopping = true;
    log.info({ why }, 'shutdown started');
    primary.stop().then(
      () => process.exit(0),
      (e: unknown) => die(1, `gate serve: shutdown failed: ${(e as Error).message}`),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  onParentGone(() => stop('parent gone'));
  await primary.listening;
}

/** After the parent of a `gate serve` started with IPC is gone: the wait for requests and for events, ms. */
const PARENT_GONE_WAIT_MS = 1_000;
/** … and the most the whole shutdown may take before the process exits anyway, ms. */
const PARENT_GONE_EXIT_MS = 5_000;

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  // Any other command started with an IPC channel ends with its parent; a bench's children
  // then see their own channel close and end too.
  if (command !== 'serve') onParentGone(() => process.exit(1));
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'config':
      process.exitCode = (await import('../lib/cli/configCommand.js')).configCommand(rest, process.env, (s) => void process.stdout.write(s), (s) => void process.stderr.write(s));
      return;
    case 'client':
      // Each command loads only what it needs, so `gate serve` starts fast.
      process.exitCode = await (await import('../lib/cli/client.js')).runClientCommand(rest);
      return;
    case 'bench':
      // Exit as soon as the run is over and its children are stopped: a stray timer or socket of
      // a failed run must not keep a finished bench alive (stdout and stderr are synchronous on pipes and files).
      return process.exit(await (await import('../lib/cli/bench.js')).runBenchCommand(rest));
    case 'demo-backend':
      return (await import('../lib/demo/demoBackend.js')).runDemoBackendCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      if (command === undefined) process.exitCode = 2;
      return;
    default:
      die(2, `gate: unknown command "${command}" (serve, config, client, bench, demo-backend)`);
  }
}

process.on('unhandledRejection', (e) => die(1, `gate: internal error: ${(e as Error)?.message ?? String(e)}`));
// `gate config | head`: the reader went away; that ends the output, it is not an error to report.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  die(1, `gate: cannot write to stdout: ${e.code ?? e.message}`);
});
main().catch((e: unknown) => die(1, `gate: ${(e as Error)?.message ?? String(e)}`));

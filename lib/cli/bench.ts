// `gate bench`: the load generator (CONTRACT §1). Scenarios `request`, `push`, `memory` and
// `churn` against a gate at a given address, or against one it spawns (embedded demo backend, a
// trivial backend child, or --upstream); `--suite` runs the gate-versus-baseline comparison of
// `npm run bench`. Pieces live in ./bench/.
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { parseDuration, parseHostPort, parseInt10, parseSize } from '../config.js';
import { isGatewayError } from '../errors.js';
import {
  FD_RESERVE_CLIENT,
  FD_RESERVE_GATE,
  PATHS,
  hasTaskset,
  openFileLimit,
  pinSelf,
  spawnBaselineLogin,
  spawnGate,
  spawnTrivialBackend,
  table,
  type Child,
  type GateChild,
  type HostPort,
  type SpawnOptions,
} from './bench/common.js';
import { chaosOk, chaosRows, runChaos, type ChaosResult } from './bench/chaos.js';
import { CYCLE_TIMEOUT_MS, churnOk, churnRows, runChurn, type ChurnResult } from './bench/churn.js';
import { memoryRows, metricsSource, probeSource, runMemory, type MemoryResult } from './bench/memory.js';
import { pushOk, pushRows, runPush, type PushResult } from './bench/push.js';
import { requestOk, requestRows, runRequest, type RequestResult } from './bench/request.js';
import { runStorm, stormOk, stormRows, type StormResult } from './bench/storm.js';
import { DEFAULT_OUT, SUITE_PARTS, runSuite, suiteTable } from './bench/suite.js';

export { spawnGate } from './bench/common.js';
export type { RequestResult, PushResult, MemoryResult, ChurnResult, ChaosResult };

/** Longest --duration accepted: every run is bounded. */
const MAX_DURATION_MS = 10 * 60_000;
/** Cap on a run of fixed work (--requests, --pushes) when --duration is not given. */
const WORK_CAP_MS = 2 * 60_000;
/** Most --cycles accepted (churn): each is bounded by CYCLE_TIMEOUT_MS, so the run is too. */
const MAX_CYCLES = 1_000_000;

interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

class UsageError extends Error {}

function buildCommand(io: Io): Command {
  return new Command('gate bench')
    .exitOverride()
    .allowExcessArguments(false)
    .configureOutput({ writeErr: () => undefined, writeOut: (s) => io.stdout.write(s) })
    .helpOption('-h, --help', 'show the options')
    .addOption(new Option('--scenario <name>', 'request | push | memory | churn | chaos | storm').default('request'))
    .addOption(new Option('--transport <t>', 'tcp | ws').default('tcp'))
    .addOption(new Option('--tcp <host:port>', "a running gate's TCP address (default: spawn gate serve)"))
    .addOption(new Option('--ws <host:port>', "a running gate's WebSocket address (default: spawn gate serve)"))
    .addOption(new Option('--api <host:port>', "a running gate's push/admin API (push and churn need it; memory reads /metrics)"))
    .addOption(new Option('--api-key <k>', 'bearer key for the API of a running gate'))
    .addOption(new Option('--server-pid <pid>', "a running gate's process id: its RSS and CPU are read from /proc"))
    .addOption(new Option('--upstream <url>', 'spawned gate: this backend'))
    .addOption(new Option('--backend <b>', 'spawned gate without --upstream: demo (embedded) | trivial (echo child process); churn: trivial unless given').default('demo'))
    .addOption(new Option('--connections <n>', 'client connections (push: clients; memory: idle clients)'))
    .addOption(new Option('--inflight <n>', 'request: requests in flight per connection (closed loop)').default('16'))
    .addOption(new Option('--rate <n>', 'request: open loop at this many requests/s in total (0 = closed loop)').default('0'))
    .addOption(new Option('--size <bytes>', 'request: body size; push: about this many bytes per push'))
    .addOption(new Option('--duration <d>', `measured time (after --warmup); with --requests or --pushes, a cap (default ${WORK_CAP_MS / 60_000} min)`).default('10s'))
    .addOption(new Option('--requests <n>', 'request: a fixed amount of work: stop after this many answers instead of after --duration'))
    .addOption(new Option('--pushes <n>', 'push: a fixed amount of work: stop after this many pushes received instead of after --duration'))
    .addOption(new Option('--warmup <d>', 'traffic before measuring starts').default('500ms'))
    .addOption(new Option('--route <n>', 'route (5 = echo in the demo game; the trivial backend echoes every route)').default('5'))
    .addOption(new Option('--batch <n>', 'push: messages per /v1/push/batch').default('1000'))
    .addOption(new Option('--via <v>', 'push: batch (/v1/push/batch) | broadcast (/v1/broadcast to every session)').default('batch'))
    .addOption(new Option('--api-inflight <n>', 'push: API calls in flight').default('4'))
    .addOption(new Option('--settle <d>', 'memory: wait before each sample; storm: after the last WELCOME, before the RSS sample (default 3s)').default('1500ms'))
    .addOption(new Option('--window <n>', 'storm: logins (and resumes) in flight at once').default('500'))
    .addOption(new Option('--baseline', 'storm: against the plain-Node login baseline (bench/baselineLogin.js) instead of a gate'))
    .addOption(new Option('--node-flags <set>', 'spawned servers: recommended (docs/operations.md, "Tuning node") | none (storm\'s default: RSS as node runs by default)'))
    .addOption(new Option('--cycles <n>', `churn: connect / HELLO / REQUEST / BYE logout / close cycles (each at most ${CYCLE_TIMEOUT_MS / 1000} s)`).default('10000'))
    .addOption(new Option('--concurrency <n>', 'churn: cycles running at once').default('50'))
    .addOption(new Option('--gates <n>', 'chaos: gate processes (cluster mode)').default('2'))
    .addOption(new Option('--procs <n>', 'chaos: --procs workers per gate (cluster mode)').default('2'))
    .addOption(new Option('--kill-gate <d>', 'chaos: SIGKILL a random worker this often (its primary restarts it); needs --procs 2+'))
    .addOption(new Option('--drop-every <d>', 'chaos: mean time between link drops per client').default('3s'))
    .addOption(new Option('--request-every <d>', 'chaos: pause between one client\'s requests').default('100ms'))
    .addOption(new Option('--redis <url>', 'chaos: a running Redis (default: start a private redis-server)'))
    .addOption(new Option('--single', 'chaos: one single-node gate (no Redis): link drops only'))
    .addOption(new Option('--verify', 'check every answer and push arrived exactly once and in order'))
    .addOption(new Option('--json', 'print one JSON object instead of the table'))
    .addOption(new Option('--pin', 'pin this process to core 0 and spawned servers to core 1 (taskset)'))
    .addOption(new Option('--suite', 'gate against the plain-Node baselines in bench/ (npm run bench)'))
    .addOption(new Option('--runs <n>', 'suite: runs per figure (medians)').default('3'))
    .addOption(new Option('--only <parts>', `suite: comma-separated subset of ${SUITE_PARTS.join(',')}`))
    .addOption(new Option('--push-clients <n>', 'suite: clients of the push fan-out').default('10000'))
    .addOption(new Option('--memory-clients <n>', 'suite: idle clients of the memory figure').default('5000'))
    .addOption(new Option('--storm-clients <n>', 'suite: clients of the login storm').default('15000'))
    .addOption(new Option('--no-pin', 'suite: do not pin'))
    .addOption(new Option('--out <file>', 'suite: where the JSON goes').default(DEFAULT_OUT));
}

type Opts = Record<string, string | boolean | undefined>;

const rateGiven = (v: Opts): boolean => v.rate !== undefined && String(v.rate) !== '0';

function oneOf<T extends string>(flag: string, v: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) throw new UsageError(`--${flag}: "${String(v)}" is not one of ${allowed.join(', ')}`);
  return v as T;
}

function addr(flag: string, v: unknown): HostPort | null {
  if (typeof v !== 'string') return null;
  const hp = parseHostPort(flag, v);
  if (!/^127\./.test(hp.host) && hp.host !== 'localhost') throw new UsageError(`--${flag}: bench clients only connect to 127.x addresses, not ${hp.host}`);
  return { host: hp.host === 'localhost' ? '127.0.0.1' : hp.host, port: hp.port };
}

/** Refuses a client count that would pass the open-file limit of this process or of a gate we spawn. */
function checkFiles(connections: number, spawning: boolean, flag = 'connections'): void {
  const limit = openFileLimit();
  const needHere = connections + FD_RESERVE_CLIENT;
  const needGate = connections + FD_RESERVE_GATE;
  if (needHere > limit || (spawning && needGate > limit)) {
    const max = limit - (spawning ? FD_RESERVE_GATE : FD_RESERVE_CLIENT);
    throw new UsageError(
      `--${flag}: ${connections} would pass the open-file limit of ${limit} (${spawning ? 'the spawned gate holds one descriptor per client plus its upstream pool, ' : ''}this process one per client); at most ${max} here`,
    );
  }
}

export async function runBenchCommand(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const cmd = buildCommand(io);
  let v: Opts;
  try {
    cmd.parse(argv, { from: 'user' });
    v = cmd.opts<Opts>();
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return 0;
    io.stderr.write(`gate bench: ${(e as Error).message.replace(/^error: /, '')}\n`);
    return 2;
  }
  const children: Child[] = [];
  try {
    const json = v.json === true;
    const progress = io.stderr.isTTY === true && !json;
    const log = (s: string): void => void io.stderr.write(s);
    const requests = v.requests === undefined ? null : parseInt10('requests', String(v.requests), 1);
    const pushes = v.pushes === undefined ? null : parseInt10('pushes', String(v.pushes), 1);
    const fixedWork = requests !== null || pushes !== null;
    const durationMs = fixedWork && cmd.getOptionValueSource('duration') !== 'cli' ? WORK_CAP_MS : parseDuration('duration', String(v.duration), 100);
    const warmupMs = parseDuration('warmup', String(v.warmup), 0);
    if (durationMs > MAX_DURATION_MS) throw new UsageError(`--duration: at most ${MAX_DURATION_MS / 60_000} minutes`);
    if (warmupMs > 60_000) throw new UsageError('--warmup: at most 1 minute');

    if (v.suite === true) {
      const only = typeof v.only === 'string' ? v.only.split(',').map((p) => oneOf('only', p.trim(), SUITE_PARTS)) : [...SUITE_PARTS];
      const pushClients = parseInt10('push-clients', String(v.pushClients), 1);
      const memoryClients = parseInt10('memory-clients', String(v.memoryClients), 1);
      const stormClients = parseInt10('storm-clients', String(v.stormClients), 1);
      checkFiles(Math.max(pushClients, memoryClients, stormClients), true);
      // The suite's own defaults: 5 s measured after 1 s of warm-up, unless given.
      const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
      const r = await runSuite({
        runs: parseInt10('runs', String(v.runs), 1),
        durationMs: given('duration') ? durationMs : 5_000,
        warmupMs: given('warmup') ? warmupMs : 1_000,
        only: only,
        pin: v.pin !== false,
        requestConnections: given('connections') ? parseInt10('connections', String(v.connections), 1) : 100,
        requestInflight: parseInt10('inflight', String(v.inflight), 1),
        pushClients,
        pushBatch: parseInt10('batch', String(v.batch), 1),
        memoryClients,
        stormClients,
        stormWindow: parseInt10('window', String(v.window), 1),
        progress,
        log,
        outFile: typeof v.out === 'string' && v.out !== '' ? v.out : null,
      });
      io.stdout.write(json ? `${JSON.stringify(r)}\n` : `${suiteTable(r)}\n${typeof v.out === 'string' && v.out ? `\nJSON: ${v.out}\n` : ''}`);
      return 0;
    }

    const scenario = oneOf('scenario', v.scenario, ['request', 'push', 'memory', 'churn', 'chaos', 'storm'] as const);
    if (scenario === 'chaos') {
      if (v.tcp !== undefined || v.ws !== undefined) throw new UsageError('--scenario chaos starts its own gates (and Redis): no --tcp/--ws');
      const single = v.single === true;
      const killEveryMs = v.killGate === undefined ? null : parseDuration('kill-gate', String(v.killGate), 1_000);
      const gates = single ? 1 : parseInt10('gates', String(v.gates), 1);
      const procs = single ? 1 : parseInt10('procs', String(v.procs), 1);
      if (gates > 8) throw new UsageError('--gates: at most 8');
      if (procs > 8) throw new UsageError('--procs: at most 8 for chaos');
      if (killEveryMs !== null && single) throw new UsageError('--kill-gate: a single-node gate has no other member to resume on (drop --single)');
      if (killEveryMs !== null && procs < 2) throw new UsageError('--kill-gate: needs --procs 2 or more (the primary restarts the killed worker)');
      const clients = v.connections === undefined ? 50 : parseInt10('connections', String(v.connections), 1);
      checkFiles(clients, true);
      if (typeof v.redis === 'string' && !/^redis:\/\/127\./.test(v.redis)) throw new UsageError('--redis: a redis://127.x address (bench runs stay on loopback)');
      const r = await runChaos({
        gates,
        procs,
        cluster: !single,
        redisUrl: typeof v.redis === 'string' ? v.redis : null,
        clients,
        durationMs,
        killEveryMs,
        dropEveryMs: parseDuration('drop-every', String(v.dropEvery), 10),
        requestEveryMs: parseDuration('request-every', String(v.requestEvery), 0),
        progress,
        log,
      });
      const ok = chaosOk(r);
      io.stdout.write(json ? `${JSON.stringify({ ...r, ok })}\n` : `${table(chaosRows(r))}\n`);
      return ok ? 0 : 1;
    }
    if (requests !== null && scenario !== 'request') throw new UsageError(`--requests: only for --scenario request, not ${scenario}`);
    if (pushes !== null && scenario !== 'push') throw new UsageError(`--pushes: only for --scenario push, not ${scenario}`);
    if (requests !== null && rateGiven(v)) throw new UsageError('--requests: a closed-loop count; an open loop (--rate) runs for --duration');
    const transport = oneOf('transport', v.transport, ['tcp', 'ws'] as const);
    const backendKind = oneOf('backend', v.backend, ['demo', 'trivial'] as const);
    const via = oneOf('via', v.via, ['batch', 'broadcast'] as const);
    const tcp = addr('tcp', v.tcp);
    const ws = addr('ws', v.ws);
    const api = addr('api', v.api);
    const apiKey = typeof v.apiKey === 'string' ? v.apiKey : null;
    const given = tcp ?? ws;
    if (given && transport === 'tcp' && !tcp) throw new UsageError('--transport tcp needs --tcp host:port of the running gate');
    if (given && transport === 'ws' && !ws) throw new UsageError('--transport ws needs --ws host:port of the running gate');
    if (v.baseline === true && scenario !== 'storm') throw new UsageError(`--baseline: only for --scenario storm, not ${scenario}`);
    if (v.baseline === true && given) throw new UsageError('--baseline spawns the login baseline: no --tcp/--ws');
    if (given && (scenario === 'push' || scenario === 'churn' || scenario === 'storm') && !api) throw new UsageError(`--scenario ${scenario} against a running gate needs --api host:port`);
    if (given && (typeof v.upstream === 'string' || cmd.getOptionValueSource('backend') === 'cli'))
      throw new UsageError('--upstream and --backend choose the backend of a gate bench spawns; they do not apply with --tcp/--ws');
    const defaultConnections = scenario === 'memory' ? 1000 : scenario === 'storm' ? 15_000 : 100;
    const connections = v.connections === undefined ? defaultConnections : parseInt10('connections', String(v.connections), 1);
    const cycles = parseInt10('cycles', String(v.cycles), 1);
    if (cycles > MAX_CYCLES) throw new UsageError(`--cycles: at most ${MAX_CYCLES}`);
    const concurrency = parseInt10('concurrency', String(v.concurrency), 1);
    if (scenario === 'churn') checkFiles(concurrency, !given, 'concurrency');
    else checkFiles(connections, !given);
    const defaultSize = scenario === 'push' ? 16 : 64;
    const size = v.size === undefined ? defaultSize : parseSize('size', String(v.size), 0);
    const route = parseInt10('route', String(v.route), 0);
    if (route > 0xffff) throw new UsageError('--route: at most 65535');
    const rate = parseInt10('rate', String(v.rate), 0);
    const inflight = parseInt10('inflight', String(v.inflight), 1);
    const batch = parseInt10('batch', String(v.batch), 1);
    if (batch > 10_000) throw new UsageError('--batch: at most 10000 (the push API limit)');
    const apiInflight = parseInt10('api-inflight', String(v.apiInflight), 1);
    const settleMs = parseDuration('settle', String(v.settle), 0);
    const upstream = typeof v.upstream === 'string' ? new URL(v.upstream).toString().replace(/\/$/, '') : null;

    // Spawn what is not given: the backend (trivial) and the gate, pinned if asked.
    let server: SpawnOptions = { cpu: null };
    if (v.pin === true) {
      if (hasTaskset() && pinSelf(0)) server = { cpu: '1' };
      else io.stderr.write('gate bench: taskset not available; not pinning\n');
    }
    const flagSet = v.nodeFlags === undefined ? (scenario === 'storm' ? 'none' : 'recommended') : oneOf('node-flags', v.nodeFlags, ['recommended', 'none'] as const);
    if (flagSet === 'none') server = { ...server, bare: true };
    let gate: GateChild | null = null;
    let baseline: (Child & { tcp: HostPort; ws: HostPort }) | null = null;
    if (v.baseline === true) {
      baseline = await spawnBaselineLogin(server);
      children.push(baseline);
    } else if (!given) {
      let up = upstream;
      // churn runs against the trivial backend unless --backend says otherwise.
      const kind = scenario === 'churn' && cmd.getOptionValueSource('backend') !== 'cli' ? 'trivial' : backendKind;
      if (!up && kind === 'trivial') {
        const b = await spawnTrivialBackend(server);
        children.push(b);
        up = b.url;
      }
      const flags = scenario === 'memory' || scenario === 'churn' ? ['--expose-gc', '--import', pathToFileURL(PATHS.memProbe).href] : [];
      gate = await spawnGate(up, { ...server, nodeFlags: flags });
      children.push(gate);
    }
    const spawned = gate ?? baseline;
    const at: HostPort = spawned ? (transport === 'tcp' ? spawned.tcp : spawned.ws) : transport === 'tcp' ? tcp! : ws!;
    const serverPid = spawned?.pid ?? (v.serverPid === undefined ? undefined : parseInt10('server-pid', String(v.serverPid), 1));

    let ok: boolean;
    let rows: [string, string][];
    let result: RequestResult | PushResult | MemoryResult | ChurnResult | StormResult;
    if (scenario === 'storm') {
      const r = await runStorm({
        transport,
        at,
        api: gate ? gate.api : baseline ? null : api,
        apiKey,
        clients: connections,
        window: parseInt10('window', String(v.window), 1),
        settleMs: cmd.getOptionValueSource('settle') === 'cli' ? settleMs : 3_000,
        serverPid: serverPid ?? null,
        progress,
        log,
      });
      result = r;
      rows = stormRows(r);
      ok = stormOk(r);
    } else if (scenario === 'request') {
      const r = await runRequest({ transport, at, connections, inflight, rate, bodyBytes: size, route, durationMs, requests, warmupMs, verify: v.verify === true, progress, log, serverPid });
      result = r;
      rows = requestRows(r);
      ok = requestOk(r);
    } else if (scenario === 'push') {
      const r = await runPush({
        transport,
        at,
        api: gate ? gate.api : api!,
        apiKey,
        clients: connections,
        batch,
        via,
        bodyBytes: size,
        route,
        durationMs,
        pushes,
        warmupMs,
        apiInflight,
        verify: v.verify === true,
        progress,
        log,
        serverPid,
      });
      result = r;
      rows = pushRows(r);
      ok = pushOk(r);
    } else if (scenario === 'churn') {
      const apiAt = gate ? gate.api : api!;
      const r = await runChurn({
        transport,
        at,
        api: apiAt,
        apiKey,
        cycles,
        concurrency,
        memory: gate ? probeSource(gate) : metricsSource(apiAt, apiKey),
        progress,
        log,
      });
      result = r;
      rows = churnRows(r);
      ok = churnOk(r);
    } else {
      let source;
      if (gate) source = probeSource(gate);
      else if (api) source = metricsSource(api, apiKey);
      else throw new UsageError('--scenario memory against a running gate needs --api host:port (its /metrics)');
      const r = await runMemory({ transport, at, clients: connections, source, settleMs });
      result = r;
      rows = memoryRows(r);
      ok = true;
    }
    io.stdout.write(json ? `${JSON.stringify({ ...result, ok })}\n` : `${table(rows)}\n`);
    return ok ? 0 : 1;
  } catch (e) {
    const msg = isGatewayError(e) || e instanceof Error ? e.message : String(e);
    io.stderr.write(`gate bench: ${msg.replace(/^error: /, '')}\n`);
    return e instanceof UsageError || isGatewayError(e, 'GW_ERR_CONFIG') ? 2 : 1;
  } finally {
    for (const c of children.reverse()) await c.stop();
  }
}

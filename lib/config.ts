import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { createSecureContext } from 'node:tls';
import bytes from 'bytes';
import ms from 'ms';
import { GatewayError } from './errors.js';

/** A listener address; `null` when the listener is `off`. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export type AuthMode = 'none' | 'upstream' | 'jwt';

/** Every option of `gate serve` (CONTRACT §1), parsed and validated. Durations in ms, sizes in bytes. */
export interface GateConfig {
  readonly tcp: HostPort | null;
  readonly ws: HostPort | null;
  readonly api: HostPort;
  readonly upstream: string | null;
  readonly auth: AuthMode;
  readonly jwtSecret: string | null;
  readonly apiKey: string | null;
  readonly gateId: string;
  readonly heartbeatMs: number;
  readonly idleTimeoutMs: number;
  readonly helloTimeoutMs: number;
  readonly maxFrame: number;
  readonly workers: number;
  readonly playerConcurrency: number;
  readonly queueMax: number;
  readonly upstreamTimeoutMs: number;
  readonly upstreamRetries: number;
  readonly bufferMax: number;
  /** --buffer-max-bytes: body bytes kept per session for replay (with --buffer-max, whichever is hit first). */
  readonly bufferMaxBytes: number;
  readonly outboundMax: number;
  readonly requestWindow: number;
  /** --request-window-bytes: answer bytes kept per session for duplicates. */
  readonly requestWindowBytes: number;
  readonly maxConnections: number;
  /** --max-handshakes: sockets in the TLS handshake or WS upgrade at once. */
  readonly maxHandshakes: number;
  /** Requests of one player admitted and not yet answered before its link stops being read (paused). */
  readonly playerQueueMax: number;
  /** --rate-limit: REQUESTs per second per connection (token bucket, burst = one second's worth); null = off. */
  readonly rateLimit: number | null;
  readonly tlsCert: string | null;
  readonly tlsKey: string | null;
  readonly redis: string | null;
  /** Key prefix in Redis: the gates on one Redis and prefix are one cluster. */
  readonly redisPrefix: string;
  /** Worker processes sharing the listeners (`--procs`; `auto` = one per CPU). More than 1 needs --redis. */
  readonly procs: number;
  readonly logLevel: string;
  /** --log-sample: session lifecycle lines logged per second at most (0 = all). */
  readonly logSample: number;
  /** --key-grace: after a reload changes --api-key or --jwt-secret, how long the previous one is still accepted, ms. */
  readonly keyGraceMs: number;
  /** Grace for in-flight upstream calls on shutdown (§5: 10 s). */
  readonly shutdownGraceMs: number;
  /** Backend event batching: most events per POST /events, and most queued before the oldest are dropped. */
  readonly eventsBatchMax: number;
  readonly eventsQueueMax: number;
  /** How long a quiet event queue's first event waits for others before its POST, ms. */
  readonly eventsLingerMs: number;
  /** PUT /gates/{id} period (§3: 10 s). */
  readonly registerEveryMs: number;
  /** First and largest wait between failed POST /events, ms. */
  readonly eventsBackoffMs: number;
  readonly eventsBackoffMaxMs: number;
  /** How long shutdown waits for queued events to be posted, ms. */
  readonly eventsFlushMs: number;
  /** --otlp: the OTLP/HTTP traces endpoint (`…/v1/traces`); null = tracing off, and no tracing code loads. */
  readonly otlp: string | null;
  /** --otlp-sample: share of traces sampled where the client sent no traceparent (0..1). */
  readonly otlpSample: number;
}

type Kind = 'hostport' | 'hostport-off' | 'url' | 'auth' | 'string' | 'duration' | 'size' | 'int' | 'file' | 'level' | 'rate' | 'ratio';

export interface OptionSpec {
  /** The flag name without dashes (`upstream-timeout`). */
  readonly flag: string;
  readonly kind: Kind;
  /** Default as the user would type it; undefined = none. */
  readonly def?: string;
  readonly help: string;
  /** Lower bound for ints/durations/sizes. */
  readonly min?: number;
}

/** Most --procs accepted. */
const MAX_PROCS = 256;

/** The option table: one source for the CLI parser, the environment, the config file and `--help`. */
export const OPTIONS: readonly OptionSpec[] = [
  { flag: 'tcp', kind: 'hostport-off', def: '0.0.0.0:7000', help: 'raw TCP listener host:port; "off" disables it' },
  { flag: 'ws', kind: 'hostport-off', def: '0.0.0.0:7001', help: 'WebSocket listener host:port (path /); "off" disables it' },
  { flag: 'api', kind: 'hostport', def: '127.0.0.1:7002', help: 'HTTP push/admin API, /metrics, /healthz, /readyz' },
  { flag: 'upstream', kind: 'url', help: 'backend base URL; without it an embedded demo backend serves' },
  { flag: 'auth', kind: 'auth', help: 'none|upstream|jwt (default: upstream with --upstream, else none)' },
  { flag: 'jwt-secret', kind: 'string', help: 'HS256 secret for --auth jwt' },
  { flag: 'api-key', kind: 'string', help: 'bearer key for /v1/*; required when --api is not loopback' },
  { flag: 'gate-id', kind: 'string', help: "this gate's name (default: hostname-pid)" },
  { flag: 'heartbeat', kind: 'duration', def: '15s', min: 10, help: 'ping interval told to clients; silent for 3x this = dead' },
  { flag: 'idle-timeout', kind: 'duration', def: '30m', min: 1, help: 'a session with no REQUEST for this long is ended' },
  { flag: 'hello-timeout', kind: 'duration', def: '10s', min: 1, help: 'a connection that sends no HELLO within this is closed' },
  { flag: 'max-frame', kind: 'size', def: '256kb', min: 64, help: 'largest frame body accepted or sent' },
  { flag: 'workers', kind: 'int', def: '256', min: 1, help: 'upstream requests in flight across all players' },
  { flag: 'player-concurrency', kind: 'int', def: '1', min: 1, help: 'upstream requests in flight for one player (1 keeps order)' },
  { flag: 'queue-max', kind: 'int', def: '10000', min: 0, help: 'requests waiting for a worker; past it: ERROR OVERLOADED' },
  { flag: 'upstream-timeout', kind: 'duration', def: '10s', min: 1, help: 'one upstream attempt' },
  { flag: 'upstream-retries', kind: 'int', def: '2', min: 0, help: 'extra attempts after connection errors, 502, 503, 504' },
  { flag: 'buffer-max', kind: 'int', def: '1000', min: 1, help: 'pushes kept per session for replay' },
  { flag: 'buffer-max-bytes', kind: 'size', def: '1mb', min: 1024, help: 'push body bytes kept per session for replay (oldest dropped first)' },
  { flag: 'outbound-max', kind: 'size', def: '4mb', min: 1024, help: 'bytes queued to one connection before it is dropped' },
  { flag: 'request-window', kind: 'int', def: '128', min: 1, help: 'request results kept per session for duplicates' },
  { flag: 'request-window-bytes', kind: 'size', def: '1mb', min: 1024, help: 'answer bytes kept per session for duplicates (oldest leave first)' },
  { flag: 'max-connections', kind: 'int', def: '100000', min: 1, help: 'connections beyond this are refused at accept' },
  { flag: 'max-handshakes', kind: 'int', def: '1024', min: 1, help: 'sockets still in the TLS handshake or WS upgrade; past it new sockets are refused at once' },
  { flag: 'player-queue-max', kind: 'int', def: '64', min: 1, help: "a player's unanswered requests before its link stops being read" },
  { flag: 'rate-limit', kind: 'rate', help: 'REQUESTs per second per connection, e.g. 50/s (ERROR RATE_LIMITED past it); default off' },
  { flag: 'tls-cert', kind: 'file', help: 'PEM certificate: serve TCP as TLS and WS as wss' },
  { flag: 'tls-key', kind: 'file', help: 'PEM private key for --tls-cert' },
  { flag: 'redis', kind: 'url', help: 'Redis URL for cluster mode' },
  { flag: 'redis-prefix', kind: 'string', def: 'gate:', help: 'key prefix in Redis: gates on one Redis and prefix are one cluster' },
  { flag: 'procs', kind: 'string', def: '1', help: `worker processes sharing the ports: N (1..${MAX_PROCS}) or auto (one per CPU); more than 1 needs --redis` },
  { flag: 'log-level', kind: 'level', def: 'info', help: 'pino level: fatal|error|warn|info|debug|trace|silent' },
  { flag: 'log-sample', kind: 'int', def: '100', min: 0, help: 'session lines (login, resumed, detached, ended) logged per second at most; the rest counted; 0 = all' },
  { flag: 'key-grace', kind: 'duration', def: '5m', min: 0, help: 'after a reload changes --api-key or --jwt-secret, the previous one is still accepted this long' },
  { flag: 'otlp', kind: 'url', help: 'OpenTelemetry collector, OTLP/HTTP (http://host:4318; /v1/traces is appended): export traces; default off' },
  { flag: 'otlp-sample', kind: 'ratio', def: '0.01', help: 'share of requests traced when the client sent no traceparent (0..1); a client traceparent\'s sampled flag decides for its own' },
];

/**
 * Options a reload (SIGHUP, POST /v1/admin/reload) applies to the running gate. Every other
 * option needs a restart: a reload that changes one reports it under `restartRequired`.
 */
export const LIVE_OPTIONS: ReadonlySet<string> = new Set([
  'log-level', 'log-sample', 'upstream-timeout', 'upstream-retries', 'idle-timeout', 'heartbeat', 'hello-timeout',
  'workers', 'player-concurrency', 'queue-max', 'player-queue-max', 'rate-limit', 'buffer-max', 'buffer-max-bytes',
  'outbound-max', 'max-connections', 'max-handshakes', 'api-key', 'jwt-secret', 'key-grace', 'tls-cert', 'tls-key',
]);

/** The GateConfig field an option sets (durations carry an `Ms` suffix). */
export const fieldOf = (o: OptionSpec): keyof GateConfig => (camel(o.flag) + (o.kind === 'duration' ? 'Ms' : '')) as keyof GateConfig;

export const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
export const envName = (flag: string): string => 'GATE_' + flag.toUpperCase().replace(/-/g, '_');

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const MAX_TIMER_MS = 2_147_483_647; // setTimeout's ceiling

// The message must stay one line (CONTRACT §1) even when a bad value holds a line break.
const bad = (flag: string, what: string): GatewayError =>
  new GatewayError('GW_ERR_CONFIG', `--${flag}: ${what.replace(/\r/g, '\\r').replace(/\n/g, '\\n')}`, { option: flag });

/** `250ms`, `15s`, `30m`, `2h` or plain milliseconds. */
export function parseDuration(flag: string, raw: string, min = 0): number {
  const s = raw.trim();
  const v = /^\d+$/.test(s) ? Number(s) : /^\d+(\.\d+)?\s*(ms|s|m|h|d)$/i.test(s) ? ms(s as ms.StringValue) : NaN;
  if (!Number.isFinite(v)) return fail(bad(flag, `"${raw}" is not a duration (use 250ms, 15s, 30m, 2h or milliseconds)`));
  if (v < min) return fail(bad(flag, `"${raw}" is below the minimum of ${min}ms`));
  if (v > MAX_TIMER_MS) return fail(bad(flag, `"${raw}" is above the maximum of ${ms(MAX_TIMER_MS)}`));
  return Math.round(v);
}

/** `64kb`, `4mb` or plain bytes. */
export function parseSize(flag: string, raw: string, min = 0): number {
  const s = raw.trim();
  const v = /^\d+$/.test(s) ? Number(s) : /^\d+(\.\d+)?\s*(b|kb|mb|gb)$/i.test(s) ? bytes.parse(s) : NaN;
  if (v === null || !Number.isFinite(v)) return fail(bad(flag, `"${raw}" is not a size (use 64kb, 4mb or bytes)`));
  if (v < min) return fail(bad(flag, `"${raw}" is below the minimum of ${min} bytes`));
  if (v > 0xffff_fff0) return fail(bad(flag, `"${raw}" is above the 4 GiB frame limit`));
  return Math.floor(v);
}

export function parseInt10(flag: string, raw: string, min = 0): number {
  const s = raw.trim();
  if (!/^\d+$/.test(s)) return fail(bad(flag, `"${raw}" is not a whole number`));
  const v = Number(s);
  if (!Number.isSafeInteger(v)) return fail(bad(flag, `"${raw}" is too large`));
  if (v < min) return fail(bad(flag, `"${raw}" is below the minimum of ${min}`));
  return v;
}

/** `50/s`, `50` (per second); `off` = null is handled by the caller. */
export function parseRate(flag: string, raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*s)?\s*$/.exec(raw);
  const v = m ? Number(m[1]) : NaN;
  if (!(v > 0) || !Number.isFinite(v)) return fail(bad(flag, `"${raw}" is not a rate (use 50/s)`));
  return v;
}

/** A share: `0.01`, `1`, `0`, `.5`; 0..1. */
export function parseRatio(flag: string, raw: string): number {
  const s = raw.trim();
  const v = /^(\d+(\.\d*)?|\.\d+)$/.test(s) ? Number(s) : NaN;
  if (!(v >= 0 && v <= 1)) return fail(bad(flag, `"${raw}" is not a ratio from 0 to 1 (e.g. 0.01)`));
  return v;
}

/**
 * The OTLP/HTTP traces endpoint for `--otlp`: a collector's base URL (`http://host:4318`, any
 * path prefix kept) gets `/v1/traces` appended; a URL whose path already ends in `/v1/traces`
 * is taken as it is.
 */
export function otlpTracesUrl(flag: string, raw: string): string {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    return fail(bad(flag, `"${raw}" is not a URL`));
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return fail(bad(flag, `"${raw}" must be http:// or https:// (OTLP over HTTP)`));
  if (u.search !== '' || u.hash !== '') return fail(bad(flag, `"${raw}" must have no query or fragment`));
  if (!/\/v1\/traces\/?$/.test(u.pathname)) u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/traces`;
  return u.href.replace(/\/+$/, '');
}

export function parseHostPort(flag: string, raw: string): HostPort {
  const s = raw.trim();
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) return fail(bad(flag, `"${raw}" is not host:port`));
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function fail(e: GatewayError): never {
  throw e;
}

export const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);

/** Raw option values as strings, keyed by flag name, from the highest-priority source that set each. */
export type RawOptions = Partial<Record<string, string>>;

/** Reads `--config` JSON: camelCase keys, string/number/boolean values. Unknown keys are an error. */
export function readConfigFile(path: string): RawOptions {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return fail(bad('config', `cannot read "${path}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`));
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(bad('config', `"${path}" is not valid JSON: ${(e as Error).message}`));
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    return fail(bad('config', `"${path}" must hold a JSON object`));
  const byCamel = new Map(OPTIONS.map((o) => [camel(o.flag), o.flag]));
  const out: RawOptions = {};
  for (const [k, v] of Object.entries(json)) {
    const flag = byCamel.get(k);
    if (!flag) return fail(bad('config', `unknown key "${k}" in "${path}"`));
    if (v === null) continue;
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
      return fail(bad(flag, `value of "${k}" in "${path}" must be a string or number`));
    out[flag] = String(v);
  }
  return out;
}

/** The environment's `GATE_*` values. */
export function readEnv(env: NodeJS.ProcessEnv): RawOptions {
  const out: RawOptions = {};
  for (const o of OPTIONS) {
    const v = env[envName(o.flag)];
    if (v !== undefined && v !== '') out[o.flag] = v;
  }
  return out;
}

/**
 * Merges flags over environment over file over defaults, then validates every value.
 * Throws GatewayError(GW_ERR_CONFIG) whose message is one line naming the option.
 */
export function buildConfig(flags: RawOptions, env: RawOptions, file: RawOptions, pid = process.pid): GateConfig {
  try {
    return validate(flags, env, file, pid);
  } catch (e) {
    // Say where a bad value came from when it was not a flag, so GATE_* and --config mistakes are findable.
    const option = e instanceof GatewayError ? (e.details?.option as string | undefined) : undefined;
    const source = option ? sourceOf(option, flags, env, file) : 'flag';
    if (option && (source === 'env' || source === 'file'))
      throw new GatewayError('GW_ERR_CONFIG', `${e instanceof Error ? e.message : ''} (from ${source === 'env' ? envName(option) : 'the --config file'})`, { option });
    throw e;
  }
}

/** Where an option's value comes from: the first of flags, environment, --config file that sets it, else its default. */
export type ValueSource = 'flag' | 'env' | 'file' | 'default';

export function sourceOf(flag: string, flags: RawOptions, env: RawOptions, file: RawOptions): ValueSource {
  return flags[flag] !== undefined ? 'flag' : env[flag] !== undefined ? 'env' : file[flag] !== undefined ? 'file' : 'default';
}

function validate(flags: RawOptions, env: RawOptions, file: RawOptions, pid: number): GateConfig {
  const raw: RawOptions = {};
  for (const o of OPTIONS) raw[o.flag] = flags[o.flag] ?? env[o.flag] ?? file[o.flag] ?? o.def;
  const str = (f: string): string | null => (raw[f] === undefined || raw[f] === '' ? null : raw[f]);
  const spec = (f: string): OptionSpec => OPTIONS.find((o) => o.flag === f)!;
  const dur = (f: string): number => parseDuration(f, raw[f]!, spec(f).min);
  const size = (f: string): number => parseSize(f, raw[f]!, spec(f).min);
  const int = (f: string): number => parseInt10(f, raw[f]!, spec(f).min);
  const hp = (f: string): HostPort | null => (raw[f]!.trim() === 'off' ? null : parseHostPort(f, raw[f]!));

  const upstream = str('upstream');
  if (upstream !== null) {
    let u: URL;
    try {
      u = new URL(upstream);
    } catch {
      return fail(bad('upstream', `"${upstream}" is not a URL`));
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(bad('upstream', `"${upstream}" must be http:// or https://`));
  }
  const redis = str('redis');
  if (redis !== null && !/^rediss?:\/\/[^\s]+$/.test(redis)) fail(bad('redis', `"${redis}" is not a redis:// URL`));
  const redisPrefix = raw['redis-prefix']!;
  if (!/^[\x21-\x7e]{1,64}$/.test(redisPrefix)) fail(bad('redis-prefix', `"${redisPrefix}" must be 1 to 64 printable characters without spaces`));
  const procsRaw = raw.procs!.trim();
  const procs = procsRaw === 'auto' ? availableParallelism() : /^\d+$/.test(procsRaw) ? Number(procsRaw) : NaN;
  if (!(procs >= 1 && procs <= MAX_PROCS)) fail(bad('procs', `"${procsRaw}" is not a number of processes 1..${MAX_PROCS} or auto`));
  // Processes share sessions only through Redis: without it each would keep its own and a resume could land on the wrong one.
  if (procs > 1 && redis === null) fail(bad('procs', `${procs} processes share sessions only through Redis: give --redis too, or --procs 1`));

  const otlpRaw = str('otlp');
  const otlp = otlpRaw === null || otlpRaw.trim() === 'off' ? null : otlpTracesUrl('otlp', otlpRaw);
  const otlpSample = parseRatio('otlp-sample', raw['otlp-sample']!);

  const authRaw = str('auth');
  if (authRaw !== null && !['none', 'upstream', 'jwt'].includes(authRaw))
    fail(bad('auth', `"${authRaw}" is not one of none, upstream, jwt`));
  const auth = (authRaw ?? (upstream ? 'upstream' : 'none')) as AuthMode;
  if (auth === 'upstream' && !upstream) fail(bad('auth', '"upstream" needs --upstream'));
  const jwtSecret = str('jwt-secret');
  if (auth === 'jwt' && !jwtSecret) fail(bad('jwt-secret', 'required with --auth jwt'));

  const level = raw['log-level']!.trim();
  if (!LEVELS.has(level)) fail(bad('log-level', `"${level}" is not one of ${[...LEVELS].join(', ')}`));

  const tcp = hp('tcp');
  const ws = hp('ws');
  const api = hp('api');
  if (!api) return fail(bad('api', 'cannot be off'));
  const apiKey = str('api-key');
  if (!isLoopback(api.host) && !apiKey) fail(bad('api-key', `required because --api ${api.host} is not a loopback address`));

  const tlsCert = str('tls-cert');
  const tlsKey = str('tls-key');
  if ((tlsCert === null) !== (tlsKey === null)) fail(bad(tlsCert ? 'tls-key' : 'tls-cert', 'both --tls-cert and --tls-key are needed'));
  for (const [f, p] of [['tls-cert', tlsCert], ['tls-key', tlsKey]] as const) {
    if (p === null) continue;
    try {
      readFileSync(p);
    } catch (e) {
      fail(bad(f, `cannot read "${p}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`));
    }
  }
  if (tlsCert !== null && tlsKey !== null) checkTlsPair(tlsCert, tlsKey);

  return {
    tcp,
    ws,
    api,
    upstream: upstream ? upstream.replace(/\/+$/, '') : null,
    auth,
    jwtSecret,
    apiKey,
    gateId: str('gate-id') ?? `${hostname()}-${pid}`,
    heartbeatMs: dur('heartbeat'),
    idleTimeoutMs: dur('idle-timeout'),
    helloTimeoutMs: dur('hello-timeout'),
    maxFrame: size('max-frame'),
    workers: int('workers'),
    playerConcurrency: int('player-concurrency'),
    queueMax: int('queue-max'),
    upstreamTimeoutMs: dur('upstream-timeout'),
    upstreamRetries: int('upstream-retries'),
    bufferMax: int('buffer-max'),
    bufferMaxBytes: size('buffer-max-bytes'),
    outboundMax: size('outbound-max'),
    requestWindow: int('request-window'),
    requestWindowBytes: size('request-window-bytes'),
    maxConnections: int('max-connections'),
    maxHandshakes: int('max-handshakes'),
    playerQueueMax: int('player-queue-max'),
    logSample: int('log-sample'),
    keyGraceMs: dur('key-grace'),
    rateLimit: str('rate-limit') === null || raw['rate-limit']!.trim() === 'off' ? null : parseRate('rate-limit', raw['rate-limit']!),
    tlsCert,
    tlsKey,
    redis,
    redisPrefix,
    procs,
    logLevel: level,
    shutdownGraceMs: 10_000,
    eventsBatchMax: 100,
    eventsQueueMax: 10_000,
    eventsLingerMs: 20,
    registerEveryMs: 10_000,
    eventsBackoffMs: 200,
    eventsBackoffMaxMs: 5_000,
    eventsFlushMs: 5_000,
    otlp,
    otlpSample,
  };
}

/**
 * A readable file is not enough: a cert that is not PEM, a key that is not (or is encrypted), or
 * a pair that does not match would otherwise only fail when the listeners start, as exit 1
 * without naming the option. Judged here, they are bad option values: exit 2, one line (§1).
 */
function checkTlsPair(certPath: string, keyPath: string): void {
  const cert = readFileSync(certPath);
  const key = readFileSync(keyPath);
  const reason = (e: unknown): string => (e as { reason?: string }).reason ?? (e as Error).message;
  if (!cert.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) fail(bad('tls-cert', `"${certPath}" is not a PEM certificate`));
  try {
    new X509Certificate(cert);
  } catch (e) {
    fail(bad('tls-cert', `"${certPath}" is not a PEM certificate: ${reason(e)}`));
  }
  try {
    createPrivateKey(key);
  } catch {
    fail(bad('tls-key', `"${keyPath}" is not an unencrypted PEM private key`)); // OpenSSL's reason here is unhelpful ("unsupported")
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    fail(bad('tls-key', `"${keyPath}" does not match the certificate in --tls-cert: ${reason(e)}`));
  }
}

/** Defaults for tests and embedding: every listener on 127.0.0.1 port 0. */
export function testConfig(over: Partial<GateConfig> = {}): GateConfig {
  const base = buildConfig({ tcp: '127.0.0.1:0', ws: '127.0.0.1:0', api: '127.0.0.1:0', 'gate-id': 'test-gate', 'log-level': 'silent' }, {}, {});
  return { ...base, ...over };
}

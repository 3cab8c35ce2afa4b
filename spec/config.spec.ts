/** lib/config.ts against CONTRACT §1: sources and precedence, value syntax, defaults and one-line errors. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayError } from '../lib/errors.js';
import { makeSelfSignedCert } from './helpers/certs.js';
import {
  OPTIONS,
  buildConfig,
  camel,
  envName,
  parseDuration,
  parseSize,
  readConfigFile,
  readEnv,
  type GateConfig,
  type RawOptions,
} from '../lib/config.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'gate-config-spec-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

let fileN = 0; // distinct temp file names
const configFile = (content: unknown): string => {
  const p = join(dir, `config-${++fileN}.json`);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
};

/**
 * Asserts that `fn` throws GatewayError(GW_ERR_CONFIG) whose message is one line starting with
 * `--<option>:` (CONTRACT §1: "one line naming the option").
 */
function assertConfigError(fn: () => unknown, option: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof GatewayError, `expected a GatewayError, got ${String(e)}`);
    assert.equal(e.code, 'GW_ERR_CONFIG');
    assert.ok(e.message.startsWith(`--${option}: `), `message should start with "--${option}: ": ${JSON.stringify(e.message)}`);
    assert.ok(!/[\r\n]/.test(e.message), `message should be one line: ${JSON.stringify(e.message)}`);
    return true;
  });
}

const build = (flags: RawOptions = {}, env: RawOptions = {}, file: RawOptions = {}): GateConfig => buildConfig(flags, env, file, 4242);

describe('config', () => {
  describe('defaults', () => {
    it('should match CONTRACT §1 when nothing is set', () => {
      const c = build();
      assert.deepEqual(c.tcp, { host: '0.0.0.0', port: 7000 });
      assert.deepEqual(c.ws, { host: '0.0.0.0', port: 7001 });
      assert.deepEqual(c.api, { host: '127.0.0.1', port: 7002 });
      assert.equal(c.upstream, null);
      assert.equal(c.auth, 'none');
      assert.equal(c.jwtSecret, null);
      assert.equal(c.apiKey, null);
      assert.match(c.gateId, /-4242$/);
      assert.equal(c.heartbeatMs, 15_000);
      assert.equal(c.idleTimeoutMs, 1_800_000);
      assert.equal(c.helloTimeoutMs, 10_000);
      assert.equal(c.maxFrame, 262_144);
      assert.equal(c.workers, 256);
      assert.equal(c.playerConcurrency, 1);
      assert.equal(c.queueMax, 10_000);
      assert.equal(c.upstreamTimeoutMs, 10_000);
      assert.equal(c.upstreamRetries, 2);
      assert.equal(c.bufferMax, 1000);
      assert.equal(c.outboundMax, 4_194_304);
      assert.equal(c.requestWindow, 128);
      assert.equal(c.maxConnections, 100_000);
      assert.equal(c.tlsCert, null);
      assert.equal(c.tlsKey, null);
      assert.equal(c.redis, null);
      assert.equal(c.redisPrefix, 'gate:');
      assert.equal(c.procs, 1);
      assert.equal(c.logLevel, 'info');
      assert.equal(c.otlp, null, 'tracing off');
      assert.equal(c.otlpSample, 0.01);
    });

    it('should default --auth to upstream when --upstream is given', () => {
      const c = build({ upstream: 'http://127.0.0.1:9000/' });
      assert.equal(c.auth, 'upstream');
      assert.equal(c.upstream, 'http://127.0.0.1:9000');
    });

    it('should name every option for the environment and the config file as CONTRACT §1 says', () => {
      assert.equal(envName('upstream-timeout'), 'GATE_UPSTREAM_TIMEOUT');
      assert.equal(camel('upstream-timeout'), 'upstreamTimeout');
      const flags = OPTIONS.map((o) => o.flag);
      assert.equal(new Set(flags).size, flags.length);
      for (const f of ['tcp', 'ws', 'api', 'upstream', 'auth', 'jwt-secret', 'api-key', 'gate-id', 'heartbeat', 'idle-timeout',
        'hello-timeout', 'max-frame', 'workers', 'player-concurrency', 'queue-max', 'upstream-timeout', 'upstream-retries',
        'buffer-max', 'outbound-max', 'request-window', 'max-connections', 'tls-cert', 'tls-key', 'redis', 'redis-prefix', 'procs', 'log-level', 'otlp', 'otlp-sample'])
        assert.ok(flags.includes(f), `missing option --${f}`);
    });
  });

  describe('precedence', () => {
    it('should take flags over environment over file over defaults', () => {
      const file = readConfigFile(configFile({ upstreamTimeout: '7s', workers: 8, queueMax: 3, bufferMax: 9 }));
      const env = readEnv({ GATE_UPSTREAM_TIMEOUT: '5s', GATE_WORKERS: '16', GATE_QUEUE_MAX: '4' });
      const flags: RawOptions = { 'upstream-timeout': '3s' };
      const c = build(flags, env, file);
      assert.equal(c.upstreamTimeoutMs, 3000); // flag beats env and file
      assert.equal(c.workers, 16); // env beats file
      assert.equal(c.queueMax, 4);
      assert.equal(c.bufferMax, 9); // file beats default
      assert.equal(c.requestWindow, 128); // default
    });

    it('should take the environment over the file', () => {
      const file = readConfigFile(configFile({ upstreamTimeout: '7s' }));
      assert.equal(build({}, readEnv({ GATE_UPSTREAM_TIMEOUT: '5s' }), file).upstreamTimeoutMs, 5000);
      assert.equal(build({}, {}, file).upstreamTimeoutMs, 7000);
    });

    it('should read only GATE_ variables of known options, ignoring empty ones', () => {
      assert.deepEqual(readEnv({ GATE_UPSTREAM_TIMEOUT: '5s', GATE_HEARTBEAT: '', GATE_NOPE: 'x', PATH: '/bin' }), {
        'upstream-timeout': '5s',
      });
    });

    it('should read camelCase keys with string, number and null values from the config file', () => {
      const p = configFile({ upstreamTimeout: 2500, tcp: 'off', logLevel: 'warn', apiKey: null });
      assert.deepEqual(readConfigFile(p), { 'upstream-timeout': '2500', tcp: 'off', 'log-level': 'warn' });
      const c = build({}, {}, readConfigFile(p));
      assert.equal(c.upstreamTimeoutMs, 2500);
      assert.equal(c.tcp, null);
      assert.equal(c.logLevel, 'warn');
    });

    it('should validate a bad value from the environment or file by its option name', () => {
      assertConfigError(() => build({}, readEnv({ GATE_UPSTREAM_TIMEOUT: 'soon' })), 'upstream-timeout');
      assertConfigError(() => build({}, {}, readConfigFile(configFile({ workers: 'many' }))), 'workers');
    });
  });

  describe('durations', () => {
    for (const [raw, want] of [
      ['250ms', 250],
      ['15s', 15_000],
      ['30m', 1_800_000],
      ['2h', 7_200_000],
      ['1500', 1500],
      ['0', 0],
      ['1.5s', 1500],
    ] as const)
      it(`should parse ${JSON.stringify(raw)} as ${want}ms`, () => {
        assert.equal(parseDuration('heartbeat', raw), want);
      });

    for (const raw of ['', 'soon', '-1s', '1e3', '15 sec', 's', '1.5', '2w'])
      it(`should reject ${JSON.stringify(raw)}`, () => {
        assertConfigError(() => parseDuration('heartbeat', raw), 'heartbeat');
      });

    it('should reject a duration below the option minimum or beyond what a timer can hold', () => {
      assertConfigError(() => parseDuration('heartbeat', '5', 10), 'heartbeat');
      assertConfigError(() => parseDuration('idle-timeout', '30d'), 'idle-timeout');
      assertConfigError(() => parseDuration('idle-timeout', '99999999999'), 'idle-timeout');
    });
  });

  describe('sizes', () => {
    for (const [raw, want] of [
      ['64kb', 65_536],
      ['4mb', 4_194_304],
      ['4MB', 4_194_304],
      ['1000', 1000],
      ['0', 0],
      ['256kb', 262_144],
    ] as const)
      it(`should parse ${JSON.stringify(raw)} as ${want} bytes`, () => {
        assert.equal(parseSize('max-frame', raw), want);
      });

    for (const raw of ['', 'big', '-1', '4 megabytes', '1e6', 'kb', '5gb'])
      it(`should reject ${JSON.stringify(raw)}`, () => {
        assertConfigError(() => parseSize('max-frame', raw), 'max-frame');
      });

    it('should reject a size below the option minimum', () => {
      assertConfigError(() => parseSize('outbound-max', '100', 1024), 'outbound-max');
    });
  });

  describe('bad values', () => {
    const cases: [option: string, value: string][] = [
      ['tcp', 'nowhere'],
      ['tcp', '127.0.0.1:70000'],
      ['tcp', 'OFF:'],
      ['ws', ':7001'],
      ['api', 'off'],
      ['api', 'localhost'],
      ['upstream', 'not a url'],
      ['upstream', 'ftp://example.com'],
      ['auth', 'magic'],
      ['heartbeat', 'often'],
      ['heartbeat', '5'],
      ['idle-timeout', '0'],
      ['hello-timeout', '10 s s'],
      ['max-frame', 'huge'],
      ['max-frame', '10'],
      ['workers', '0'],
      ['workers', 'lots'],
      ['workers', '1.5'],
      ['player-concurrency', '0'],
      ['queue-max', '-1'],
      ['upstream-timeout', '10x'],
      ['upstream-retries', 'two'],
      ['buffer-max', '0'],
      ['outbound-max', '1kb0'],
      ['request-window', '0'],
      ['max-connections', '99999999999999999999'],
      ['redis', 'http://localhost:6379'],
      ['redis-prefix', ''],
      ['redis-prefix', 'has space'],
      ['procs', '0'],
      ['procs', 'many'],
      ['procs', '1000'],
      ['procs', '2'], // without --redis
      ['log-level', 'loud'],
      ['otlp', 'not-a-url'],
      ['otlp', 'ftp://collector:4318'],
      ['otlp', 'http://collector:4318/?x=1'],
      ['otlp-sample', '2'],
      ['otlp-sample', '-0.1'],
      ['otlp-sample', 'often'],
      ['otlp-sample', '1%'],
      ['tls-cert', '/nonexistent/cert.pem'],
    ];
    for (const [option, value] of cases)
      it(`should reject --${option} ${JSON.stringify(value)} with a one-line message naming it`, () => {
        const flags: RawOptions = { [option]: value };
        if (option === 'tls-cert') flags['tls-key'] = '/nonexistent/key.pem';
        assertConfigError(() => build(flags), option);
      });

    it('should take --otlp as a collector base URL, appending /v1/traces unless the path ends in it, and --otlp-sample 0..1', () => {
      assert.equal(build({ otlp: 'http://127.0.0.1:4318' }).otlp, 'http://127.0.0.1:4318/v1/traces');
      assert.equal(build({ otlp: 'https://otel.example/' }).otlp, 'https://otel.example/v1/traces');
      assert.equal(build({ otlp: 'http://gw:8080/otlp' }).otlp, 'http://gw:8080/otlp/v1/traces');
      assert.equal(build({ otlp: 'http://c:4318/v1/traces' }).otlp, 'http://c:4318/v1/traces');
      assert.equal(build({ otlp: 'http://c:4318/v1/traces/' }).otlp, 'http://c:4318/v1/traces');
      assert.equal(build({ otlp: 'off' }).otlp, null);
      assert.equal(build({}, readEnv({ GATE_OTLP: 'http://c:4318' })).otlp, 'http://c:4318/v1/traces');
      assert.equal(build({}, {}, readConfigFile(configFile({ otlp: 'http://f:4318', otlpSample: 0.5 }))).otlpSample, 0.5);
      for (const [raw, want] of [['0', 0], ['1', 1], ['0.25', 0.25], ['.5', 0.5]] as const) assert.equal(build({ 'otlp-sample': raw }).otlpSample, want);
    });

    it('should keep the message on one line when the bad value holds a line break', () => {
      assertConfigError(() => build({ heartbeat: '1\n5s' }), 'heartbeat');
      assertConfigError(() => build({}, {}, readConfigFile(configFile({ logLevel: 'info\r\nx' }))), 'log-level');
    });

    it('should take --procs N or auto with --redis, and a --redis-prefix', async () => {
      const { availableParallelism } = await import('node:os');
      const redis = 'redis://127.0.0.1:6379';
      assert.equal(build({ procs: '2', redis }).procs, 2);
      assert.equal(build({ procs: 'auto', redis }).procs, availableParallelism());
      assert.equal(build({ procs: '1' }).procs, 1, 'one process needs no Redis');
      assert.equal(build({ 'redis-prefix': 'game7:', redis }).redisPrefix, 'game7:');
      assertConfigError(() => build({ procs: '2' }), 'procs');
    });

    it('should reject --api on a non-loopback address without --api-key', () => {
      assertConfigError(() => build({ api: '0.0.0.0:7002' }), 'api-key');
      assert.deepEqual(build({ api: '0.0.0.0:7002', 'api-key': 'k' }).api, { host: '0.0.0.0', port: 7002 });
      assert.equal(build({ api: 'localhost:7002' }).apiKey, null);
      assert.equal(build({ api: '[::1]:7002' }).api.host, '::1');
    });

    it('should reject --auth jwt without --jwt-secret', () => {
      assertConfigError(() => build({ auth: 'jwt' }), 'jwt-secret');
      assert.equal(build({ auth: 'jwt', 'jwt-secret': 's' }).jwtSecret, 's');
    });

    it('should reject --auth upstream without --upstream', () => {
      assertConfigError(() => build({ auth: 'upstream' }), 'auth');
    });

    it('should reject --tls-cert without --tls-key and the other way round', () => {
      const tls = makeSelfSignedCert();
      try {
        assertConfigError(() => build({ 'tls-cert': tls.certPath }), 'tls-key');
        assertConfigError(() => build({ 'tls-key': tls.keyPath }), 'tls-cert');
        assert.equal(build({ 'tls-cert': tls.certPath, 'tls-key': tls.keyPath }).tlsCert, tls.certPath);
      } finally {
        tls.remove();
      }
    });

    it('should reject a --tls-cert or --tls-key that is readable but not usable PEM', () => {
      const tls = makeSelfSignedCert();
      try {
        const junk = configFile('not really a cert');
        assertConfigError(() => build({ 'tls-cert': junk, 'tls-key': tls.keyPath }), 'tls-cert');
        assertConfigError(() => build({ 'tls-cert': tls.certPath, 'tls-key': junk }), 'tls-key');
        assertConfigError(() => build({ 'tls-cert': tls.certPath, 'tls-key': tls.certPath }), 'tls-key');
      } finally {
        tls.remove();
      }
    });
  });

  describe('listeners', () => {
    it('should turn --tcp off and --ws off into null', () => {
      const c = build({ tcp: 'off', ws: 'off' });
      assert.equal(c.tcp, null);
      assert.equal(c.ws, null);
    });

    it('should parse host:port, including bracketed IPv6 and port 0', () => {
      assert.deepEqual(build({ tcp: '127.0.0.1:0' }).tcp, { host: '127.0.0.1', port: 0 });
      assert.deepEqual(build({ ws: '[::]:8080' }).ws, { host: '::', port: 8080 });
    });
  });

  describe('config file', () => {
    it('should reject an unknown key, naming --config', () => {
      const p = configFile({ upstreamTimeout: '5s', upstreamTimeoutMs: 5000 });
      assertConfigError(() => readConfigFile(p), 'config');
    });

    it('should reject a flag-style (kebab-case) key', () => {
      assertConfigError(() => readConfigFile(configFile({ 'upstream-timeout': '5s' })), 'config');
    });

    it('should reject a missing file, invalid JSON and a non-object', () => {
      assertConfigError(() => readConfigFile(join(dir, 'missing.json')), 'config');
      assertConfigError(() => readConfigFile(configFile('{"workers": ')), 'config');
      assertConfigError(() => readConfigFile(configFile('[1, 2]')), 'config');
      assertConfigError(() => readConfigFile(configFile('null')), 'config');
    });

    it('should reject a value that is an object or array, naming its option', () => {
      assertConfigError(() => readConfigFile(configFile({ workers: { n: 1 } })), 'workers');
      assertConfigError(() => readConfigFile(configFile({ tcp: ['a'] })), 'tcp');
    });
  });
});

/**
 * `gate client`: an interactive client for trying a gate by hand (CONTRACT §1, §2).
 *
 * It connects over TCP (optionally TLS) or WebSocket, logs in with HELLO, prints every frame it
 * receives as one line on stdout, and turns stdin lines into frames:
 *
 *   ROUTE [json-or-text]          REQUEST with the next request seq (1, 2, 3 …)
 *   !notify ROUTE [json-or-text]  REQUEST with seq 0 (no answer)
 *   !ping                         PING
 *   !drop                         close the socket without BYE (the session stays resumable)
 *   !quit  (or end of input)      wait for outstanding answers (at most 5 s), then BYE logout
 *
 * It PINGs every heartbeatMs, answers the gate's PINGs, and ACKs pushes (coalesced: at most one
 * ACK per 100 ms unless 32 pushes are waiting). Diagnostics go to stderr, one line each, never a
 * stack trace. Exit status: 0 after logout or `!drop`, 1 when the gate closes the connection or
 * says BYE, or when it cannot be reached, 2 on a bad option.
 */
import { randomBytes } from 'node:crypto';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { createInterface, type Interface } from 'node:readline';
import { connect as tlsConnect } from 'node:tls';
import { inflateRawSync } from 'node:zlib';
import { Command, CommanderError } from 'commander';
import WebSocket from 'ws';
import { FLAG_DEFLATE, FRAME_TYPE_NAMES, FrameType, encodeFrame, frame, parseFrame, type Frame } from '../frame.js';
import { FrameDecoder } from '../frameDecoder.js';

/** Streams the command talks through (injectable for tests). */
export interface ClientIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Largest frame body accepted from the gate (also after inflating). The gate's own limit is far lower. */
const CLIENT_MAX_FRAME = 64 * 1024 * 1024;
/** Give up connecting (TCP/TLS handshake, WebSocket upgrade) after this long, ms. */
const CONNECT_TIMEOUT_MS = 10_000;
/** After `!quit` or end of input, wait at most this long for outstanding answers, ms. */
const DRAIN_TIMEOUT_MS = 5000;
/** After sending BYE, wait at most this long for the socket to close before destroying it, ms. */
const CLOSE_GRACE_MS = 1000;
/** ACK coalescing: at most one ACK per this many ms … */
const ACK_DELAY_MS = 100;
/** … unless this many pushes are waiting to be acknowledged. */
const ACK_BATCH = 32;
/** Heartbeat when WELCOME does not say (CONTRACT §1 default), ms. */
const DEFAULT_HEARTBEAT_MS = 15_000;
/** Binary bodies print as hex of at most this many bytes. */
const HEX_MAX_BYTES = 32;
const DEFAULT_TCP = '127.0.0.1:7000';
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

const USAGE_HINT =
  'expected "ROUTE [body]", "!notify ROUTE [body]", "!ping", "!drop" or "!quit" (ROUTE is 0-65535)';

// ---------------------------------------------------------------------------------------------
// Options

type Target =
  | { kind: 'tcp'; host: string; port: number; tls: boolean; label: string }
  | { kind: 'ws'; url: string; label: string };

interface ClientOptions {
  target: Target;
  insecure: boolean;
  token: string;
  compress: boolean;
  resume: { sessionId: string; resumeToken: string; lastSeq: number } | undefined;
  heartbeatMs: number | undefined;
}

/** A bad option: the message is the whole one-line diagnostic (after `gate client: `). */
class OptionError extends Error {
  override readonly name = 'OptionError';
}

interface RawClientOptions {
  tcp?: string;
  ws?: string;
  tls?: boolean;
  insecure?: boolean;
  token?: string;
  compress?: boolean;
  resume?: string;
  heartbeatMs?: string;
}

function buildCommand(): Command {
  return new Command('client')
    .description('interactive client for trying a gate by hand')
    .option('--tcp <host:port>', `gate TCP address (default ${DEFAULT_TCP})`)
    .option('--ws <url|host:port>', 'gate WebSocket address, e.g. ws://127.0.0.1:7001/ or 127.0.0.1:7001')
    .option('--tls', 'TCP over TLS (for WebSocket use a wss:// URL)')
    .option('--insecure', 'skip TLS certificate checks (self-signed test certificates)')
    .option('--token <token>', 'HELLO token (default: player-<4 random hex>)')
    .option('--compress', 'ask the gate to compress large RESPONSE and PUSH bodies')
    .option('--resume <sessionId:resumeToken:lastSeq>', 'resume a session')
    .option('--heartbeat-ms <n>', "PING interval, ms (default: WELCOME's heartbeatMs)")
    .addHelpText(
      'after',
      '\nInput lines:\n  ROUTE [json-or-text]          send a REQUEST (seq 1, 2, 3 …)\n' +
        '  !notify ROUTE [json-or-text]  send a REQUEST with seq 0 (no answer)\n' +
        '  !ping                         send a PING\n' +
        '  !drop                         close the connection without BYE (to try --resume)\n' +
        '  !quit or end of input         wait for answers (max 5 s), send BYE logout, exit 0\n',
    )
    .showSuggestionAfterError(false)
    .exitOverride();
}

const HOST_PORT = /^(?:\[([^\]]+)\]|([^:[\]\s]*)):(\d{1,5})$/;

function parseHostPort(option: string, value: string): { host: string; port: number } {
  const m = HOST_PORT.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= U16_MAX))
    throw new OptionError(`${option}: expected host:port with a port 1-65535, got ${JSON.stringify(value)}`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '127.0.0.1' : host, port };
}

const hostLabel = (host: string, port: number): string => (isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`);

function parseWsTarget(value: string, tls: boolean): Target {
  const v = value.trim();
  if (/^wss?:\/\//i.test(v)) {
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      throw new OptionError(`--ws: not a valid URL: ${JSON.stringify(value)}`);
    }
    if (tls && url.protocol === 'ws:') throw new OptionError('--tls: the --ws URL says ws://; use a wss:// URL for TLS');
    return { kind: 'ws', url: url.href, label: url.href };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) throw new OptionError(`--ws: expected a ws:// or wss:// URL or host:port, got ${JSON.stringify(value)}`);
  const { host, port } = parseHostPort('--ws', v);
  const href = `${tls ? 'wss' : 'ws'}://${hostLabel(host, port)}/`;
  return { kind: 'ws', url: href, label: href };
}

function parseResume(value: string): NonNullable<ClientOptions['resume']> {
  const first = value.indexOf(':');
  const last = value.lastIndexOf(':');
  const bad = (): OptionError =>
    new OptionError(`--resume: expected sessionId:resumeToken:lastSeq, got ${JSON.stringify(value)}`);
  if (first <= 0 || last <= first + 1) throw bad();
  const lastSeqText = value.slice(last + 1);
  const lastSeq = Number(lastSeqText);
  if (!/^\d+$/.test(lastSeqText) || lastSeq > U32_MAX) throw bad();
  return { sessionId: value.slice(0, first), resumeToken: value.slice(first + 1, last), lastSeq };
}

function toClientOptions(raw: RawClientOptions): ClientOptions {
  if (raw.tcp !== undefined && raw.ws !== undefined) throw new OptionError('--tcp and --ws cannot be used together');
  const tls = raw.tls === true;
  let target: Target;
  if (raw.ws !== undefined) {
    target = parseWsTarget(raw.ws, tls);
  } else {
    const { host, port } = parseHostPort('--tcp', raw.tcp ?? DEFAULT_TCP);
    target = { kind: 'tcp', host, port, tls, label: hostLabel(host, port) };
  }
  let heartbeatMs: number | undefined;
  if (raw.heartbeatMs !== undefined) {
    heartbeatMs = Number(raw.heartbeatMs);
    if (!/^\d+$/.test(raw.heartbeatMs.trim()) || heartbeatMs < 1 || heartbeatMs > 2 ** 31 - 1)
      throw new OptionError(`--heartbeat-ms: expected a positive whole number of ms, got ${JSON.stringify(raw.heartbeatMs)}`);
  }
  if (raw.token !== undefined && raw.token === '') throw new OptionError('--token: must not be empty');
  return {
    target,
    insecure: raw.insecure === true,
    token: raw.token ?? `player-${randomBytes(2).toString('hex')}`,
    compress: raw.compress === true,
    resume: raw.resume === undefined ? undefined : parseResume(raw.resume),
    heartbeatMs,
  };
}

// ---------------------------------------------------------------------------------------------
// Input lines

export type InputCommand =
  | { kind: 'request'; route: number; body: Buffer; notify: boolean }
  | { kind: 'ping' }
  | { kind: 'drop' }
  | { kind: 'quit' }
  | { kind: 'empty' }
  | { kind: 'invalid'; hint: string };

function parseRouteAndBody(rest: string, notify: boolean): InputCommand {
  const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(rest);
  const routeText = m?.[1];
  if (routeText === undefined || !/^\d+$/.test(routeText) || Number(routeText) > U16_MAX)
    return { kind: 'invalid', hint: `bad route ${JSON.stringify(routeText ?? '')}: ${USAGE_HINT}` };
  const body = (m?.[2] ?? '').trim();
  return { kind: 'request', route: Number(routeText), body: Buffer.from(body, 'utf8'), notify };
}

/** What one stdin line asks for. Exported for tests. */
export function parseInputLine(line: string): InputCommand {
  const text = line.trim();
  if (text === '') return { kind: 'empty' };
  if (text.startsWith('!')) {
    const m = /^!(\S+)(?:\s+([\s\S]*))?$/.exec(text);
    const cmd = m?.[1]?.toLowerCase() ?? '';
    const rest = m?.[2] ?? '';
    switch (cmd) {
      case 'notify':
        return parseRouteAndBody(rest, true);
      case 'ping':
      case 'drop':
      case 'quit':
        return rest === '' ? { kind: cmd } : { kind: 'invalid', hint: `!${cmd} takes no argument` };
      default:
        return { kind: 'invalid', hint: `unknown command !${cmd}: ${USAGE_HINT}` };
    }
  }
  return parseRouteAndBody(text, false);
}

// ---------------------------------------------------------------------------------------------
// Printing frames

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** The body as one line: UTF-8 text (newlines escaped) if it is text, else `<N bytes hex …>`. */
export function formatBody(body: Buffer): string {
  let printable = true;
  for (const b of body) {
    if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) {
      printable = false;
      break;
    }
  }
  if (printable) {
    try {
      return textDecoder.decode(body).replace(/\r/g, '\\r').replace(/\n/g, '\\n');
    } catch {
      // not UTF-8: print as hex below
    }
  }
  const shown = body.subarray(0, HEX_MAX_BYTES).toString('hex');
  return `<${body.length} bytes hex ${shown}${body.length > HEX_MAX_BYTES ? '…' : ''}>`;
}

const SHOW_ROUTE = new Set<number>([FrameType.REQUEST, FrameType.RESPONSE, FrameType.PUSH]);
const SHOW_SEQ = new Set<number>([
  FrameType.REQUEST,
  FrameType.RESPONSE,
  FrameType.PUSH,
  FrameType.ACK,
  FrameType.PING,
  FrameType.PONG,
  FrameType.ERROR,
]);

/** One line for a received frame, e.g. `PUSH route=102 seq=7 {"from":"bob","text":"hi"}`. */
export function formatFrame(f: Frame): string {
  const parts = [FRAME_TYPE_NAMES[f.type] ?? `TYPE${f.type}`];
  if (SHOW_ROUTE.has(f.type) || (f.route !== 0 && f.type !== FrameType.ERROR)) parts.push(`route=${f.route}`);
  if (SHOW_SEQ.has(f.type) || f.seq !== 0) parts.push(`seq=${f.seq}`);
  let body = f.body;
  if ((f.flags & FLAG_DEFLATE) !== 0) {
    try {
      body = inflateRawSync(f.body, { maxOutputLength: CLIENT_MAX_FRAME });
    } catch {
      parts.push(`<${f.body.length} bytes flagged compressed that do not inflate>`);
      return parts.join(' ');
    }
  }
  if (body.length > 0) parts.push(formatBody(body));
  return parts.join(' ');
}

// ---------------------------------------------------------------------------------------------
// Transports

interface TransportHandlers {
  onFrame(f: Frame): void;
  /** The gate sent bytes that are not frames; the transport is already destroyed. */
  onProtocolError(message: string): void;
  onClose(): void;
}

interface Transport {
  send(f: Frame): void;
  /** Closes after flushing what was sent; resolves once closed (destroys after a grace period). */
  close(): Promise<void>;
  destroy(): void;
}

/** The short reason of a connect failure: the errno code (ECONNREFUSED …) when there is one. */
function errorReason(e: unknown): string {
  if (e instanceof AggregateError) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const inner: unknown = e.errors[0];
    if (inner !== undefined) return errorReason(inner);
  }
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    return e.message.split('\n')[0] ?? 'error';
  }
  return String(e);
}

const TLS_CERT_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME/;

function connectTcp(t: Extract<Target, { kind: 'tcp' }>, insecure: boolean, h: TransportHandlers): Promise<Transport> {
  return new Promise<Transport>((resolve, reject) => {
    const socket: Socket = t.tls
      ? tlsConnect({
          host: t.host,
          port: t.port,
          rejectUnauthorized: !insecure,
          ...(isIP(t.host) === 0 ? { servername: t.host } : {}),
        })
      : netConnect({ host: t.host, port: t.port });
    let open = false;
    let closed = false;
    const timer = setTimeout(() => {
      socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
    }, CONNECT_TIMEOUT_MS);
    const decoder = new FrameDecoder(CLIENT_MAX_FRAME);
    socket.on('error', (e) => {
      if (!open) {
        clearTimeout(timer);
        reject(e);
      }
      // after open: 'close' follows and reports the end
    });
    socket.on(t.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      open = true;
      socket.setNoDelay(true);
      resolve(transport);
    });
    socket.on('data', (chunk: Buffer) => {
      const err = decoder.push(chunk, (f) => h.onFrame(f));
      if (err && !socket.destroyed) {
        socket.destroy();
        h.onProtocolError(err.message);
      }
    });
    socket.on('close', () => {
      closed = true;
      clearTimeout(timer);
      if (open) h.onClose();
    });
    const transport: Transport = {
      send: (f) => {
        if (!socket.destroyed && socket.writable) socket.write(encodeFrame(f, true));
      },
      close: () =>
        new Promise<void>((done) => {
          if (closed) return done();
          const grace = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
          socket.once('close', () => {
            clearTimeout(grace);
            done();
          });
          socket.end();
        }),
      destroy: () => socket.destroy(),
    };
  });
}

function connectWs(t: Extract<Target, { kind: 'ws' }>, insecure: boolean, h: TransportHandlers): Promise<Transport> {
  return new Promise<Transport>((resolve, reject) => {
    const ws = new WebSocket(t.url, {
      rejectUnauthorized: !insecure,
      handshakeTimeout: CONNECT_TIMEOUT_MS,
      perMessageDeflate: false,
      maxPayload: CLIENT_MAX_FRAME + 8,
    });
    ws.binaryType = 'nodebuffer';
    let open = false;
    let closed = false;
    ws.on('error', (e) => {
      if (!open) reject(e);
    });
    ws.on('open', () => {
      open = true;
      resolve(transport);
    });
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (closed) return;
      if (!isBinary) {
        ws.terminate();
        h.onProtocolError('the gate sent a text WebSocket message');
        return;
      }
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      let f: Frame;
      try {
        f = parseFrame(buf, CLIENT_MAX_FRAME);
      } catch (e) {
        ws.terminate();
        h.onProtocolError(e instanceof Error ? e.message : String(e));
        return;
      }
      h.onFrame(f);
    });
    ws.on('close', () => {
      closed = true;
      if (open) h.onClose();
    });
    const transport: Transport = {
      send: (f) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(encodeFrame(f, false), { binary: true });
      },
      close: () =>
        new Promise<void>((done) => {
          if (closed || ws.readyState === WebSocket.CLOSED) return done();
          const grace = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
          ws.once('close', () => {
            clearTimeout(grace);
            done();
          });
          ws.close(1000);
        }),
      destroy: () => ws.terminate(),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// The session

interface WelcomeInfo {
  sessionId?: string;
  resumeToken?: string;
  heartbeatMs?: number;
  resumed?: boolean;
}

function parseWelcome(body: Buffer): WelcomeInfo {
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    if (v === null || typeof v !== 'object') return {};
    const o = v as Record<string, unknown>;
    return {
      ...(typeof o.sessionId === 'string' ? { sessionId: o.sessionId } : {}),
      ...(typeof o.resumeToken === 'string' ? { resumeToken: o.resumeToken } : {}),
      ...(typeof o.heartbeatMs === 'number' && o.heartbeatMs > 0 ? { heartbeatMs: o.heartbeatMs } : {}),
      ...(typeof o.resumed === 'boolean' ? { resumed: o.resumed } : {}),
    };
  } catch {
    return {};
  }
}

/** The BYE code in a BYE body, if it has one. */
function byeCode(body: Buffer): string | undefined {
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    const code = v !== null && typeof v === 'object' ? (v as Record<string, unknown>).code : undefined;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** BYE codes after which the session is still detached and worth resuming (docs/protocol.md). */
const RESUMABLE_BYES = new Set(['slow_consumer', 'shutdown', 'protocol_error']);

class ClientSession {
  private transport: Transport | undefined;
  private welcomed = false;
  private finished = false;
  private ending = false;
  private inputEnded = false;
  private draining = false;
  /** Lines read before WELCOME (or while a line is being handled), in order. */
  private readonly queue: string[] = [];
  private nextRequestSeq = 1;
  private nextPingSeq = 1;
  /** Request seqs sent and not yet answered by RESPONSE or ERROR. */
  private readonly pending = new Set<number>();
  /** Highest push seq received with none missing below it. */
  private contiguous: number;
  private acked: number;
  private sessionId: string | undefined;
  private resumeToken: string | undefined;
  private lastHeard = Date.now();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private resolveDone!: (code: number) => void;
  readonly done = new Promise<number>((r) => (this.resolveDone = r));

  constructor(
    private readonly opts: ClientOptions,
    private readonly io: ClientIo,
    private readonly rl: Interface,
  ) {
    this.contiguous = opts.resume?.lastSeq ?? 0;
    this.acked = this.contiguous;
  }

  private out(line: string): void {
    this.io.stdout.write(`${line}\n`);
  }

  private err(line: string): void {
    this.io.stderr.write(`gate client: ${line}\n`);
  }

  /** Wires stdin; lines are queued until WELCOME. */
  attachInput(): void {
    this.rl.on('line', (line) => {
      if (this.finished || this.ending) return;
      this.queue.push(line);
      this.pump();
    });
    this.rl.on('close', () => {
      this.inputEnded = true;
      this.pump();
    });
  }

  async start(): Promise<number> {
    const handlers: TransportHandlers = {
      onFrame: (f) => this.onFrame(f),
      onProtocolError: (message) => {
        this.err(`protocol error from the gate: ${message}`);
        this.finish(1);
      },
      onClose: () => {
        if (this.finished || this.ending) return;
        this.err(`the gate closed the connection${this.resumeHint()}`);
        this.finish(1);
      },
    };
    const t = this.opts.target;
    try {
      this.transport =
        t.kind === 'tcp' ? await connectTcp(t, this.opts.insecure, handlers) : await connectWs(t, this.opts.insecure, handlers);
    } catch (e) {
      const reason = errorReason(e);
      const hint = TLS_CERT_CODES.test(reason) && !this.opts.insecure ? ' (use --insecure for a self-signed certificate)' : '';
      this.err(`cannot connect to ${t.label}: ${reason}${hint}`);
      this.finish(1);
      return this.done;
    }
    if (this.finished) return this.done;
    this.lastHeard = Date.now();
    const hello: Record<string, unknown> = { token: this.opts.token };
    if (this.opts.compress) hello.compress = true;
    if (this.opts.resume) hello.resume = this.opts.resume;
    this.send(frame(FrameType.HELLO, 0, Buffer.from(JSON.stringify(hello), 'utf8')));
    return this.done;
  }

  private send(f: Frame): void {
    this.transport?.send(f);
  }

  private onFrame(f: Frame): void {
    if (this.finished) return;
    this.lastHeard = Date.now();
    this.out(formatFrame(f));
    switch (f.type) {
      case FrameType.WELCOME:
        this.onWelcome(f);
        break;
      case FrameType.RESPONSE:
      case FrameType.ERROR:
        this.pending.delete(f.seq);
        this.checkDrained();
        break;
      case FrameType.PUSH:
        this.onPush(f.seq);
        break;
      case FrameType.PING:
        this.send(frame(FrameType.PONG, f.seq));
        break;
      case FrameType.BYE: {
        const code = byeCode(f.body);
        if (code !== undefined && RESUMABLE_BYES.has(code) && this.sessionId !== undefined) this.err(`session detached${this.resumeHint()}`);
        this.transport?.destroy();
        this.finish(1);
        break;
      }
      default:
        break;
    }
  }

  private onWelcome(f: Frame): void {
    if (this.welcomed) return;
    this.welcomed = true;
    const w = parseWelcome(f.body);
    this.sessionId = w.sessionId;
    this.resumeToken = w.resumeToken;
    if (this.opts.resume && w.resumed !== true) {
      // A failed resume is a fresh login: push seqs restart at 1.
      this.contiguous = 0;
      this.acked = 0;
    }
    const every = this.opts.heartbeatMs ?? w.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.heartbeatTimer = setInterval(() => this.heartbeat(every), every);
    this.pump();
  }

  private heartbeat(every: number): void {
    if (Date.now() - this.lastHeard > 3 * every) {
      this.err(`nothing heard from the gate for ${Math.round((Date.now() - this.lastHeard) / 1000)} s; closing${this.resumeHint()}`);
      this.transport?.destroy();
      this.finish(1);
      return;
    }
    this.send(frame(FrameType.PING, this.nextPingSeq));
    this.nextPingSeq = this.nextPingSeq >= U32_MAX ? 1 : this.nextPingSeq + 1;
  }

  private onPush(seq: number): void {
    if (seq <= this.contiguous) return; // a replay already seen
    if (seq !== this.contiguous + 1) this.err(`pushes ${this.contiguous + 1}..${seq - 1} are missing (gap)`);
    this.contiguous = seq;
    if (this.contiguous - this.acked >= ACK_BATCH) this.flushAck();
    else this.ackTimer ??= setTimeout(() => this.flushAck(), ACK_DELAY_MS);
  }

  private flushAck(): void {
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    if (this.contiguous > this.acked) {
      this.acked = this.contiguous;
      this.send(frame(FrameType.ACK, this.acked));
    }
  }

  /** Handles queued lines in order once logged in; then, at end of input, drains and logs out. */
  private pump(): void {
    if (this.finished || this.ending || !this.welcomed) return;
    while (this.queue.length > 0 && !this.draining) {
      const line = this.queue.shift()!;
      this.handleLine(line);
      if (this.finished || this.ending) return;
    }
    if (this.inputEnded && !this.draining) this.startDrain();
  }

  private handleLine(line: string): void {
    const cmd = parseInputLine(line);
    switch (cmd.kind) {
      case 'empty':
        return;
      case 'invalid':
        this.err(`cannot parse ${JSON.stringify(line.trim())}: ${cmd.hint}`);
        return;
      case 'ping':
        this.send(frame(FrameType.PING, this.nextPingSeq));
        this.nextPingSeq = this.nextPingSeq >= U32_MAX ? 1 : this.nextPingSeq + 1;
        return;
      case 'drop':
        this.ending = true;
        this.err(`dropped the connection without BYE${this.resumeHint()}`);
        this.transport?.destroy();
        this.finish(0);
        return;
      case 'quit':
        this.startDrain();
        return;
      case 'request': {
        let seq = 0;
        if (!cmd.notify) {
          seq = this.nextRequestSeq++;
          this.pending.add(seq);
        }
        this.send(frame(FrameType.REQUEST, seq, cmd.body, cmd.route));
        return;
      }
    }
  }

  private startDrain(): void {
    if (this.draining) return;
    this.draining = true;
    this.queue.length = 0;
    this.drainTimer = setTimeout(() => {
      if (this.pending.size > 0) this.err(`no answer within ${DRAIN_TIMEOUT_MS / 1000} s for seq ${[...this.pending].join(', ')}; logging out`);
      void this.logout();
    }, DRAIN_TIMEOUT_MS);
    this.checkDrained();
  }

  private checkDrained(): void {
    if (this.draining && this.pending.size === 0) void this.logout();
  }

  private async logout(): Promise<void> {
    if (this.finished || this.ending) return;
    this.ending = true;
    this.flushAck();
    this.send(frame(FrameType.BYE, 0, Buffer.from(JSON.stringify({ code: 'logout' }), 'utf8')));
    await this.transport?.close();
    this.finish(0);
  }

  private resumeHint(): string {
    if (this.sessionId === undefined || this.resumeToken === undefined) return '';
    return `; to resume: --resume ${this.sessionId}:${this.resumeToken}:${this.contiguous}`;
  }

  private finish(code: number): void {
    if (this.finished) return;
    this.finished = true;
    this.ending = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.ackTimer);
    clearTimeout(this.drainTimer);
    this.rl.close();
    this.resolveDone(code);
  }

  /** Ctrl-C: log out at once, without waiting for answers. */
  interrupt(): void {
    if (this.finished || this.ending) return;
    if (!this.welcomed) {
      this.transport?.destroy();
      this.finish(1);
      return;
    }
    void this.logout();
  }
}

// ---------------------------------------------------------------------------------------------
// Entry point

/** Waits (bounded) until what was written to `s` is flushed. */
function flushed(s: NodeJS.WritableStream): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, CLOSE_GRACE_MS);
    try {
      s.write('', () => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/**
 * Runs `gate client` with the arguments after `client`; resolves with the exit status.
 * Never throws and never prints a stack trace.
 */
export async function runClientCommand(
  argv: string[],
  io: ClientIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  let opts: ClientOptions;
  const cmd = buildCommand();
  cmd.configureOutput({
    writeOut: (s) => io.stdout.write(s),
    writeErr: () => undefined,
    outputError: () => undefined,
  });
  try {
    cmd.parse(argv, { from: 'user' });
    opts = toClientOptions(cmd.opts<RawClientOptions>());
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return 0; // --help
    const message = e instanceof CommanderError ? e.message.replace(/^error:\s*/, '') : e instanceof Error ? e.message : String(e);
    io.stderr.write(`gate client: ${message.split('\n')[0] ?? message}\n`);
    return 2;
  }

  const rl = createInterface({ input: io.stdin, crlfDelay: Infinity, terminal: false });
  const session = new ClientSession(opts, io, rl);
  session.attachInput();
  const onSigint = (): void => session.interrupt();
  const realTerminal = io.stdin === process.stdin;
  if (realTerminal) process.once('SIGINT', onSigint);
  let code: number;
  try {
    code = await session.start();
  } catch (e) {
    io.stderr.write(`gate client: ${e instanceof Error ? e.message : String(e)}\n`);
    code = 1;
  } finally {
    if (realTerminal) process.removeListener('SIGINT', onSigint);
    rl.close();
  }
  await Promise.all([flushed(io.stdout), flushed(io.stderr)]);
  return code;
}

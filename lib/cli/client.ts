/**
 * `gate client`: an interactive client for trying a gate by hand, built on the client SDK
 * (lib/client, docs/client-sdk.md). A lost link is resumed by the SDK, and the command shows it
 * as it happens.
 *
 * It connects over TCP (optionally TLS) or WebSocket, logs in, and turns stdin lines into calls:
 *
 *   ROUTE [json-or-text]          request() — the SDK numbers them 1, 2, 3 …
 *   !notify ROUTE [json-or-text]  notify() (REQUEST seq 0, no answer; not sent while offline)
 *   !drop                         dropLink(): drop the link without BYE; the SDK reconnects and resumes
 *   !quit  (or end of input)      wait for outstanding answers and for the link (at most 5 s), then close() (BYE logout)
 *
 * stdout, one line each: `WELCOME {…}` once, `RESPONSE route=R seq=S body`, `ERROR route=R seq=S {…}`,
 * `PUSH route=R seq=S body`, `BYE {…}`, and `* …` lines for what happens to the link and the
 * session (`* state detached (…)`, `* state reconnecting`, `* state online`,
 * `* resumed session <id> (replayed up to seq N)`, `* gap: reload state`,
 * `* session lost (…): fresh session <id>`). The SDK PINGs, answers PINGs and ACKs pushes.
 *
 * Diagnostics go to stderr, one line each, never a stack trace. Exit status: 0 after logout
 * (`!quit`, end of input, Ctrl-C); 1 when the gate ends the session (kicked, replaced,
 * auth_failed …) or the first login fails; 2 on a bad option.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { createInterface, type Interface } from 'node:readline';
import { Command, CommanderError } from 'commander';
import WebSocket from 'ws';
import {
  DEFAULT_MAX_FRAME,
  GateClient,
  GateRequestError,
  inflateRaw,
  tcpTransport,
  wsTransport,
  type ClientEvent,
  type ClientState,
  type GateClosedError,
  type Push,
  type Transport,
  type WebSocketConstructor,
  type Welcome,
} from '../client/node.js';

/** Streams the command talks through (injectable for tests). */
export interface ClientIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** After `!quit` or end of input, wait at most this long for answers and for the link, ms. */
const DRAIN_TIMEOUT_MS = 5000;
/** Bound on waiting for stdout/stderr to flush before resolving, ms. */
const FLUSH_WAIT_MS = 1000;
/** Binary bodies print as hex of at most this many bytes. */
const HEX_MAX_BYTES = 32;
/** Reconnect backoff: first wait (d/2 … d), doubling per failed attempt up to the SDK's 10 s. */
const DEFAULT_RECONNECT_MS = 250;
const MAX_RECONNECT_MS = 10_000;
const DEFAULT_TCP = '127.0.0.1:7000';
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

const USAGE_HINT = 'expected "ROUTE [body]", "!notify ROUTE [body]", "!drop" or "!quit" (ROUTE is 0-65535)';

// ---------------------------------------------------------------------------------------------
// Options

type Target =
  | { kind: 'tcp'; host: string; port: number; tls: boolean; label: string }
  | { kind: 'ws'; url: string; label: string };

interface ResumeOption {
  sessionId: string;
  resumeToken: string;
  lastSeq: number;
}

interface ClientOptions {
  target: Target;
  insecure: boolean;
  token: string;
  compress: boolean;
  resume: ResumeOption | undefined;
  heartbeatMs: number | undefined;
  reconnectMs: number;
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
  reconnectMs?: string;
}

function buildCommand(): Command {
  return new Command('client')
    .description('interactive client for trying a gate by hand (resumes lost links on its own)')
    .option('--tcp <host:port>', `gate TCP address (default ${DEFAULT_TCP})`)
    .option('--ws <url|host:port>', 'gate WebSocket address, e.g. ws://127.0.0.1:7001/ or 127.0.0.1:7001')
    .option('--tls', 'TCP over TLS (for WebSocket use a wss:// URL)')
    .option('--insecure', 'skip TLS certificate checks (self-signed test certificates)')
    .option('--token <token>', 'HELLO token (default: player-<4 random hex>)')
    .option('--compress', 'ask the gate to compress large RESPONSE and PUSH bodies')
    .option('--resume <sessionId:resumeToken:lastSeq>', 'start by resuming a session a previous client left detached')
    .option('--heartbeat-ms <n>', "PING interval, ms; 3 silent intervals drop the link (default: WELCOME's heartbeatMs)")
    .option('--reconnect-ms <n>', `first wait before reconnecting, ms, doubling up to 10 s (default ${DEFAULT_RECONNECT_MS})`)
    .addHelpText(
      'after',
      '\nInput lines:\n  ROUTE [json-or-text]          send a REQUEST (seq 1, 2, 3 …); prints RESPONSE or ERROR\n' +
        '  !notify ROUTE [json-or-text]  send a REQUEST with seq 0 (no answer)\n' +
        '  !drop                         drop the link without BYE: the client reconnects and resumes\n' +
        '  !quit or end of input         wait for answers (max 5 s), send BYE logout, exit 0\n' +
        '\nLines starting with "*" report the link and the session: state changes, resumes, gaps.\n',
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

function parseResume(value: string): ResumeOption {
  const first = value.indexOf(':');
  const last = value.lastIndexOf(':');
  const bad = (): OptionError => new OptionError(`--resume: expected sessionId:resumeToken:lastSeq, got ${JSON.stringify(value)}`);
  if (first <= 0 || last <= first + 1) throw bad();
  const lastSeqText = value.slice(last + 1);
  const lastSeq = Number(lastSeqText);
  if (!/^\d+$/.test(lastSeqText) || lastSeq > U32_MAX) throw bad();
  return { sessionId: value.slice(0, first), resumeToken: value.slice(first + 1, last), lastSeq };
}

function parseMs(option: string, text: string, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > max)
    throw new OptionError(`${option}: expected a whole number of ms from 1 to ${max}, got ${JSON.stringify(text)}`);
  return n;
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
  if (raw.token !== undefined && raw.token === '') throw new OptionError('--token: must not be empty');
  return {
    target,
    insecure: raw.insecure === true,
    token: raw.token ?? `player-${randomBytes(2).toString('hex')}`,
    compress: raw.compress === true,
    resume: raw.resume === undefined ? undefined : parseResume(raw.resume),
    heartbeatMs: raw.heartbeatMs === undefined ? undefined : parseMs('--heartbeat-ms', raw.heartbeatMs, 2 ** 31 - 1),
    reconnectMs: raw.reconnectMs === undefined ? DEFAULT_RECONNECT_MS : parseMs('--reconnect-ms', raw.reconnectMs, MAX_RECONNECT_MS),
  };
}

// ---------------------------------------------------------------------------------------------
// Input lines

export type InputCommand =
  | { kind: 'request'; route: number; body: Buffer; notify: boolean }
  /** `!ping`: gone (the SDK has no raw PING); answered with a hint. */
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
// Printing

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** The body as one line: UTF-8 text (newlines escaped) if it is text, else `<N bytes hex …>`. */
export function formatBody(body: Uint8Array): string {
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
  const shown = Buffer.from(body.buffer, body.byteOffset, Math.min(body.length, HEX_MAX_BYTES)).toString('hex');
  return `<${body.length} bytes hex ${shown}${body.length > HEX_MAX_BYTES ? '…' : ''}>`;
}

/** `KIND route=R seq=S body`, the body left out when empty. */
export function formatMessage(kind: 'RESPONSE' | 'PUSH', route: number, seq: number, body: Uint8Array): string {
  return `${kind} route=${route} seq=${seq}${body.length > 0 ? ` ${formatBody(body)}` : ''}`;
}

/** `ERROR route=R seq=S {"code","message","status"?}`, in the shape of the gate's ERROR body. */
export function formatRequestError(route: number, seq: number, e: GateRequestError): string {
  const body = e.status === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, status: e.status };
  return `ERROR route=${route} seq=${seq} ${JSON.stringify(body)}`;
}

// ---------------------------------------------------------------------------------------------
// Transports

/** `ws` with TLS checks per --insecure and a payload bound (Node 20 has no global WebSocket). */
function wsConstructor(insecure: boolean): WebSocketConstructor {
  class CliWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { maxPayload: DEFAULT_MAX_FRAME + 8, rejectUnauthorized: !insecure, perMessageDeflate: false });
    }
  }
  return CliWebSocket;
}

function makeTransport(t: Target, insecure: boolean): Transport {
  if (t.kind === 'ws') return wsTransport({ url: t.url, WebSocket: wsConstructor(insecure) });
  if (!t.tls) return tcpTransport({ host: t.host, port: t.port });
  // An IP address is no TLS server name (RFC 6066; Node warns DEP0123): send none then.
  return tcpTransport({ host: t.host, port: t.port, tls: { rejectUnauthorized: !insecure, servername: isIP(t.host) === 0 ? t.host : undefined } });
}

/** Errors of the SDK itself: their codes (DIAL_FAILED …) say less than their causes. */
const SDK_ERRORS = new Set(['GateLinkError', 'GateClosedError', 'GateProtocolError']);

/** The short reason of a failed login: the errno code (ECONNREFUSED, a TLS code …) when there is one. */
function failureReason(e: GateClosedError): string {
  const chain: Error[] = [];
  for (let c: unknown = e.cause; c instanceof Error && chain.length < 8; c = c.cause) chain.push(c);
  for (const c of chain.slice().reverse()) {
    const code = (c as { code?: unknown }).code;
    if (!SDK_ERRORS.has(c.name) && typeof code === 'string' && code !== '') return code;
  }
  // WebSocket errors carry no code, only a message such as "connect ECONNREFUSED 127.0.0.1:7001".
  // The transports prefix what they dialled ("WebSocket wss://…: ", "host:port: "); the line names it already.
  const message = (chain.at(-1)?.message ?? e.message).replace(/^(?:WebSocket \S+|\S+:\d+): /, '');
  return /\b(E[A-Z]{3,})\b/.exec(message)?.[1] ?? message.split('\n')[0] ?? 'error';
}

const TLS_CERT_TROUBLE = /CERT|SELF_SIGNED|certificate/i;

// ---------------------------------------------------------------------------------------------
// The session

class ClientSession {
  private readonly client: GateClient;
  /** The first WELCOME has come. */
  private welcomed = false;
  private finished = false;
  /** Logging out (or closed): input is ignored. */
  private ending = false;
  private draining = false;
  /** Lines read before the first WELCOME, in order. */
  private readonly queue: string[] = [];
  /** The seq the SDK gave the last request (it numbers them 1, 2, 3 … for the client's life). */
  private lastRequestSeq = 0;
  /** Requests without an answer: seq → route. */
  private readonly outstanding = new Map<number, number>();
  /** Highest push seq printed (the SDK's lastSeq for a resume). */
  private lastPushSeq = 0;
  /** Why the last link was lost, for the `* state detached` line. */
  private lostBecause: string | undefined;
  /** The SDK said the old session is gone; the next WELCOME is a fresh session. */
  private sessionLost: 'refused' | 'idle' | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private resolveDone!: (code: number) => void;
  readonly done = new Promise<number>((r) => (this.resolveDone = r));

  constructor(
    private readonly opts: ClientOptions,
    private readonly io: ClientIo,
    private readonly rl: Interface,
  ) {
    this.client = new GateClient({
      transport: makeTransport(opts.target, opts.insecure),
      token: opts.token,
      ...(opts.compress ? { inflate: (b: Uint8Array) => inflateRaw(b) } : {}),
      ...(opts.heartbeatMs === undefined ? {} : { heartbeatMs: opts.heartbeatMs }),
      reconnect: { baseMs: opts.reconnectMs, maxMs: MAX_RECONNECT_MS },
      ...(opts.resume ? { resume: opts.resume } : {}),
    });
    if (opts.resume) this.lastPushSeq = opts.resume.lastSeq;
  }

  private out(line: string): void {
    this.io.stdout.write(`${line}\n`);
  }

  private err(line: string): void {
    this.io.stderr.write(`gate client: ${line}\n`);
  }

  /** Wires stdin; lines are queued until the first WELCOME. */
  attachInput(): void {
    this.rl.on('line', (line) => {
      if (this.ending) return;
      if (!this.welcomed) this.queue.push(line);
      else if (!this.draining) this.handleLine(line);
    });
    this.rl.on('close', () => {
      if (this.welcomed) this.startDrain();
      else this.queue.push('!quit');
    });
  }

  start(): Promise<number> {
    // Hot streams: subscribe before connect(). Each completes when the client closes.
    this.client.pushes$.subscribe((p) => this.onPush(p));
    this.client.gap$.subscribe(() => this.out('* gap: reload state (pushes after lastSeq were dropped or already acknowledged)'));
    this.client.events$.subscribe((e) => this.onEvent(e));
    this.client.state$.subscribe((s) => this.onState(s));
    // The outcome of a failed first login arrives as the `closed` event too.
    this.client.connect().catch(() => undefined);
    return this.done;
  }

  private onPush(p: Push): void {
    this.lastPushSeq = p.seq;
    this.out(formatMessage('PUSH', p.route, p.seq, p.body));
  }

  private onState(s: ClientState): void {
    if (s === 'detached') {
      this.out(`* state detached${this.lostBecause === undefined ? '' : ` (${this.lostBecause})`}`);
      this.lostBecause = undefined;
    } else if (this.welcomed && s !== 'closed' && s !== 'idle') {
      this.out(`* state ${s}`);
    }
    this.checkDrained();
  }

  private onEvent(e: ClientEvent): void {
    switch (e.type) {
      case 'welcome':
        this.onWelcome(e.welcome);
        return;
      case 'session_lost':
        this.sessionLost = e.reason; // said with the next WELCOME
        this.lastPushSeq = 0;
        return;
      case 'link_lost':
        this.lostBecause = e.error.message;
        return;
      case 'bye':
        this.out(`BYE ${JSON.stringify(e.reason === undefined ? { code: e.code } : { code: e.code, reason: e.reason })}`);
        return;
      case 'error':
        this.out(`ERROR seq=${e.seq} ${JSON.stringify({ code: e.code, message: e.message })}`);
        return;
      case 'closed':
        this.onClosed(e.error);
        return;
    }
  }

  private onWelcome(w: Welcome): void {
    if (!this.welcomed) {
      this.welcomed = true;
      this.out(`WELCOME ${JSON.stringify(w)}`);
      if (w.resumed) this.out(`* resumed session ${w.sessionId} (replayed up to seq ${w.lastSeq})`);
      else if (this.opts.resume) this.out(`* session lost (resume refused): fresh session ${w.sessionId}`);
      this.sessionLost = undefined;
      this.pumpQueue();
      return;
    }
    if (w.resumed) this.out(`* resumed session ${w.sessionId} (replayed up to seq ${w.lastSeq})`);
    else this.out(`* session lost (${this.sessionLost ?? 'refused'}): fresh session ${w.sessionId}`);
    this.sessionLost = undefined;
    this.checkDrained();
  }

  private onClosed(e: GateClosedError): void {
    if (e.code === 'closed') return this.finish(this.welcomed ? 0 : 1); // our close(): logout, or Ctrl-C before login
    if (e.code === 'connect_failed') {
      const reason = failureReason(e);
      const hint = TLS_CERT_TROUBLE.test(reason) && !this.opts.insecure ? ' (use --insecure for a self-signed certificate)' : '';
      this.err(`cannot connect to ${this.opts.target.label}: ${reason}${hint}`);
    } else if (e.code === 'reconnect_failed') {
      this.err(e.message);
    } else {
      const why = `${e.code}${e.reason ? ` (${e.reason})` : ''}`;
      this.err(this.welcomed ? `the gate ended the session: ${why}` : `login refused: ${why}`);
    }
    this.finish(1);
  }

  private pumpQueue(): void {
    while (this.queue.length > 0 && !this.ending && !this.draining) this.handleLine(this.queue.shift()!);
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
        this.err('!ping is gone: the client PINGs every heartbeat by itself (--heartbeat-ms)');
        return;
      case 'drop':
        if (this.client.currentState !== 'online') {
          this.err(`!drop: no link to drop (state ${this.client.currentState})`);
          return;
        }
        this.out('* dropping the link without BYE');
        this.client.dropLink();
        return;
      case 'quit':
        this.startDrain();
        return;
      case 'request':
        if (cmd.notify) {
          if (!this.client.notify(cmd.route, cmd.body)) this.err(`!notify ${cmd.route}: not sent, the client is ${this.client.currentState}`);
        } else this.request(cmd.route, cmd.body);
        return;
    }
  }

  private request(route: number, body: Buffer): void {
    const before = this.client.pendingCount;
    const answer = this.client.request(route, body);
    if (this.client.pendingCount === before) {
      // Refused before it got a seq (TOO_MANY_PENDING, CLOSED): nothing was sent.
      answer.catch((e: unknown) => this.err(`request on route ${route} not sent: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    const seq = ++this.lastRequestSeq;
    this.outstanding.set(seq, route);
    answer.then(
      (b) => this.settled(seq, formatMessage('RESPONSE', route, seq, b)),
      (e: unknown) => {
        // CLOSED: the client closed first; the reason was printed already (BYE, drain timeout).
        const closed = e instanceof GateRequestError && e.code === 'CLOSED';
        this.settled(seq, closed ? undefined : e instanceof GateRequestError ? formatRequestError(route, seq, e) : `ERROR route=${route} seq=${seq} ${JSON.stringify({ code: 'UNKNOWN', message: String(e) })}`);
      },
    );
  }

  private settled(seq: number, line: string | undefined): void {
    this.outstanding.delete(seq);
    if (line !== undefined && !this.finished) this.out(line);
    this.checkDrained();
  }

  /** `!quit` or end of input: log out once every request is answered and the link is up, or after 5 s. */
  private startDrain(): void {
    if (this.draining || this.ending) return;
    this.draining = true;
    this.queue.length = 0;
    this.drainTimer = setTimeout(() => {
      if (this.outstanding.size > 0)
        this.err(`no answer within ${DRAIN_TIMEOUT_MS / 1000} s for seq ${[...this.outstanding.keys()].join(', ')}; logging out`);
      const state = this.client.currentState;
      if (state !== 'online') this.err(`still ${state} after ${DRAIN_TIMEOUT_MS / 1000} s; closing without logout${this.resumeHint()}`);
      this.logout();
    }, DRAIN_TIMEOUT_MS);
    this.checkDrained();
  }

  private checkDrained(): void {
    if (this.draining && this.outstanding.size === 0 && this.client.currentState === 'online') this.logout();
  }

  private logout(): void {
    if (this.ending) return;
    this.ending = true;
    clearTimeout(this.drainTimer);
    void this.client.close(); // BYE logout; the `closed` event finishes with 0
  }

  private resumeHint(): string {
    const w = this.client.welcome;
    return w ? `; to resume: --resume ${w.sessionId}:${w.resumeToken}:${this.lastPushSeq}` : '';
  }

  private finish(code: number): void {
    if (this.finished) return;
    this.finished = true;
    this.ending = true;
    clearTimeout(this.drainTimer);
    this.rl.close();
    this.resolveDone(code);
  }

  /** Ctrl-C: log out at once, without waiting for answers. */
  interrupt(): void {
    if (this.ending) return;
    this.logout();
  }
}

// ---------------------------------------------------------------------------------------------
// Entry point

/** Waits (bounded) until what was written to `s` is flushed. */
function flushed(s: NodeJS.WritableStream): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, FLUSH_WAIT_MS);
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
  const realTerminal = io.stdin === process.stdin;
  let session: ClientSession | undefined;
  const onSigint = (): void => session?.interrupt();
  if (realTerminal) process.once('SIGINT', onSigint);
  let code: number;
  try {
    session = new ClientSession(opts, io, rl);
    session.attachInput();
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

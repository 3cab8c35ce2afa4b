/**
 * A raw protocol client for integration tests (CONTRACT §2): it speaks frames over TCP (u32 length
 * prefix) or WebSocket (one binary message per frame) and records everything it receives, so a test
 * can assert on exact frames, malformed input and connection closes.
 */
import { connect as netConnect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { FRAME_TYPE_NAMES, FrameType, encodeFrame, parseFrame, type Frame } from '../../lib/frame.js';
import { FrameDecoder } from '../../lib/frameDecoder.js';

/** Big enough for anything a test sends on purpose; the gate's own --max-frame is what is under test. */
const CLIENT_MAX_FRAME = 64 * 1024 * 1024;
/** How long `close()` waits for a graceful close before destroying the socket, ms. */
const CLOSE_GRACE_MS = 1000;
/** Most frames listed in a failure message. */
const LIST_MAX = 20;

/** WELCOME body (§2.1). */
export interface WelcomeBody {
  playerId: string;
  sessionId: string;
  resumeToken: string;
  gateId: string;
  heartbeatMs: number;
  resumed: boolean;
  gap: boolean;
  lastSeq: number;
}

/** BYE body (§2.1). */
export interface ByeBody {
  code: string;
  reason?: string;
}

/** `hello()` rejects with this when the gate answers BYE: `code` and `reason` are the BYE body's. */
export class ByeError extends Error {
  override readonly name = 'ByeError';
  readonly code: string;
  readonly reason: string | undefined;
  constructor(readonly body: ByeBody) {
    super(`gate said BYE ${JSON.stringify(body)}`);
    this.code = body.code;
    this.reason = body.reason;
  }
}

export interface TestClientOptions {
  /** Answer every PING from the gate with a PONG of the same seq (the PING is still recorded). Default false. */
  autoPong?: boolean;
}

export interface CloseInfo {
  /** WebSocket close code; undefined on TCP. */
  code?: number;
}

export interface TestClient {
  readonly transport: 'tcp' | 'ws';
  /** Every frame received, in order, copied out of the receive buffers. */
  readonly frames: Frame[];
  /** Text messages received (WS only; the gate should never send one). */
  readonly texts: string[];
  /** Resolves when the socket has closed. */
  readonly closed: Promise<CloseInfo>;
  readonly isClosed: boolean;
  send(f: Frame): void;
  /** TCP: the bytes as they are (no prefix added). WS: one binary message. */
  sendRaw(bytes: Buffer): void;
  /** WS only: one text message. */
  sendText(s: string): void;
  /**
   * The oldest received frame not yet returned by `next` that matches `pred` (any frame when omitted).
   * Frames that do not match stay queued for later calls. Rejects after `timeoutMs`, or as soon as the
   * connection closes or receives malformed bytes, with a message listing the frames it did get.
   */
  next(pred?: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Sends HELLO with a JSON body and resolves with the WELCOME body; rejects with ByeError on BYE. */
  hello(body: object, timeoutMs?: number): Promise<WelcomeBody>;
  /** Sends a REQUEST; an object body is sent as JSON. */
  request(route: number, seq: number, body?: Buffer | object): void;
  json(f: Frame): unknown;
  /** Graceful close (TCP end / WS close 1000), destroying the socket if it lingers; resolves once closed. */
  close(): Promise<CloseInfo>;
  /** Abrupt close (TCP destroy / WS terminate), as a client whose network vanished. */
  destroy(): Promise<CloseInfo>;
}

/** Parses a frame's body as UTF-8 JSON. */
export const json = (f: Frame): unknown => JSON.parse(f.body.toString('utf8'));

/** `REQUEST r3 #7 (12B)`: a frame in one short line, for failure messages. */
export function describeFrame(f: Frame): string {
  const name = FRAME_TYPE_NAMES[f.type] ?? `type${f.type}`;
  const flags = f.flags ? ` flags=0x${f.flags.toString(16)}` : '';
  const text = f.body.length <= 120 && /^[\x20-\x7e]*$/.test(f.body.toString('latin1')) ? ` ${f.body.toString('latin1')}` : '';
  return `${name} r${f.route} #${f.seq}${flags} (${f.body.length}B)${text}`;
}

const copyFrame = (f: Frame): Frame => ({ type: f.type, flags: f.flags, route: f.route, seq: f.seq, body: Buffer.from(f.body) });

const toBody = (body: Buffer | object | undefined): Buffer =>
  body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body), 'utf8');

interface Waiter {
  pred: (f: Frame) => boolean;
  resolve: (f: Frame) => void;
  fail: (why: string) => void;
}

/** The transport-independent part: the receive queue, waiters and protocol helpers. */
abstract class BaseClient implements TestClient {
  abstract readonly transport: 'tcp' | 'ws';
  readonly frames: Frame[] = [];
  readonly texts: string[] = [];
  readonly closed: Promise<CloseInfo>;
  /** Received frames not yet returned by `next`, oldest first. */
  private readonly queue: Frame[] = [];
  /** Pending `next` calls, in call order. */
  private readonly waiters: Waiter[] = [];
  /** Why no more frames can arrive (closed, or malformed input); null while open. */
  private ended: string | null = null;
  private closeInfo: CloseInfo | null = null;
  private resolveClosed!: (c: CloseInfo) => void;

  protected constructor(private readonly opts: TestClientOptions) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  get isClosed(): boolean {
    return this.closeInfo !== null;
  }

  abstract sendRaw(bytes: Buffer): void;
  abstract sendText(s: string): void;
  protected abstract endGracefully(): void;
  protected abstract endAbruptly(): void;

  send(f: Frame): void {
    this.sendRaw(encodeFrame(f, this.transport === 'tcp'));
  }

  request(route: number, seq: number, body?: Buffer | object): void {
    this.send({ type: FrameType.REQUEST, flags: 0, route, seq, body: toBody(body) });
  }

  json(f: Frame): unknown {
    return json(f);
  }

  next(pred: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    if (this.ended !== null) return Promise.reject(new Error(this.failure(this.ended)));
    return new Promise<Frame>((resolve, reject) => {
      const w: Waiter = {
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        fail: (why) => {
          clearTimeout(timer);
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error(this.failure(why)));
        },
      };
      const timer = setTimeout(() => w.fail(`timed out after ${timeoutMs}ms waiting for a matching frame`), timeoutMs);
      this.waiters.push(w);
    });
  }

  async hello(body: object, timeoutMs = 5000): Promise<WelcomeBody> {
    this.send({ type: FrameType.HELLO, flags: 0, route: 0, seq: 0, body: toBody(body) });
    const f = await this.next((x) => x.type === FrameType.WELCOME || x.type === FrameType.BYE, timeoutMs);
    if (f.type === FrameType.BYE) throw new ByeError(json(f) as ByeBody);
    return json(f) as WelcomeBody;
  }

  close(): Promise<CloseInfo> {
    if (!this.closeInfo) {
      this.endGracefully();
      const t = setTimeout(() => this.endAbruptly(), CLOSE_GRACE_MS);
      void this.closed.then(() => clearTimeout(t));
    }
    return this.closed;
  }

  destroy(): Promise<CloseInfo> {
    if (!this.closeInfo) this.endAbruptly();
    return this.closed;
  }

  /** Called by the transport with each received frame (which may be a view: it is copied here). */
  protected received(view: Frame): void {
    const f = copyFrame(view);
    this.frames.push(f);
    if (this.opts.autoPong && f.type === FrameType.PING && !this.closeInfo)
      this.send({ type: FrameType.PONG, flags: 0, route: 0, seq: f.seq, body: Buffer.alloc(0) });
    const w = this.waiters.find((x) => x.pred(f));
    if (w) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(f);
    } else {
      this.queue.push(f);
    }
  }

  /** No more frames will arrive: fail every pending `next` at once rather than at its timeout. */
  protected stop(why: string): void {
    if (this.ended === null) this.ended = why;
    for (const w of [...this.waiters]) w.fail(why);
  }

  protected closedWith(info: CloseInfo): void {
    if (this.closeInfo) return;
    this.closeInfo = info;
    this.stop(`connection closed${info.code === undefined ? '' : ` (code ${info.code})`}`);
    this.resolveClosed(info);
  }

  private failure(why: string): string {
    const list = (fs: Frame[]): string =>
      fs.length === 0
        ? 'none'
        : fs
            .slice(-LIST_MAX)
            .map(describeFrame)
            .join('; ') + (fs.length > LIST_MAX ? ` (last ${LIST_MAX} of ${fs.length})` : '');
    return `${this.transport} client: ${why}; unconsumed frames: ${list(this.queue)}; all received: ${list(this.frames)}`;
  }
}

class TcpClient extends BaseClient {
  readonly transport = 'tcp' as const;
  private readonly decoder = new FrameDecoder(CLIENT_MAX_FRAME);

  constructor(
    private readonly socket: Socket,
    opts: TestClientOptions,
  ) {
    super(opts);
    socket.on('data', (chunk: Buffer) => {
      const err = this.decoder.push(chunk, (f) => this.received(f));
      if (err) {
        this.stop(`malformed bytes from the gate: ${err.code} ${err.message}`);
        socket.destroy();
      }
    });
    socket.on('error', () => {}); // the close that follows is what tests observe
    socket.on('close', () => this.closedWith({}));
  }

  sendRaw(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  sendText(): void {
    throw new Error('sendText: TCP has no text messages');
  }

  protected endGracefully(): void {
    this.socket.end();
  }

  protected endAbruptly(): void {
    this.socket.destroy();
  }
}

class WsClient extends BaseClient {
  readonly transport = 'ws' as const;

  constructor(
    private readonly ws: WebSocket,
    opts: TestClientOptions,
  ) {
    super(opts);
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!isBinary) {
        this.texts.push(buf.toString('utf8'));
        return;
      }
      let f: Frame;
      try {
        f = parseFrame(buf, CLIENT_MAX_FRAME);
      } catch (e) {
        this.stop(`malformed message from the gate: ${(e as Error).message}`);
        ws.terminate();
        return;
      }
      this.received(f);
    });
    ws.on('error', () => {}); // the close that follows is what tests observe
    ws.on('close', (code: number) => this.closedWith({ code }));
  }

  sendRaw(bytes: Buffer): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes, { binary: true });
  }

  sendText(s: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(s, { binary: false });
  }

  protected endGracefully(): void {
    this.ws.close(1000);
  }

  protected endAbruptly(): void {
    this.ws.terminate();
  }
}

/** Connects over raw TCP; rejects if the connection is refused. */
export function connectTcp(port: number, host = '127.0.0.1', opts: TestClientOptions = {}): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host });
    socket.setNoDelay(true);
    const onError = (e: Error): void => reject(e);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(new TcpClient(socket, opts));
    });
  });
}

/** Connects over WebSocket to `ws://host:port/`; rejects if the connection or upgrade fails. */
export function connectWs(port: number, host = '127.0.0.1', opts: TestClientOptions = {}): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${host.includes(':') ? `[${host}]` : host}:${port}/`, { maxPayload: CLIENT_MAX_FRAME });
    const onError = (e: Error): void => reject(e);
    ws.once('error', onError);
    ws.once('open', () => {
      ws.off('error', onError);
      resolve(new WsClient(ws, opts));
    });
  });
}

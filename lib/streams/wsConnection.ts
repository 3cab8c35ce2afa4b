import type { Subscriber } from 'rxjs';
import type { RawData, WebSocket } from 'ws';
import type { Connection, ConnectionLimits } from '../connection.js';
import { GatewayError } from '../errors.js';
import { encodeFrame, parseFrame, type Frame } from '../frame.js';
import { BaseLink } from './baseLink.js';

const ignore = (): void => undefined;

const asBuffer = (data: RawData): Buffer =>
  Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);

/** A WebSocket client link: one binary message is exactly one frame, no length prefix (§2.1). */
export class WsConnection extends BaseLink implements Connection {
  readonly transport = 'ws' as const;

  constructor(
    id: number,
    private readonly ws: WebSocket,
    /** The upgraded socket (ws holds it too): its address is read when asked, not kept as a string. */
    private readonly socket: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined },
    limits: ConnectionLimits,
    /** Decremented when the link closes (the --max-connections count). */
    private readonly counted: { open: number } | null = null,
  ) {
    super(id, limits);
    ws.on('close', this.onClose); // 'close' comes once: `on` spares the wrapper `once` makes
    ws.on('error', ignore); // 'close' follows every error
  }

  protected read(subscriber: Subscriber<Frame>): () => void {
    if (!this.open) {
      subscriber.complete();
      return () => undefined;
    }
    this.reader = subscriber;
    this.ws.on('message', this.onMessage);
    return this.stopReading;
  }

  // Made with the link (sharing its context) rather than per subscription: every idle link pays
  // for what it holds.
  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    const subscriber = this.reader;
    if (!subscriber) return;
    if (!isBinary) {
      subscriber.error(new GatewayError('GW_ERR_FRAME_TEXT', 'text WebSocket messages are not frames; send binary'));
      return;
    }
    let f: Frame;
    try {
      f = parseFrame(asBuffer(data), this.limits.maxFrame);
    } catch (e) {
      subscriber.error(e);
      return;
    }
    subscriber.next(f);
  };

  private readonly onClose = (): void => {
    if (this.counted) this.counted.open--;
    this.finished();
  };

  private readonly stopReading = (): void => {
    this.reader = null;
    this.ws.off('message', this.onMessage);
  };

  get remoteAddress(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? 0}`;
  }

  get outboundBytes(): number {
    return this.ws.bufferedAmount;
  }

  protected write(bytes: Buffer, onFlushed?: () => void): void {
    this.ws.send(bytes, { binary: true }, onFlushed);
  }

  protected encode(f: Frame): Buffer {
    return encodeFrame(f, false);
  }

  protected shut(reason: GatewayError | null): boolean {
    this.ws.close(reason ? Math.max(1000, reason.closeCode === 1005 ? 1000 : reason.closeCode) : 1000);
    return this.ws.readyState !== this.ws.CLOSED;
  }

  protected kill(): void {
    this.ws.terminate();
  }

  protected onClosed(fn: () => void): void {
    this.ws.once('close', fn);
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }
}

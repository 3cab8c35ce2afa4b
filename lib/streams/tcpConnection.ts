import type { Socket } from 'node:net';
import type { Subscriber } from 'rxjs';
import type { Connection, ConnectionLimits } from '../connection.js';
import { encodeFrame, type Frame } from '../frame.js';
import { FrameDecoder } from '../frameDecoder.js';
import { BaseLink } from './baseLink.js';

const ignore = (): void => undefined;

/** A raw TCP (or TLS) client link: u32 length-prefixed frames (§2.1). */
export class TcpConnection extends BaseLink implements Connection {
  readonly transport = 'tcp' as const;

  constructor(
    id: number,
    private readonly socket: Socket,
    limits: ConnectionLimits,
    /** Decremented when the socket closes (the --max-connections count). */
    private readonly counted: { open: number } | null = null,
  ) {
    super(id, limits);
    socket.setNoDelay(true);
    // One 'close' listener does both: the link is finished, and it no longer counts against
    // --max-connections. (Listeners and strings are kept few: every idle link pays for them.)
    socket.on('close', this.onClose);
    // Errors (ECONNRESET, EPIPE…) end the link; 'close' follows and is what we act on.
    socket.on('error', ignore);
  }

  protected read(subscriber: Subscriber<Frame>): () => void {
    if (!this.open) {
      subscriber.complete();
      return () => undefined;
    }
    this.reader = subscriber;
    this.decoder = new FrameDecoder(this.limits.maxFrame);
    this.socket.on('data', this.onData);
    this.socket.on('end', this.onEnd); // 'end' comes once: `on` spares the wrapper `once` makes
    return this.stopReading;
  }

  // Listeners and teardown made with the link (sharing its context) rather than closures (and a
  // context) per subscription: every idle connection pays for what it holds.
  private decoder: FrameDecoder | null = null;
  private readonly onData = (chunk: Buffer): void => {
    const r = this.reader;
    const err = r && this.decoder ? this.decoder.push(chunk, r) : null;
    if (err) r?.error(err);
  };
  private readonly onEnd = (): void => this.reader?.complete();
  private readonly onClose = (): void => {
    if (this.counted) this.counted.open--;
    this.finished();
  };
  private readonly stopReading = (): void => {
    this.reader = null;
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
  };

  /** Computed when asked (logs): not kept as a string on every link. */
  get remoteAddress(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? 0}`;
  }

  get outboundBytes(): number {
    return this.socket.writableLength;
  }

  // No cork: an idle socket sends at once (one write syscall, the common case of one answer
  // per tick), and while a write is in flight Node queues the rest and flushes them with one
  // writev, which is the batching a burst (a push batch) needs.
  protected write(bytes: Buffer, onFlushed?: () => void): void {
    if (!this.socket.destroyed) this.socket.write(bytes, onFlushed);
  }

  protected encode(f: Frame): Buffer {
    return encodeFrame(f, true);
  }

  protected shut(): boolean {
    this.socket.end();
    return !this.socket.destroyed;
  }

  protected kill(): void {
    this.socket.destroy();
  }

  protected onClosed(fn: () => void): void {
    this.socket.once('close', fn);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

import type { Socket } from 'node:net';
import { Observable, type Subscriber } from 'rxjs';
import { byeFrame } from '../bye.js';
import type { Connection, ConnectionLimits } from '../connection.js';
import { GatewayError } from '../errors.js';
import { encodeFrame, type Frame } from '../frame.js';
import { FrameDecoder } from '../frameDecoder.js';

const ignore = (): void => undefined;

/** How long a closing link may take to flush its BYE before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

/** A raw TCP (or TLS) client link: u32 length-prefixed frames (§2.1). */
export class TcpConnection implements Connection {
  readonly transport = 'tcp' as const;

  readonly frames$: Observable<Frame>;
  private open = true;
  /** The frames$ subscriber, completed when the link finishes (whichever side ends it). */
  private reader: Subscriber<Frame> | null = null;
  closedWith: GatewayError | null = null;

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    private readonly limits: ConnectionLimits,
    /** Decremented when the socket closes (the --max-connections count). */
    counted: { open: number } | null = null,
  ) {
    socket.setNoDelay(true);
    // One 'close' listener does both: the link is finished, and it no longer counts against
    // --max-connections. (Listeners and strings are kept few: every idle link pays for them.)
    socket.on('close', () => {
      if (counted) counted.open--;
      this.finished();
    });
    // Errors (ECONNRESET, EPIPE…) end the link; 'close' follows and is what we act on.
    socket.on('error', ignore);
    this.frames$ = new Observable<Frame>((subscriber) => this.read(subscriber));
  }

  private read(subscriber: Subscriber<Frame>): () => void {
    if (!this.open) {
      subscriber.complete();
      return () => undefined;
    }
    this.reader = subscriber;
    const decoder = new FrameDecoder(this.limits.maxFrame);
    const emit = (f: Frame): void => subscriber.next(f);
    const onData = (chunk: Buffer): void => {
      const err = decoder.push(chunk, emit);
      if (err) subscriber.error(err);
    };
    const onEnd = (): void => subscriber.complete();
    this.socket.on('data', onData);
    this.socket.once('end', onEnd);
    return () => {
      this.reader = null;
      this.socket.off('data', onData);
      this.socket.off('end', onEnd);
    };
  }

  /**
   * The link is over for the gate: when the socket closes, or as soon as the gate closes it
   * (a slow consumer that never reads would otherwise hold its session "online" until the
   * socket is finally destroyed).
   */
  private finished(): void {
    this.open = false;
    this.reader?.complete();
  }

  /** Computed when asked (logs): not kept as a string on every link. */
  get remoteAddress(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? 0}`;
  }

  get isOpen(): boolean {
    return this.open;
  }

  get outboundBytes(): number {
    return this.socket.writableLength;
  }

  send(f: Frame, onFlushed?: () => void): boolean {
    if (!this.open) return false;
    if (this.socket.writableLength + f.body.length > this.limits.outboundMax) {
      this.close(new GatewayError('GW_ERR_SLOW_CONSUMER', `over --outbound-max (${this.limits.outboundMax} bytes queued)`));
      return false;
    }
    // No cork: an idle socket sends at once (one write syscall, the common case of one answer
    // per tick), and while a write is in flight Node queues the rest and flushes them with one
    // writev, which is the batching a burst (a push batch) needs.
    this.socket.write(encodeFrame(f, true), onFlushed);
    return true;
  }

  close(reason: GatewayError | null): void {
    if (!this.open) return;
    this.open = false;
    this.closedWith = reason;
    const bye = reason ? byeFrame(reason) : null;
    if (bye && !this.socket.destroyed) this.socket.write(encodeFrame(bye, true));
    this.socket.end();
    if (this.socket.destroyed) return;
    // A peer that never reads would keep the socket half-open: destroy after a grace period.
    // Cleared on close: a pending timer would pin this link and its socket for the whole grace
    // period (2 s of every closed connection's memory under churn).
    const grace = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    this.socket.once('close', () => clearTimeout(grace));
    this.finished();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

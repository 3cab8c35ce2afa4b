import type { Socket } from 'node:net';
import { Observable, ReplaySubject, type Subscriber } from 'rxjs';
import { byeFrame } from '../bye.js';
import type { Connection, ConnectionLimits } from '../connection.js';
import { GatewayError } from '../errors.js';
import { encodeFrame, type Frame } from '../frame.js';
import { FrameDecoder } from '../frameDecoder.js';

/** How long a closing link may take to flush its BYE before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

/** A raw TCP (or TLS) client link: u32 length-prefixed frames (§2.1). */
export class TcpConnection implements Connection {
  readonly transport = 'tcp' as const;
  readonly remoteAddress: string;
  readonly frames$: Observable<Frame>;
  readonly closed$: Observable<void>;
  /** Bounded (1): only the close event is replayed, so late subscribers still see it. */
  private readonly closedSubject = new ReplaySubject<void>(1);
  private open = true;
  closedWith: GatewayError | null = null;
  /** True while writes of this tick are corked, to leave in one writev. */
  private corked = false;

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    private readonly limits: ConnectionLimits,
  ) {
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    socket.setNoDelay(true);
    this.closed$ = this.closedSubject.asObservable();
    socket.once('close', () => this.finished());
    // Errors (ECONNRESET, EPIPE…) end the link; 'close' follows and is what we act on.
    socket.on('error', () => undefined);
    this.frames$ = new Observable<Frame>((subscriber) => this.read(subscriber));
  }

  private read(subscriber: Subscriber<Frame>): () => void {
    const decoder = new FrameDecoder(this.limits.maxFrame);
    const emit = (f: Frame): void => subscriber.next(f);
    const onData = (chunk: Buffer): void => {
      const err = decoder.push(chunk, emit);
      if (err) subscriber.error(err);
    };
    const onEnd = (): void => subscriber.complete();
    this.socket.on('data', onData);
    this.socket.once('close', onEnd);
    this.socket.once('end', onEnd);
    return () => {
      this.socket.off('data', onData);
      this.socket.off('close', onEnd);
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
    if (this.closedSubject.closed) return;
    this.closedSubject.next();
    this.closedSubject.complete();
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
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(encodeFrame(f, true), onFlushed);
    return true;
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  close(reason: GatewayError | null): void {
    if (!this.open) return;
    this.open = false;
    this.closedWith = reason;
    const bye = reason ? byeFrame(reason) : null;
    if (bye && !this.socket.destroyed) this.socket.write(encodeFrame(bye, true));
    if (this.corked) this.uncork();
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

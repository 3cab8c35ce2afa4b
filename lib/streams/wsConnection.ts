import { Observable, type Subscriber } from 'rxjs';
import type { RawData, WebSocket } from 'ws';
import { byeFrame } from '../bye.js';
import type { Connection, ConnectionLimits } from '../connection.js';
import { GatewayError } from '../errors.js';
import { encodeFrame, parseFrame, type Frame } from '../frame.js';

/** How long a closing link may take over the close handshake before it is terminated. */
const CLOSE_GRACE_MS = 2_000;

const asBuffer = (data: RawData): Buffer =>
  Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);

/** A WebSocket client link: one binary message is exactly one frame, no length prefix (§2.1). */
export class WsConnection implements Connection {
  readonly transport = 'ws' as const;
  readonly frames$: Observable<Frame>;
  private open = true;
  /** The frames$ subscriber, completed when the link finishes (whichever side ends it). */
  private reader: Subscriber<Frame> | null = null;
  closedWith: GatewayError | null = null;

  constructor(
    readonly id: number,
    private readonly ws: WebSocket,
    readonly remoteAddress: string,
    private readonly limits: ConnectionLimits,
  ) {
    ws.once('close', () => this.finished());
    ws.on('error', () => undefined); // 'close' follows every error
    this.frames$ = new Observable<Frame>((subscriber) => this.read(subscriber));
  }

  private read(subscriber: Subscriber<Frame>): () => void {
    if (!this.open) {
      subscriber.complete();
      return () => undefined;
    }
    this.reader = subscriber;
    const onMessage = (data: RawData, isBinary: boolean): void => {
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
    this.ws.on('message', onMessage);
    return () => {
      this.reader = null;
      this.ws.off('message', onMessage);
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

  get isOpen(): boolean {
    return this.open;
  }

  get outboundBytes(): number {
    return this.ws.bufferedAmount;
  }

  send(f: Frame, onFlushed?: () => void): boolean {
    if (!this.open) return false;
    if (this.ws.bufferedAmount + f.body.length > this.limits.outboundMax) {
      this.close(new GatewayError('GW_ERR_SLOW_CONSUMER', `over --outbound-max (${this.limits.outboundMax} bytes queued)`));
      return false;
    }
    this.ws.send(encodeFrame(f, false), { binary: true }, onFlushed);
    return true;
  }

  close(reason: GatewayError | null): void {
    if (!this.open) return;
    this.open = false;
    this.closedWith = reason;
    const bye = reason ? byeFrame(reason) : null;
    if (bye) this.ws.send(encodeFrame(bye, false), { binary: true });
    this.ws.close(reason ? Math.max(1000, reason.closeCode === 1005 ? 1000 : reason.closeCode) : 1000);
    if (this.ws.readyState === this.ws.CLOSED) return;
    // A peer that never answers the close handshake is cut off after a grace period. Cleared on
    // close: a pending timer would pin this link and its socket for the whole grace period.
    const grace = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
    this.ws.once('close', () => clearTimeout(grace));
    this.finished();
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }
}

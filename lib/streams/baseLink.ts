import { Observable, type Subscriber } from 'rxjs';
import { byeFrame } from '../bye.js';
import type { ConnectionLimits } from '../connection.js';
import { GatewayError } from '../errors.js';
import type { Frame } from '../frame.js';

/** How long a closing link may take to flush its BYE (or finish the close handshake) before it is cut. */
const CLOSE_GRACE_MS = 2_000;

/**
 * What TCP and WebSocket links share: the bounded send path (--outbound-max, then BYE
 * slow_consumer), closing with a BYE and a grace period, and ending `frames$` when the link
 * finishes. Subclasses say how bytes are framed, written and cut.
 */
export abstract class BaseLink {
  protected open = true;
  /** Why the gate closed the link (set by `close`, including a slow-consumer close inside `send`); null otherwise. */
  closedWith: GatewayError | null = null;
  /** The frames$ subscriber, completed when the link finishes (whichever side ends it). */
  protected reader: Subscriber<Frame> | null = null;

  constructor(
    readonly id: number,
    protected readonly limits: ConnectionLimits,
  ) {}

  /**
   * The client's frames, read from subscription until unsubscribed or the link ends. Made when
   * asked (the gate subscribes once): an Observable kept on the link would cost every idle link
   * the object and its closure.
   */
  get frames$(): Observable<Frame> {
    return new Observable<Frame>((subscriber) => this.read(subscriber));
  }

  /** Starts delivering frames to `subscriber` (completes it at once if the link is over); returns the teardown. */
  protected abstract read(subscriber: Subscriber<Frame>): () => void;
  /** Bytes accepted by `send` and not yet handed to the kernel. */
  abstract readonly outboundBytes: number;
  /** The frame as this transport puts it on the wire. */
  protected abstract encode(f: Frame): Buffer;
  protected abstract write(bytes: Buffer, onFlushed?: () => void): void;
  /** Starts closing (after the BYE); false when the link is already gone. */
  protected abstract shut(reason: GatewayError | null): boolean;
  /** Cuts the link at once. */
  protected abstract kill(): void;
  protected abstract onClosed(fn: () => void): void;

  get isOpen(): boolean {
    return this.open;
  }

  /**
   * The link is over for the gate: when the socket closes, or as soon as the gate closes it
   * (a slow consumer that never reads would otherwise hold its session "online" until the
   * socket is finally destroyed).
   */
  protected finished(): void {
    this.open = false;
    this.reader?.complete();
  }

  send(f: Frame, onFlushed?: () => void): boolean {
    if (!this.open) return false;
    if (this.outboundBytes + f.body.length > this.limits.outboundMax) {
      this.close(new GatewayError('GW_ERR_SLOW_CONSUMER', `over --outbound-max (${this.limits.outboundMax} bytes queued)`));
      return false;
    }
    this.write(this.encode(f), onFlushed);
    return true;
  }

  close(reason: GatewayError | null): void {
    if (!this.open) return;
    this.open = false;
    this.closedWith = reason;
    const bye = reason ? byeFrame(reason) : null;
    if (bye) this.write(this.encode(bye));
    if (!this.shut(reason)) return;
    // A peer that never reads (or never answers the close handshake) would keep the link
    // half-open: cut it after a grace period. Cleared on close: a pending timer would pin this
    // link and its socket for the whole grace period (2 s of every closed link under churn).
    const grace = setTimeout(() => this.kill(), CLOSE_GRACE_MS).unref();
    this.onClosed(() => clearTimeout(grace));
    this.finished();
  }
}

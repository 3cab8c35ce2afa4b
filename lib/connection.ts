import type { Observable } from 'rxjs';
import type { GatewayError } from './errors.js';
import type { Frame } from './frame.js';

export type Transport = 'tcp' | 'ws';

/**
 * One client link, whatever the transport: an inbound frame stream and one send path.
 * Implemented at the edge by `streams/tcpConnection.ts` and `streams/wsConnection.ts`.
 */
export interface Connection {
  readonly id: number;
  readonly transport: Transport;
  readonly remoteAddress: string;
  /**
   * Decoded inbound frames. Completes when the link finishes, whichever side ends it (the
   * peer going away, or `close`), so a pipeline over it needs no separate close signal;
   * errors with a GatewayError (GW_ERR_FRAME_*) on malformed input. Single subscriber. Frame
   * bodies are views into receive buffers: copy one before keeping it beyond the current job.
   */
  readonly frames$: Observable<Frame>;
  readonly isOpen: boolean;
  /** Why the gate closed the link (set by `close`, including a slow-consumer close inside `send`); null otherwise. */
  readonly closedWith: GatewayError | null;
  /** Bytes accepted by `send` and not yet handed to the kernel. */
  readonly outboundBytes: number;
  /**
   * Queues one frame. Returns false when the link is closed, or when the frame takes the
   * outbound queue past --outbound-max: then the link is closed as a slow consumer (BYE
   * slow_consumer). Writes are batched per tick. `onFlushed` is called once the frame has
   * been handed to the kernel (or the link failed): the replay pump paces itself on it.
   */
  send(f: Frame, onFlushed?: () => void): boolean;
  /**
   * Closes the link; with an error whose `bye` is set, a BYE frame carrying that code is
   * sent first. Idempotent.
   */
  close(reason: GatewayError | null): void;
  /** Stop / restart reading (inbound backpressure). */
  pause(): void;
  resume(): void;
}

export interface ConnectionLimits {
  /** --max-frame: largest body accepted. */
  maxFrame: number;
  /** --outbound-max: bytes queued before the link is dropped as a slow consumer. */
  outboundMax: number;
}

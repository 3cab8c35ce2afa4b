import { GatewayError } from './errors.js';
import { HEADER_BYTES, PREFIX_BYTES, headerError, type Frame } from './frame.js';

/**
 * Incremental decoder for length-prefixed TCP frames (ws `Receiver` style: an explicit state
 * machine over a list of chunks). A frame that lies inside one chunk is returned as a view of
 * that chunk, without copying; only a frame split across chunks is copied, once. The length
 * prefix and header are checked before the body is buffered, so a huge length prefix costs
 * nothing: at most `PREFIX_BYTES + HEADER_BYTES + maxFrame` bytes are ever held.
 */
export class FrameDecoder {
  /** Chunks not yet consumed; `offset` bytes of the first are already consumed. */
  private chunks: Buffer[] = [];
  private offset = 0;
  /** Bytes held in `chunks` past `offset`. */
  private held = 0;
  /** Set once the stream is malformed: every later push fails the same way. */
  private failed: GatewayError | null = null;

  constructor(private readonly maxFrame: number) {}

  get bufferedBytes(): number {
    return this.held;
  }

  /**
   * Feeds a chunk and calls `emit` (a function, or an observer's `next`) for each complete frame,
   * in order. Returns the protocol error that ends the stream, or null. Frames before the
   * malformed one are still emitted.
   */
  push(chunk: Buffer, emit: ((f: Frame) => void) | { next(f: Frame): void }): GatewayError | null {
    if (this.failed) return this.failed;
    if (chunk.length === 0) return null;
    this.chunks.push(chunk);
    this.held += chunk.length;
    for (;;) {
      if (this.held < PREFIX_BYTES + HEADER_BYTES) {
        // A short prefix can already be judged: reject "length < 8" and huge lengths early.
        if (this.held >= PREFIX_BYTES) {
          const len = this.peekU32();
          if (len < HEADER_BYTES) return this.fail(len);
          if (len - HEADER_BYTES > this.maxFrame) return this.fail(len);
        }
        return null;
      }
      const len = this.peekU32();
      if (len < HEADER_BYTES) return this.fail(len);
      const head = this.peek(PREFIX_BYTES + HEADER_BYTES);
      const err = headerError(head[PREFIX_BYTES]!, head[PREFIX_BYTES + 1]!, len - HEADER_BYTES, this.maxFrame);
      if (err) return (this.failed = err);
      if (this.held < PREFIX_BYTES + len) return null;
      const raw = this.take(PREFIX_BYTES + len);
      const f: Frame = {
        type: raw[PREFIX_BYTES]!,
        flags: raw[PREFIX_BYTES + 1]!,
        route: raw.readUInt16BE(PREFIX_BYTES + 2),
        seq: raw.readUInt32BE(PREFIX_BYTES + 4),
        body: raw.subarray(PREFIX_BYTES + HEADER_BYTES),
      };
      if (typeof emit === 'function') emit(f);
      else emit.next(f);
    }
  }

  private fail(len: number): GatewayError {
    this.failed =
      len < HEADER_BYTES
        ? new GatewayError('GW_ERR_FRAME_TOO_SHORT', `frame length ${len} is under the 8-byte header`)
        : new GatewayError(
            'GW_ERR_FRAME_TOO_LARGE',
            `frame body of ${len - HEADER_BYTES} bytes is over --max-frame (${this.maxFrame})`,
          );
    return this.failed;
  }

  private peekU32(): number {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= 4) return first.readUInt32BE(this.offset);
    return this.peek(4).readUInt32BE(0);
  }

  /** The next `n` bytes without consuming them (a view when they lie in one chunk). */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    for (let i = 0; got < n; i++) {
      const c = this.chunks[i]!;
      const from = i === 0 ? this.offset : 0;
      got += c.copy(out, got, from, Math.min(c.length, from + n - got));
    }
    return out;
  }

  /** Consumes `n` bytes: a view when they lie in the first chunk, else one copy. */
  private take(n: number): Buffer {
    this.held -= n;
    const first = this.chunks[0]!;
    const avail = first.length - this.offset;
    if (avail >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.length) this.dropFirst();
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const want = n - got;
      const have = c.length - this.offset;
      if (have <= want) {
        c.copy(out, got, this.offset);
        got += have;
        this.dropFirst();
      } else {
        c.copy(out, got, this.offset, this.offset + want);
        this.offset += want;
        got += want;
      }
    }
    return out;
  }

  /**
   * The first chunk is consumed. The last one goes with `length = 0`, which lets go of the
   * array's backing store: optimised `shift()` keeps its 17 slots (152 B on every idle link).
   */
  private dropFirst(): void {
    if (this.chunks.length === 1) this.chunks.length = 0;
    else this.chunks.shift();
    this.offset = 0;
  }
}

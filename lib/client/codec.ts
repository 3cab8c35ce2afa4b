/**
 * The wire codec of CONTRACT §2.1 for clients: frames on `Uint8Array`/`DataView`, no `Buffer`
 * and no `node:` imports, so it runs unchanged in browsers, workers, Deno, Bun and Node.
 *
 * Frame: u8 type, u8 flags, u16 route, u32 seq, body; big-endian. TCP puts a u32 length
 * (8 + body) before each frame; a WebSocket binary message is exactly one frame.
 */

import { FLAG_DEFLATE, FrameType, HEADER_BYTES, PREFIX_BYTES, type FrameTypeCode } from '../wireConstants.js';

export { FLAG_DEFLATE, FrameType, HEADER_BYTES, PREFIX_BYTES, type FrameTypeCode } from '../wireConstants.js';
/** Largest frame body a client accepts unless told otherwise: far above any gate's --max-frame. */
export const DEFAULT_MAX_FRAME = 16 * 1024 * 1024;

export interface GateFrame {
  readonly type: number;
  readonly flags: number;
  readonly route: number;
  readonly seq: number;
  /** Owned by the frame (decoders copy it out of their receive buffers). */
  readonly body: Uint8Array;
}

export type ProtocolErrorCode = 'FRAME_TOO_SHORT' | 'FRAME_TOO_LARGE' | 'FRAME_TYPE' | 'FRAME_FLAGS' | 'FRAME_TEXT' | 'FRAME_COMPRESSED' | 'BAD_JSON';

/** Malformed bytes from the gate. The link they came on is unusable: the client drops it. */
export class GateProtocolError extends Error {
  override readonly name = 'GateProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const EMPTY = new Uint8Array(0);
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');

export const frame = (type: FrameTypeCode, seq = 0, body: Uint8Array = EMPTY, route = 0, flags = 0): GateFrame => ({ type, flags, route, seq, body });

/** A request body as bytes: bytes as they are, a string as UTF-8, anything else as UTF-8 JSON. */
export function toBytes(body: Uint8Array | string | object | undefined): Uint8Array {
  if (body === undefined) return EMPTY;
  if (body instanceof Uint8Array) return body;
  if (typeof body === 'string') return utf8Encoder.encode(body);
  return utf8Encoder.encode(JSON.stringify(body));
}

/** UTF-8 text of a body. */
export const decodeText = (body: Uint8Array): string => utf8Decoder.decode(body);

/** A body parsed as UTF-8 JSON; throws GateProtocolError('BAD_JSON') when it is not JSON. */
export function decodeJson<T = unknown>(body: Uint8Array): T {
  try {
    return JSON.parse(utf8Decoder.decode(body)) as T;
  } catch {
    throw new GateProtocolError('BAD_JSON', `body of ${body.length} bytes is not UTF-8 JSON`);
  }
}

/** A control frame with a JSON body (HELLO, BYE). */
export const jsonFrame = (type: FrameTypeCode, body: unknown): GateFrame => frame(type, 0, utf8Encoder.encode(JSON.stringify(body)));

/** Checks a header; returns the problem instead of throwing so the decode loops stay simple. */
function headerError(type: number, flags: number, bodyLength: number, maxFrame: number): GateProtocolError | null {
  if (bodyLength > maxFrame) return new GateProtocolError('FRAME_TOO_LARGE', `frame body of ${bodyLength} bytes is over the limit of ${maxFrame}`);
  if (type < FrameType.HELLO || type > FrameType.BYE) return new GateProtocolError('FRAME_TYPE', `unknown frame type ${type}`);
  if ((flags & ~FLAG_DEFLATE) !== 0) return new GateProtocolError('FRAME_FLAGS', `reserved flag bits set (0x${flags.toString(16)})`);
  return null;
}

/** One frame as bytes, with the TCP length prefix when `prefixed`. One copy of the body. */
export function encodeFrame(f: GateFrame, prefixed: boolean): Uint8Array {
  const pre = prefixed ? PREFIX_BYTES : 0;
  const out = new Uint8Array(pre + HEADER_BYTES + f.body.length);
  const view = new DataView(out.buffer);
  if (prefixed) view.setUint32(0, HEADER_BYTES + f.body.length);
  out[pre] = f.type;
  out[pre + 1] = f.flags;
  view.setUint16(pre + 2, f.route);
  view.setUint32(pre + 4, f.seq >>> 0);
  out.set(f.body, pre + HEADER_BYTES);
  return out;
}

/** Parses one unprefixed frame (a WebSocket message); the body is copied. Throws GateProtocolError. */
export function decodeFrame(bytes: Uint8Array, maxFrame = DEFAULT_MAX_FRAME): GateFrame {
  if (bytes.length < HEADER_BYTES) throw new GateProtocolError('FRAME_TOO_SHORT', `frame of ${bytes.length} bytes is shorter than the 8-byte header`);
  return readFrame(bytes, 0, bytes.length - HEADER_BYTES, maxFrame);
}

function readFrame(bytes: Uint8Array, at: number, bodyLength: number, maxFrame: number): GateFrame {
  const type = bytes[at]!;
  const flags = bytes[at + 1]!;
  const err = headerError(type, flags, bodyLength, maxFrame);
  if (err) throw err;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, HEADER_BYTES);
  const start = at + HEADER_BYTES;
  return { type, flags, route: view.getUint16(2), seq: view.getUint32(4), body: new Uint8Array(bytes.subarray(start, start + bodyLength)) }; // a copy (Buffer#slice would be a view)
}

/**
 * The receive side of the TCP framing: feed it chunks as they arrive, split anywhere, and it
 * returns the whole frames they complete. An explicit state machine over one growable buffer
 * (ws' receiver): whole frames are parsed straight out of the chunk, only a trailing partial
 * frame is copied. Bound: at most one frame (prefix + header + `maxFrame`) is ever buffered;
 * a length over that throws before any of its body is kept.
 */
export class FrameReader {
  /** Bytes of an incomplete frame, `[0, filled)`. */
  private buf: Uint8Array = EMPTY;
  private filled = 0;
  /** Set after the first malformed input: the stream is unusable from there on. */
  private broken: GateProtocolError | null = null;

  constructor(private readonly maxFrame = DEFAULT_MAX_FRAME) {
    if (!(maxFrame >= 0)) throw new TypeError('FrameReader: maxFrame must be >= 0');
  }

  /** Bytes waiting for the rest of their frame. */
  get buffered(): number {
    return this.filled;
  }

  /** The frames `chunk` completes, in order. Throws GateProtocolError on malformed input, then on every call. */
  push(chunk: Uint8Array): GateFrame[] {
    if (this.broken) throw this.broken;
    try {
      return this.filled === 0 ? this.parse(chunk) : this.parseBuffered(chunk);
    } catch (e) {
      if (e instanceof GateProtocolError) this.broken = e;
      this.buf = EMPTY;
      this.filled = 0;
      throw e;
    }
  }

  /** Parses whole frames from `bytes`, keeping a trailing partial frame. */
  private parse(bytes: Uint8Array): GateFrame[] {
    const out: GateFrame[] = [];
    let at = 0;
    for (;;) {
      const left = bytes.length - at;
      const need = this.frameLength(bytes, at, left);
      if (need === null || left < need) break;
      out.push(readFrame(bytes, at + PREFIX_BYTES, need - PREFIX_BYTES - HEADER_BYTES, this.maxFrame));
      at += need;
    }
    if (at < bytes.length) this.keep(bytes.subarray(at));
    return out;
  }

  /** Completes the buffered frame from the head of `chunk`, then parses the rest in place. */
  private parseBuffered(chunk: Uint8Array): GateFrame[] {
    let used = 0;
    // Top up to the 4-byte prefix first, then to the frame's whole length.
    if (this.filled < PREFIX_BYTES) {
      used = Math.min(PREFIX_BYTES - this.filled, chunk.length);
      this.append(chunk.subarray(0, used));
      if (this.filled < PREFIX_BYTES) return [];
    }
    const need = this.frameLength(this.buf, 0, this.filled)!;
    const take = Math.min(need - this.filled, chunk.length - used);
    this.append(chunk.subarray(used, used + take));
    used += take;
    if (this.filled < need) return [];
    const first = readFrame(this.buf, PREFIX_BYTES, need - PREFIX_BYTES - HEADER_BYTES, this.maxFrame);
    this.filled = 0;
    if (this.buf.length > 64 * 1024) this.buf = EMPTY; // don't pin one big frame's buffer forever
    const rest = this.parse(chunk.subarray(used));
    rest.unshift(first);
    return rest;
  }

  /** The whole length (prefix included) of the frame at `at`, or null if its prefix is incomplete. Validates it. */
  private frameLength(bytes: Uint8Array, at: number, available: number): number | null {
    if (available < PREFIX_BYTES) return null;
    const len = new DataView(bytes.buffer, bytes.byteOffset + at, PREFIX_BYTES).getUint32(0);
    if (len < HEADER_BYTES) throw new GateProtocolError('FRAME_TOO_SHORT', `length prefix ${len} is under the 8-byte header`);
    if (len - HEADER_BYTES > this.maxFrame)
      throw new GateProtocolError('FRAME_TOO_LARGE', `frame body of ${len - HEADER_BYTES} bytes is over the limit of ${this.maxFrame}`);
    return PREFIX_BYTES + len;
  }

  private keep(bytes: Uint8Array): void {
    this.filled = 0;
    this.append(bytes);
  }

  private append(bytes: Uint8Array): void {
    const size = this.filled + bytes.length;
    if (size > this.buf.length) {
      // Grow to the frame's full length when the prefix is known, so a big frame is copied once.
      const known = this.filled + bytes.length >= PREFIX_BYTES ? this.peekLength(bytes) : 0;
      const next = new Uint8Array(Math.max(size, known, Math.min(2 * this.buf.length, PREFIX_BYTES + HEADER_BYTES + this.maxFrame), 256));
      next.set(this.buf.subarray(0, this.filled));
      this.buf = next;
    }
    this.buf.set(bytes, this.filled);
    this.filled = size;
  }

  /** The frame length once buffer + `bytes` hold the prefix (validated later by frameLength). */
  private peekLength(bytes: Uint8Array): number {
    const head = new Uint8Array(PREFIX_BYTES);
    const fromBuf = Math.min(this.filled, PREFIX_BYTES);
    head.set(this.buf.subarray(0, fromBuf));
    head.set(bytes.subarray(0, PREFIX_BYTES - fromBuf), fromBuf);
    const len = new DataView(head.buffer).getUint32(0);
    return len - HEADER_BYTES > this.maxFrame ? 0 : PREFIX_BYTES + len;
  }
}

import { GatewayError } from './errors.js';

import { FLAG_DEFLATE, FrameType, HEADER_BYTES, PREFIX_BYTES, type FrameTypeCode } from './wireConstants.js';

export { FLAG_DEFLATE, FrameType, HEADER_BYTES, PREFIX_BYTES, type FrameTypeCode, type FrameTypeName } from './wireConstants.js';

export const FRAME_TYPE_NAMES: readonly string[] = Object.entries(FrameType)
  .sort((a, b) => a[1] - b[1])
  .reduce<string[]>((acc, [name, code]) => ((acc[code] = name), acc), []);

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly route: number;
  readonly seq: number;
  /** May be a view into a larger receive buffer: copy before keeping it past the current tick. */
  readonly body: Buffer;
}

const EMPTY = Buffer.alloc(0);

export const frame = (type: FrameTypeCode, seq = 0, body: Buffer = EMPTY, route = 0, flags = 0): Frame => ({
  type,
  flags,
  route,
  seq,
  body,
});

/**
 * Checks a frame header; returns the error instead of throwing so hot loops stay branch-cheap.
 * `bodyLength` is checked against `maxFrame` before any body byte is buffered.
 */
export function headerError(type: number, flags: number, bodyLength: number, maxFrame: number): GatewayError | null {
  if (bodyLength > maxFrame)
    return new GatewayError('GW_ERR_FRAME_TOO_LARGE', `frame body of ${bodyLength} bytes is over --max-frame (${maxFrame})`);
  if (type < FrameType.HELLO || type > FrameType.BYE) return new GatewayError('GW_ERR_FRAME_TYPE', `unknown frame type ${type}`);
  if ((flags & ~FLAG_DEFLATE) !== 0) return new GatewayError('GW_ERR_FRAME_FLAGS', `reserved flag bits set (0x${flags.toString(16)})`);
  return null;
}

/** Writes the 8-byte header at `offset` of `out`. */
export function writeHeader(out: Buffer, offset: number, f: Frame): void {
  out[offset] = f.type;
  out[offset + 1] = f.flags;
  out.writeUInt16BE(f.route, offset + 2);
  out.writeUInt32BE(f.seq >>> 0, offset + 4);
}

/** One buffer holding the frame, with the TCP length prefix when `prefixed`. One copy of the body. */
export function encodeFrame(f: Frame, prefixed: boolean): Buffer {
  const pre = prefixed ? PREFIX_BYTES : 0;
  const out = Buffer.allocUnsafe(pre + HEADER_BYTES + f.body.length);
  if (prefixed) out.writeUInt32BE(HEADER_BYTES + f.body.length, 0);
  writeHeader(out, pre, f);
  out.set(f.body, pre + HEADER_BYTES); // TypedArray#set: Buffer#copy's argument checks cost more than the copy for small bodies
  return out;
}

/** Parses one unprefixed frame (a WebSocket message). Throws GatewayError on malformed input. */
export function parseFrame(buf: Buffer, maxFrame: number): Frame {
  if (buf.length < HEADER_BYTES)
    throw new GatewayError('GW_ERR_FRAME_TOO_SHORT', `frame of ${buf.length} bytes is shorter than the 8-byte header`);
  const type = buf[0]!;
  const flags = buf[1]!;
  const err = headerError(type, flags, buf.length - HEADER_BYTES, maxFrame);
  if (err) throw err;
  return { type, flags, route: buf.readUInt16BE(2), seq: buf.readUInt32BE(4), body: buf.subarray(HEADER_BYTES) };
}

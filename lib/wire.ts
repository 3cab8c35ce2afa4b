import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { GatewayError, type RequestErrorCode } from './errors.js';
import { FLAG_DEFLATE, FrameType, frame, type Frame } from './frame.js';

/** Bodies above this are deflated for clients that asked for compression (§2.2). */
export const COMPRESS_MIN_BYTES = 1024;

/** The HELLO body (§2.1), validated. */
export interface Hello {
  token?: string;
  resume?: { sessionId: string; resumeToken: string; lastSeq: number };
  compress: boolean;
  /** W3C traceparent from HELLO metadata, forwarded on /rpc (optional). */
  traceparent?: string;
}

const malformed = (why: string): GatewayError => new GatewayError('GW_ERR_HELLO_MALFORMED', `HELLO ${why}`);

export function parseHello(body: Buffer): Hello {
  let v: unknown;
  try {
    v = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
  } catch {
    throw malformed('body is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed('body must be a JSON object');
  const o = v as Record<string, unknown>;
  if (o.token !== undefined && typeof o.token !== 'string') throw malformed('token must be a string');
  if (o.compress !== undefined && typeof o.compress !== 'boolean') throw malformed('compress must be a boolean');
  const hello: Hello = { compress: o.compress === true };
  if (typeof o.token === 'string') hello.token = o.token;
  // W3C trace context, at the top level or in `meta` (HELLO metadata); anything malformed is ignored.
  const meta = typeof o.meta === 'object' && o.meta !== null ? (o.meta as Record<string, unknown>) : {};
  const tp = o.traceparent ?? meta.traceparent;
  if (typeof tp === 'string' && /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(tp)) hello.traceparent = tp;
  if (o.resume !== undefined && o.resume !== null) {
    const r = o.resume as Record<string, unknown>;
    if (typeof r !== 'object' || typeof r.sessionId !== 'string' || typeof r.resumeToken !== 'string')
      throw malformed('resume must be {sessionId, resumeToken, lastSeq}');
    const lastSeq = r.lastSeq ?? 0;
    if (typeof lastSeq !== 'number' || !Number.isInteger(lastSeq) || lastSeq < 0 || lastSeq > 0xffffffff)
      throw malformed('resume.lastSeq must be a whole number');
    hello.resume = { sessionId: r.sessionId, resumeToken: r.resumeToken, lastSeq };
  }
  return hello;
}

/** A body as received: inflated when flagged, with a hard output cap (a deflate bomb costs at most maxFrame). */
export function inboundBody(f: Frame, maxFrame: number): Buffer {
  if ((f.flags & FLAG_DEFLATE) === 0) return f.body;
  try {
    return inflateRawSync(f.body, { maxOutputLength: maxFrame });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError)
      throw new GatewayError('GW_ERR_FRAME_TOO_LARGE', `compressed body inflates past --max-frame (${maxFrame})`);
    throw new GatewayError('GW_ERR_FRAME_INFLATE', 'compressed body is not valid raw DEFLATE');
  }
}

/** A RESPONSE or PUSH frame, deflated when the client asked and it pays. */
export function outboundFrame(type: typeof FrameType.RESPONSE | typeof FrameType.PUSH, route: number, seq: number, body: Buffer, compress: boolean): Frame {
  if (compress && body.length > COMPRESS_MIN_BYTES) {
    const z = deflated(body);
    if (z !== null) return frame(type, seq, z, route, FLAG_DEFLATE);
  }
  return frame(type, seq, body, route);
}

/**
 * Deflated bodies by body buffer: a broadcast hands one buffer to every session, and a replay
 * sends kept bodies again, so each body is deflated once, not once per recipient. Weak, so an
 * entry lives exactly as long as its body. null = deflating did not make it smaller.
 */
const deflateCache = new WeakMap<Buffer, Buffer | null>();

function deflated(body: Buffer): Buffer | null {
  let z = deflateCache.get(body);
  if (z === undefined) {
    const out = deflateRawSync(body);
    z = out.length < body.length ? out : null;
    deflateCache.set(body, z);
  }
  return z;
}

export const errorFrame = (seq: number, route: number, code: RequestErrorCode, message: string, status?: number): Frame =>
  frame(FrameType.ERROR, seq, Buffer.from(JSON.stringify(status === undefined ? { code, message } : { code, message, status })), route);

export const jsonFrame = (type: (typeof FrameType)[keyof typeof FrameType], seq: number, body: unknown): Frame =>
  frame(type, seq, Buffer.from(JSON.stringify(body)));

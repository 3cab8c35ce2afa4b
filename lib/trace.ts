import { randomBytes } from 'node:crypto';

const POOL_BYTES = 4096;
let pool = ''; // hex of the last random draw
let at = 0; // chars of `pool` already handed out

/**
 * Random hex (`bytes` bytes, CSPRNG) drawn from a pool refilled 4 KiB at a time: one syscall and
 * one hex conversion per ~170 requests instead of per request (slicing a string is cheap,
 * converting bytes is not).
 */
export function randomHex(bytes: number): string {
  const chars = bytes * 2;
  if (at + chars > pool.length) {
    pool = randomBytes(POOL_BYTES).toString('hex');
    at = 0;
  }
  const s = pool.slice(at, at + chars);
  at += chars;
  return s;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZEROS = /^0+$/;

/** A traceparent's fields (hex), and whether its sampled flag is set. */
export interface TraceParent {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
}

/** The fields of a version-00 `traceparent`, or null when it is malformed or names an all-zero trace or span. */
export function parseTraceparent(s: string | undefined): TraceParent | null {
  const m = s ? TRACEPARENT.exec(s) : null;
  if (!m || ZEROS.test(m[1]!) || ZEROS.test(m[2]!)) return null;
  return { traceId: m[1]!, spanId: m[2]!, sampled: (parseInt(m[3]!, 16) & 1) === 1 };
}

/** The `traceparent` header naming one span. */
export const formatTraceparent = (traceId: string, spanId: string, sampled: boolean): string => `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;

/**
 * The W3C `traceparent` for one upstream call: the client's trace (from HELLO) continued with
 * a new span id, or a new trace when the client sent none.
 */
export function childTraceparent(parent: string | undefined): string {
  const m = parent ? TRACEPARENT.exec(parent) : null;
  if (m && !ZEROS.test(m[1]!)) return `00-${m[1]}-${randomHex(8)}-${m[3]}`;
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

import { randomFillSync } from 'node:crypto';

/** Random bytes drawn from a pool refilled 4 KiB at a time: one syscall per ~170 requests, not per request. */
const pool = Buffer.alloc(4096);
let at = pool.length;

function hex(bytes: number): string {
  if (at + bytes > pool.length) {
    randomFillSync(pool);
    at = 0;
  }
  const s = pool.toString('hex', at, at + bytes);
  at += bytes;
  return s;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/;

/**
 * The W3C `traceparent` for one upstream call: the client's trace (from HELLO) continued with
 * a new span id, or a new trace when the client sent none.
 */
export function childTraceparent(parent: string | undefined): string {
  const m = parent ? TRACEPARENT.exec(parent) : null;
  if (m && !/^0+$/.test(m[1]!)) return `00-${m[1]}-${hex(8)}-${m[2]}`;
  return `00-${hex(16)}-${hex(8)}-01`;
}

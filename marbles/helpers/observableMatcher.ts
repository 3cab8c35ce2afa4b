/**
 * The assertion the marble specs hand to `new TestScheduler(...)`: deep equality with
 * `node:assert/strict`, except that errors are compared by what callers may rely on.
 * A GatewayError is compared by `{ name, code }` only (its message and details are for logs,
 * its stack differs per run); any other Error by `{ name, message }`; everything else as is.
 */
import assert from 'node:assert/strict';
import { GatewayError, type GatewayErrorCode } from '../../lib/errors.js';

/** Replaces errors, at any depth, by the fields the specs compare. Cycles are not expected in marble logs. */
function normalize(v: unknown): unknown {
  if (v instanceof GatewayError) return { name: v.name, code: v.code };
  if (v instanceof Error) return { name: v.name, message: v.message };
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v) && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = normalize(x);
    return out;
  }
  return v;
}

/** Pass to `new TestScheduler(observableMatcher)`. */
export function observableMatcher(actual: unknown, expected: unknown): void {
  assert.deepStrictEqual(normalize(actual), normalize(expected));
}

/** The expected error value for a `#` in a marble: a GatewayError with `code` (message ignored). */
export const gwError = (code: GatewayErrorCode): GatewayError => new GatewayError(code);

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GW_ERRORS, GatewayError, isGatewayError, type GatewayErrorCode } from '../lib/errors.js';

const BYE_CODES = new Set(['auth_failed', 'protocol_error', 'hello_timeout', 'replaced', 'kicked', 'idle', 'slow_consumer', 'shutdown']);

describe('error catalogue', () => {
  const codes = Object.keys(GW_ERRORS) as GatewayErrorCode[];

  it('should name every code GW_ERR_<NOUN>_<PROBLEM> with no code reused', () => {
    for (const c of codes) assert.match(c, /^GW_ERR_[A-Z]+(_[A-Z]+)*$/);
    assert.equal(new Set(codes).size, codes.length);
  });

  it('should give each code a close code, a message, and only contract BYE codes', () => {
    for (const c of codes) {
      const e = GW_ERRORS[c];
      assert.ok(e.close === 1000 || (e.close >= 1001 && e.close <= 1014) || (e.close >= 4000 && e.close <= 4999), `${c} close ${e.close}`);
      assert.ok(e.message.length > 0);
      if (e.bye !== null) assert.ok(BYE_CODES.has(e.bye), `${c} bye ${e.bye}`);
    }
  });

  it('should build GatewayErrors carrying code, close code and BYE code', () => {
    const e = new GatewayError('GW_ERR_KICKED', 'bye');
    assert.equal(e.name, 'GatewayError');
    assert.equal(e.code, 'GW_ERR_KICKED');
    assert.equal(e.closeCode, 4006);
    assert.equal(e.bye, 'kicked');
    assert.ok(isGatewayError(e, 'GW_ERR_KICKED'));
    assert.ok(!isGatewayError(e, 'GW_ERR_IDLE_TIMEOUT'));
    assert.ok(!isGatewayError(new Error('x')));
  });

  it('should list every code in the README error table', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const c of codes) assert.ok(readme.includes(`\`${c}\``), `README lacks ${c}`);
  });
});

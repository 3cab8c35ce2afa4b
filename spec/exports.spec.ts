import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

describe('package exports', () => {
  it('should expose the gate, the client SDK and its Node entry under the package name', async () => {
    const gate = await import('gate');
    assert.equal(typeof gate.serve, 'function');
    assert.equal(typeof gate.Gate, 'function');
    assert.equal(typeof gate.buildConfig, 'function');
    const client = await import('gate/client');
    assert.equal(typeof client.GateClient, 'function');
    const node = await import('gate/client/node');
    assert.equal(typeof node.tcpTransport, 'function');
  });
});

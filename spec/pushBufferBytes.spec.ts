import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PushBuffer } from '../lib/session/pushBuffer.js';

const push = (seq: number, bytes: number) => ({ seq, route: 1, body: Buffer.alloc(bytes) });

describe('PushBuffer byte bound (--buffer-max-bytes)', () => {
  it('should drop the oldest pushes once their bodies pass the byte bound, and report a gap', () => {
    const b = new PushBuffer(100, 1000);
    assert.equal(b.add(push(1, 400)), 0);
    assert.equal(b.add(push(2, 400)), 0);
    assert.equal(b.add(push(3, 400)), 1); // 1200 > 1000: seq 1 goes
    assert.equal(b.bytes, 800);
    assert.deepEqual(b.after(0).map((p) => p.seq), [2, 3]);
    assert.equal(b.gapAfter(0), true);
    assert.equal(b.gapAfter(1), false);
  });

  it('should always keep the newest push, even one larger than the bound', () => {
    const b = new PushBuffer(100, 1000);
    b.add(push(1, 10));
    assert.equal(b.add(push(2, 5000)), 1);
    assert.deepEqual(b.after(0).map((p) => p.seq), [2]);
    assert.equal(b.bytes, 5000);
  });

  it('should give bytes back on ACK', () => {
    const b = new PushBuffer(100, 1000);
    b.add(push(1, 300));
    b.add(push(2, 300));
    b.ack(1);
    assert.equal(b.bytes, 300);
    b.ack(2);
    assert.equal(b.bytes, 0);
    assert.equal(b.size, 0);
  });
});

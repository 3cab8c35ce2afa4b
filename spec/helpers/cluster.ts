/**
 * Helpers of the cluster-mode specs (spec/cluster/): `gate serve --redis` members as real
 * processes, the push API over fetch, clients logging in and resuming on any member.
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { FrameType, type Frame } from '../../lib/frame.js';
import { api } from './gateHarness.js';
import { portOf, spawnGate, type GateProcess } from './gateProcess.js';
import { connectTcp, connectWs, json, type ByeBody, type TestClient, type WelcomeBody } from './testClient.js';

/** Bound on one wait for a frame, a log line or an HTTP answer, ms. */
export const WAIT_MS = 10_000;

export interface Member {
  readonly name: string;
  readonly proc: GateProcess;
  readonly tcp: number;
  readonly ws: number;
  readonly api: string;
  readonly member: string;
}

let prefixes = 0;
/** A key prefix no other test of this process uses: every test is a cluster of its own on a shared redis-server. */
export const nextPrefix = (tag: string): string => `${tag}${++prefixes}-${process.pid}:`;

export async function startMember(name: string, redisUrl: string, prefix: string, upstream: string, extra: string[] = []): Promise<Member> {
  const proc = spawnGate([
    'serve', '--tcp', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--api', '127.0.0.1:0', '--auth', 'none', '--upstream', upstream,
    '--gate-id', name, '--redis', redisUrl, '--redis-prefix', prefix, ...extra,
  ]);
  const l = await proc.waitForLog('listening');
  assert.equal(typeof l.member, 'string', `gate ${name} should run as a cluster member: ${JSON.stringify(l)}`);
  return { name, proc, tcp: portOf(l.tcp), ws: portOf(l.ws), api: `http://${String(l.api)}`, member: String(l.member) };
}

/**
 * One call's bound, ms: a connection node:cluster's primary handed to a worker as it was killed
 * never answers, and a wait for an effect must get to try again.
 */
const CALL_MS = 5_000;
/** Connections a GET may find dead before one answers (see `call`). */
const STALE_TRIES = 4;

export async function call(m: Member, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  // A GET may meet keep-alive connections of workers killed since (--procs), one per worker: each
  // failed one leaves the pool, so the next try goes on another (a new one in the end).
  for (let attempt = 1; ; attempt++) {
    try {
      return await api({ apiUrl: m.api }, method, path, body, {}, CALL_MS);
    } catch (e) {
      if (method !== 'GET' || attempt >= STALE_TRIES) throw e;
    }
  }
}

/** A session's state as Redis holds it (no gate left to ask). */
export async function fetchPlayer(url: string, prefix: string, playerId: string): Promise<string | null> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  try {
    return await r.hget(`${prefix}s:${playerId}`, 'st');
  } finally {
    r.disconnect();
  }
}

export const push = (m: Member, playerId: string, data: unknown, id?: string) => call(m, 'POST', '/v1/push', { playerId, route: 7, data, ...(id ? { id } : {}) });

export const login = async (m: Member, player: string, t: 'tcp' | 'ws' = 'tcp'): Promise<{ c: TestClient; w: WelcomeBody }> => {
  const c = t === 'tcp' ? await connectTcp(m.tcp) : await connectWs(m.ws);
  const w = await c.hello({ token: player }, WAIT_MS);
  return { c, w };
};

export const resume = async (m: Member, w: WelcomeBody, lastSeq: number, t: 'tcp' | 'ws' = 'tcp'): Promise<{ c: TestClient; w: WelcomeBody }> => {
  const c = t === 'tcp' ? await connectTcp(m.tcp) : await connectWs(m.ws);
  const w2 = await c.hello({ token: w.playerId, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq } }, WAIT_MS);
  return { c, w: w2 };
};

export const nextPush = (c: TestClient): Promise<Frame> => c.next((f) => f.type === FrameType.PUSH, WAIT_MS);
export const pushData = (f: Frame): unknown => JSON.parse(f.body.toString('utf8'));
export const bye = async (c: TestClient): Promise<ByeBody> => json(await c.next((f) => f.type === FrameType.BYE, WAIT_MS)) as ByeBody;
export const ack = (c: TestClient, seq: number): void => c.send({ type: FrameType.ACK, flags: 0, route: 0, seq, body: Buffer.alloc(0) });


/**
 * Race tests with fast-check's scheduler: the order in which racing operations are *issued*
 * (a resume, pushes, a backend answer, a fresh login) is chosen by `fc.scheduler`, then the
 * outcome is checked against what must hold in every order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { assertProperty } from './helpers/props.js';
import { FrameType, type Frame } from '../lib/frame.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { ByeError, connectTcp, json, type TestClient, type WelcomeBody } from './helpers/testClient.js';
import { waitFor } from './helpers/wait.js';

/**
 * Runs of each race (spec/helpers/props.ts: FC_RUNS asks for more, within a time budget). Floor:
 * a fifth to a tenth of what `npm run fuzz` completes in the budget on a busy 2-core machine
 * (1100 to 2600 runs in 30 s), so only a real slowdown trips it.
 */
const RUNS = { runs: 10, floor: 200 };
const isPush = (f: Frame): boolean => f.type === FrameType.PUSH;

describe('races (fc.scheduler)', () => {
  let h: Harness;
  const release = new Map<string, () => void>();
  let n = 0;
  before(async () => {
    h = await startGate({ bufferMax: 100 }, async (req) => {
      if (req.path === '/connect') return { status: 200, body: { playerId: (JSON.parse(req.body.toString()) as { token: string }).token } };
      if (req.path.startsWith('/rpc/')) {
        const id = String(req.headers['x-request-id']);
        await new Promise<void>((resolve) => release.set(id, resolve));
        return { status: 200, body: `answer ${id}` };
      }
      return { status: 204 };
    });
  });
  after(async () => {
    for (const go of release.values()) go();
    await h.close();
  });

  const detachedPlayer = async (): Promise<{ playerId: string; w: WelcomeBody }> => {
    const playerId = `race-${++n}`;
    const c = await connectTcp(h.tcpPort);
    const w = await c.hello({ token: playerId });
    await c.destroy();
    await waitFor('detached', async () => (await api(h, 'GET', `/v1/players/${playerId}`)).body.state === 'detached');
    return { playerId, w };
  };

  it('should deliver every push exactly once, in order, whatever order a resume and pushes race in', async (t) => {
    await assertProperty(
      t,
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 1, max: 6 }), async (s, count) => {
        const { playerId, w } = await detachedPlayer();
        const b = await connectTcp(h.tcpPort);
        const tasks: Promise<unknown>[] = [
          s.schedule(Promise.resolve('resume')).then(() => b.hello({ token: playerId, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 0 } })),
        ];
        // Pushes are issued one after another (their seqs are assigned in issue order), each at a scheduler-chosen moment.
        let chain: Promise<unknown> = Promise.resolve();
        for (let k = 1; k <= count; k++) {
          const gate = s.schedule(Promise.resolve(`push ${k}`));
          chain = chain.then(() => gate).then(() => api(h, 'POST', '/v1/push', { playerId, route: 3, data: { k } }));
        }
        tasks.push(chain);
        await s.waitFor(Promise.all(tasks));
        const got: number[] = [];
        for (let k = 1; k <= count; k++) got.push((await b.next(isPush)).seq);
        assert.deepEqual(got, Array.from({ length: count }, (_, i) => i + 1));
        assert.deepEqual(got.map((_, i) => (json(b.frames.filter(isPush)[i]!) as { k: number }).k), got);
        assert.equal(b.frames.filter(isPush).length, count, 'no push twice');
        await b.close();
      }),
      RUNS,
    );
  });

  it('should answer a request exactly once and call upstream once when its answer races a drop and a resume', async (t) => {
    await assertProperty(
      t,
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const playerId = `race-${++n}`;
        const a = await connectTcp(h.tcpPort);
        const w = await a.hello({ token: playerId });
        const id = `${w.sessionId}.1`;
        a.request(1, 1, Buffer.from('x'));
        await waitFor('backend holds the call', () => release.has(id));
        let b: TestClient | null = null;
        const drop = s.schedule(Promise.resolve('drop')).then(async () => {
          await a.destroy();
          await waitFor('detached', async () => (await api(h, 'GET', `/v1/players/${playerId}`)).body.state === 'detached');
        });
        const answer = s.schedule(Promise.resolve('answer')).then(() => release.get(id)!());
        const resume = drop
          .then(() => s.schedule(Promise.resolve('resume')))
          .then(async () => {
            b = await connectTcp(h.tcpPort);
            const w2 = await b.hello({ token: playerId, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 0 } });
            assert.equal(w2.resumed, true);
            b.request(1, 1, Buffer.from('x')); // the client re-sends what it has no answer for
          });
        await s.waitFor(Promise.all([drop, answer, resume]));
        const c = b as TestClient | null;
        assert.ok(c);
        const ans = await c.next((f) => f.type === FrameType.RESPONSE && f.seq === 1);
        assert.equal(ans.body.toString(), `answer ${id}`);
        const onA = a.frames.filter((f) => f.type === FrameType.RESPONSE).length;
        assert.ok(onA === 0, 'the dropped link got nothing after it was dropped');
        assert.equal(h.backend.calls.filter((x) => x.headers['x-request-id'] === id).length, 1, 'one upstream call');
        // A late duplicate gets the stored answer, still with no second call.
        c.request(1, 1, Buffer.from('x'));
        await waitFor('second answer', () => c.frames.filter((f) => f.type === FrameType.RESPONSE && f.seq === 1).length === 2);
        assert.equal(h.backend.calls.filter((x) => x.headers['x-request-id'] === id).length, 1);
        release.delete(id);
        await c.close();
      }),
      RUNS,
    );
  });

  it('should leave exactly one live session when a fresh login races a resume of the same player', async (t) => {
    await assertProperty(
      t,
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const { playerId, w } = await detachedPlayer();
        const fresh = await connectTcp(h.tcpPort);
        const res = await connectTcp(h.tcpPort);
        const outcome = async (p: Promise<WelcomeBody>): Promise<WelcomeBody | ByeError> => p.catch((e: unknown) => e as ByeError);
        const [wf, wr] = await s.waitFor(
          Promise.all([
            s.schedule(Promise.resolve('fresh')).then(() => outcome(fresh.hello({ token: playerId }))),
            s.schedule(Promise.resolve('resume')).then(() => outcome(res.hello({ token: playerId, resume: { sessionId: w.sessionId, resumeToken: w.resumeToken, lastSeq: 0 } }))),
          ]),
        );
        assert.ok(!(wf instanceof ByeError) && !(wr instanceof ByeError), 'both logins are welcomed');
        const info = (await waitFor('one session', async () => {
          const r = await api(h, 'GET', `/v1/players/${playerId}`);
          return r.status === 200 ? (r.body as { sessionId: string; state: string }) : undefined;
        }))!;
        // The one that ends up live is the one whose login completed last; the other link is told "replaced".
        const live = [wf, wr].filter((x): x is WelcomeBody => !(x instanceof ByeError) && x.sessionId === info.sessionId);
        assert.ok(live.length >= 1, 'the live session is one of the two');
        assert.equal(info.state, 'online');
        const liveClient = wf instanceof ByeError || wf.sessionId !== info.sessionId ? res : fresh;
        const other = liveClient === fresh ? res : fresh;
        const bye = await other.next((f) => f.type === FrameType.BYE);
        assert.equal((json(bye) as { code: string }).code, 'replaced');
        const pushed = await api(h, 'POST', '/v1/push', { playerId, route: 1, data: 1 });
        assert.equal(pushed.body.status, 'sent');
        await liveClient.next(isPush);
        await liveClient.close();
        await api(h, 'POST', '/v1/kick', { playerId });
      }),
      RUNS,
    );
  });
});

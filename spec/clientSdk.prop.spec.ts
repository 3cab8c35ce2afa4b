/**
 * The client SDK under random link drops against a real in-process gate (CONTRACT §2.4, §2.5):
 * whatever the interleaving of pushes, dropped links, held reconnects and requests (some still
 * running upstream when their link drops), the app sees every push exactly once and in order,
 * every request settles exactly once with its own answer, and the backend runs each request
 * exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { assertProperty } from './helpers/props.js';
import { BehaviorSubject, filter, switchMap, take } from 'rxjs';
import { GateClient, decodeJson, tcpTransport, wsTransport, type Push, type Transport } from '../lib/client/node.js';
import { defaultHandler, type FakeHandler } from './helpers/fakeBackend.js';
import { api, startGate, type Harness } from './helpers/gateHarness.js';
import { waitFor, withTimeout } from './helpers/wait.js';

/**
 * Runs (spec/helpers/props.ts: FC_RUNS asks for more, within a time budget). The default floor
 * of 100 is under a tenth of what `npm run fuzz` completes in the budget on a busy 2-core
 * machine (1250 to 1380 runs in 30 s), so only a real slowdown trips it.
 */
const RUNS = { runs: 20 };
/** Bound on any single wait in a run, ms. */
const WAIT_MS = 3_000;
const ECHO = 5;

type Cmd =
  | { readonly k: 'push'; readonly n: number }
  | { readonly k: 'drop' }
  /** Hold new dials: a drop then leaves the session detached (pushes buffer, requests queue) until release. */
  | { readonly k: 'hold' }
  | { readonly k: 'release' }
  /** `delayMs`: how long the backend takes, so a drop can catch it upstream. */
  | { readonly k: 'request'; readonly delayMs: number };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ k: fc.constant('push' as const), n: fc.integer({ min: 1, max: 3 }) }),
  fc.constant({ k: 'drop' as const }),
  fc.constant({ k: 'hold' as const }),
  fc.constant({ k: 'release' as const }),
  fc.record({ k: fc.constant('request' as const), delayMs: fc.integer({ min: 0, max: 15 }) }),
);

/** Wraps a transport so new dials can be held. */
function holdable(inner: Transport): Transport & { hold(): void; release(): void } {
  const open$ = new BehaviorSubject(true);
  return {
    open: () =>
      open$.pipe(
        filter(Boolean),
        take(1),
        switchMap(() => inner.open()),
      ),
    hold: () => open$.next(false),
    release: () => open$.next(true),
  };
}

/** The backend echoes /rpc bodies, after the `delayMs` the body asks for. */
const handler: FakeHandler = (req) => {
  if (req.path === `/rpc/${ECHO}`) {
    const { delayMs } = JSON.parse(req.body.toString('utf8')) as { delayMs: number };
    return { status: 200, body: req.body, delayMs };
  }
  return defaultHandler(req);
};

describe('GateClient under random link drops (property)', () => {
  let h: Harness;
  let run = 0; // each run logs in a new player

  before(async () => {
    h = await startGate({ auth: 'none', shutdownGraceMs: 200 }, handler);
  });
  after(() => h.close());

  it('should deliver every push exactly once in order and settle every request exactly once', async (t) => {
    await assertProperty(
      t,
      fc.asyncProperty(fc.constantFrom('tcp' as const, 'ws' as const), fc.array(cmdArb, { maxLength: 14 }), async (kind, cmds) => {
        const playerId = `prop-${++run}`;
        const transport = holdable(kind === 'tcp' ? tcpTransport({ port: h.tcpPort }) : wsTransport(`ws://127.0.0.1:${h.wsPort}/`));
        const client = new GateClient({ transport, token: playerId, reconnect: { baseMs: 1, maxMs: 5 }, ackDelayMs: 5, ackEvery: 4 });
        const pushes: Push[] = [];
        const sub = client.pushes$.subscribe((p) => pushes.push(p));
        let closed = false;
        const closeSub = client.state$.subscribe((s) => (closed ||= s === 'closed'));
        try {
          await withTimeout(client.connect(), WAIT_MS, 'WELCOME');
          const sent: number[] = []; // push payloads in the order the gate numbered them
          const requests: { i: number; settled: number; result: Promise<unknown> }[] = [];
          for (const c of cmds) {
            if (c.k === 'push') {
              for (let j = 0; j < c.n; j++) {
                const i = sent.length + 1;
                const r = await api(h, 'POST', '/v1/push', { playerId, route: 100, data: { i } });
                assert.equal(r.status, 200, JSON.stringify(r.body));
                assert.equal(r.body.seq, i);
                sent.push(i);
              }
            } else if (c.k === 'drop') client.dropLink();
            else if (c.k === 'hold') transport.hold();
            else if (c.k === 'release') transport.release();
            else {
              const i = requests.length + 1;
              const req = { i, settled: 0, result: Promise.resolve<unknown>(undefined) };
              req.result = client.request(ECHO, { i, delayMs: c.delayMs }).then(
                (b) => (req.settled++, decodeJson(b)),
                (e: unknown) => (req.settled++, e),
              );
              requests.push(req);
            }
          }
          transport.release();
          const answers = await withTimeout(Promise.all(requests.map((r) => r.result)), WAIT_MS, `${requests.length} answers`);
          answers.forEach((a, n) => assert.deepEqual(a, { i: n + 1, delayMs: (a as { delayMs: number }).delayMs }, `request ${n + 1} answered ${String(a)}`));
          assert.ok(requests.every((r) => r.settled === 1));
          await waitFor(`${sent.length} pushes (got ${pushes.length})`, () => pushes.length >= sent.length, WAIT_MS);
          assert.deepEqual(
            pushes.map((p) => [p.seq, decodeJson<{ i: number }>(p.body).i]),
            sent.map((i) => [i, i]),
          );
          assert.equal(closed, false, 'the client closed on its own');
          // Exactly-once upstream: each request id reached the backend once.
          const ids = h.backend.calls.filter((c) => c.headers['x-player-id'] === playerId && c.path === `/rpc/${ECHO}`).map((c) => c.headers['x-request-id']);
          assert.equal(new Set(ids).size, ids.length, `a request ran twice: ${ids.join(', ')}`);
          assert.equal(ids.length, requests.length);
        } finally {
          await client.close();
          sub.unsubscribe();
          closeSub.unsubscribe();
        }
      }),
      {
        ...RUNS,
        examples: [
          // A request running upstream when its link drops, pushes buffered while detached.
          ['tcp', [{ k: 'request', delayMs: 10 }, { k: 'hold' }, { k: 'drop' }, { k: 'push', n: 3 }, { k: 'request', delayMs: 0 }, { k: 'release' }, { k: 'push', n: 1 }]],
          ['ws', [{ k: 'push', n: 2 }, { k: 'drop' }, { k: 'drop' }, { k: 'request', delayMs: 5 }, { k: 'drop' }, { k: 'push', n: 2 }]],
        ],
      },
    );
  });

});

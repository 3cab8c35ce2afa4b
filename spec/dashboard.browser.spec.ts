/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core): the live figures
 * move while a client sends requests; a player is looked up, sent a test push and kicked (the
 * client gets BYE kicked); with an API key the page shows only the key form until the right key
 * is entered, and every data call then carries it. Leaves a screenshot in .bench-out/.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { GateConfig } from '../lib/config.js';
import { FrameType } from '../lib/frame.js';
import { startGate, type Harness } from './helpers/gateHarness.js';
import { connectTcp, json, type TestClient } from './helpers/testClient.js';

const CHROMIUM = '/usr/bin/chromium';
/** Bound on every wait in this file, ms: samples come once a second, a slow shared machine takes longer. */
const WAIT_MS = 30_000;
const SCREENSHOT = '.bench-out/dashboard.png';
const noBrowser = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium)`;

let browser: Browser | null = null;

async function gate(t: TestContext, over: Partial<GateConfig> = {}): Promise<Harness> {
  const h = await startGate(over);
  t.after(() => h.close());
  return h;
}

/** A fresh browser context (its own sessionStorage), closed with the test; page errors fail the test. */
async function newPage(t: TestContext): Promise<{ page: Page; problems: string[] }> {
  const ctx: BrowserContext = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
  t.after(() => ctx.close());
  const page = await ctx.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // A 401 or 404 answer shows in the console as a failed resource: expected. A CSP refusal or a script error is not.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[14]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return { page, problems };
}

async function login(t: TestContext, h: Harness, playerId: string): Promise<TestClient> {
  const c = await connectTcp(h.tcpPort);
  t.after(() => c.destroy());
  await c.hello({ token: playerId });
  return c;
}

/** Sends requests one at a time (each waits for its answer) until `stop()`; resolves with how many were answered. */
function requestLoop(c: TestClient): { stop(): Promise<number> } {
  let stopped = false;
  const done = (async () => {
    let seq = 0;
    while (!stopped) {
      c.request(1, ++seq, { n: seq });
      await c.next((f) => f.type === FrameType.RESPONSE && f.seq === seq, WAIT_MS);
    }
    return seq;
  })();
  return {
    stop: () => {
      stopped = true;
      return done;
    },
  };
}

const textOf = async (page: Page, id: string): Promise<string> => (await page.locator(`#${id}`).textContent()) ?? '';

describe('dashboard in a browser', { skip: noBrowser }, () => {
  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
  });

  it('should show live figures, look a player up, send it a test push and kick it', async (t) => {
    const h = await gate(t, { gateId: 'dash-gate' });
    const c = await login(t, h, 'alice');
    const { page, problems } = await newPage(t);
    await page.goto(`${h.apiUrl}/dashboard`);
    // Loopback API without --api-key: the page opens directly, no key form.
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#key-panel').isHidden(), true, 'no key form without --api-key');

    const load = requestLoop(c);
    await page.waitForFunction(() => Number(document.getElementById('req-rate')?.textContent) > 0, null, { timeout: WAIT_MS });
    await page.waitForFunction(() => /ms$/.test(document.getElementById('req-p99')?.textContent ?? ''), null, { timeout: WAIT_MS });
    const answered = await load.stop();
    assert.ok(answered > 0);
    assert.equal(await textOf(page, 'gate-id'), 'dash-gate');
    assert.equal(await textOf(page, 'conn-tcp'), '1');
    assert.equal(await textOf(page, 'sess-online'), '1');
    assert.equal(await page.locator('#chart-reqs canvas').count(), 1, 'the requests chart is drawn');

    await page.fill('#player-id', 'alice');
    await page.click('#player-form button[type=submit]');
    await page.locator('#player-info').waitFor({ state: 'visible' });
    assert.equal(await textOf(page, 'p-state'), 'online');
    assert.equal(await textOf(page, 'p-session'), h.gate.gate.sessions.player('alice')?.sessionId);
    assert.match(await textOf(page, 'p-last'), /s ago/, 'the last REQUEST is shown');

    await page.click('#test-push');
    const p = await c.next((f) => f.type === FrameType.PUSH, WAIT_MS);
    assert.equal(p.route, 0);
    assert.equal((json(p) as { test?: unknown }).test, true);
    await page.waitForFunction(() => /test push #1 sent/.test(document.getElementById('player-message')?.textContent ?? ''), null, { timeout: WAIT_MS });

    mkdirSync('.bench-out', { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await page.click('#kick');
    const bye = await c.next((f) => f.type === FrameType.BYE, WAIT_MS);
    assert.equal((json(bye) as { code: string }).code, 'kicked');
    await page.waitForFunction(() => /kicked alice/.test(document.getElementById('player-message')?.textContent ?? ''), null, { timeout: WAIT_MS });
    assert.equal(await page.locator('#player-info').isHidden(), true, 'the kicked player has no session to show');
    assert.deepEqual(problems, []);
  });

  it('should show only the key form without the API key, refuse a wrong one, and show the figures with the right one', async (t) => {
    const key = 'sekrit-dashboard-key';
    const h = await gate(t, { apiKey: key, gateId: 'keyed-gate' });
    const { page, problems } = await newPage(t);
    const dataCalls: { url: string; auth: string | undefined }[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/v1/')) dataCalls.push({ url: r.url(), auth: r.headers().authorization });
    });
    await page.goto(`${h.apiUrl}/dashboard`);
    await page.locator('#key-form').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#dashboard').isHidden(), true);
    const shown = await page.evaluate(() => document.body.innerText);
    assert.doesNotMatch(shown, /\d/, `no figures before the key: ${shown}`);
    assert.equal(await page.evaluate(async () => (await fetch('/v1/stats/stream')).status), 401, 'the stream refuses a caller without the key');

    await page.fill('#key-input', 'not-the-key');
    await page.click('#key-form button[type=submit]');
    await page.waitForFunction(() => /not accepted/.test(document.getElementById('key-message')?.textContent ?? ''), null, { timeout: WAIT_MS });
    assert.equal(await page.locator('#dashboard').isHidden(), true, 'a wrong key shows the form again');

    await page.fill('#key-input', key);
    await page.click('#key-form button[type=submit]');
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    await page.waitForFunction(() => document.getElementById('gate-id')?.textContent === 'keyed-gate', null, { timeout: WAIT_MS });
    assert.equal(await textOf(page, 'sess-online'), '0');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('gate.apiKey')), key, 'kept for this tab');
    assert.ok(!page.url().includes(key), 'never in the URL');
    const withKey = dataCalls.filter((d) => d.auth === `Bearer ${key}`);
    assert.ok(withKey.some((d) => d.url.endsWith('/v1/stats/stream')), 'the live stream sends the key');
    assert.ok(dataCalls.every((d) => !d.url.includes(key)), 'no call carries the key in its URL');
    assert.ok(
      dataCalls.every((d) => d.auth === undefined || d.auth === `Bearer ${key}` || d.auth === 'Bearer not-the-key'),
      'every call sends the key it has as a bearer header',
    );
    assert.deepEqual(problems, []);
  });
});

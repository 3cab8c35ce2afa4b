// Takes docs/dashboard.png: a gate under some load (24 clients sending requests, pushes from the
// API, a few clients dropping to detached) shown in Debian's chromium. Not a test: run by hand after
// a change to the page, `npm run build && node scripts/dashboard-screenshot.mjs` (about a minute).
// RUN_MS sets how long the load runs before the picture, OUT where it goes.
import { chromium } from 'playwright-core';
import { startGate, api } from '../dist/spec/helpers/gateHarness.js';
import { connectTcp, connectWs } from '../dist/spec/helpers/testClient.js';
import { FrameType } from '../dist/lib/frame.js';
const RUN_MS = Number(process.env.RUN_MS ?? 50000);
let calls = 0;
const h = await startGate({ gateId: 'gate-eu-1' }, (req) => {
  const path = req.path.split('?')[0];
  if (path === '/connect') return { status: 200, body: { playerId: JSON.parse(req.body.toString()).token } };
  if (path.startsWith('/rpc/')) {
    calls++;
    const slow = Math.random() < 0.05 ? 30 + Math.random() * 60 : Math.random() * 6;
    if (Math.random() < 0.01) return { status: 500, body: 'boom' };
    return { status: 200, body: req.body, delayMs: slow };
  }
  return { status: 204 };
});
const clients = [];
for (let i = 0; i < 24; i++) {
  const c = i % 4 === 0 ? await connectWs(h.wsPort) : await connectTcp(h.tcpPort);
  await c.hello({ token: `player-${i + 1}` });
  clients.push(c);
}
const end = Date.now() + RUN_MS;
const loops = clients.map(async (c, i) => {
  let seq = 0;
  while (Date.now() < end && !c.isClosed) {
    c.request(1, ++seq, { n: seq });
    try { await c.next((f) => (f.type === FrameType.RESPONSE || f.type === FrameType.ERROR) && f.seq === seq, 5000); } catch { return; }
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 30 * (1 + Math.sin(Date.now() / 5000 + i))));
  }
});
const pusher = (async () => { while (Date.now() < end) { await api(h, 'POST', '/v1/push', { playerId: `player-${1 + Math.floor(Math.random() * 24)}`, route: 7, data: { tick: Date.now() } }); await new Promise((r) => setTimeout(r, 20)); } })();
setTimeout(() => { for (const c of clients.slice(20)) void c.destroy(); }, RUN_MS / 2);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(`${h.apiUrl}/dashboard`);
await Promise.all([...loops, pusher]);
await page.fill('#player-id', 'player-3');
await page.click('#player-form button[type=submit]');
await page.locator('#player-info').waitFor({ state: 'visible' });
await page.screenshot({ path: process.env.OUT ?? 'docs/dashboard.png', fullPage: true });
await browser.close();
for (const c of clients) await c.destroy();
await h.close();
console.log('calls', calls);

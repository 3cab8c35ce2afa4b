// The dashboard page's script (runs in the browser; tsc compiles it beside page.ts and the API
// serves dist/lib/dashboard/app.js). No framework: it fills the elements of DASHBOARD_HTML.
//
// The API key: asked for only when the API answers 401, kept in sessionStorage (this tab only),
// and sent as `Authorization: Bearer` on every call, the live stream included. EventSource
// cannot send headers, so the stream is read with fetch() and a body reader. The key never goes
// into a URL (nothing logs it) and the key form is never submitted as a form.
import type UPlot from 'uplot';
import type { PlayerInfo } from '../session/sessions.js';
import type { StatsSample } from '../streams/stats.js';

/** uPlot's IIFE build, loaded before this script (/dashboard/uPlot.iife.min.js). */
declare const uPlot: typeof UPlot;

const KEY_STORAGE = 'gate.apiKey';
/** Samples each chart keeps: five minutes at one a second. */
const HISTORY = 300;
/** Shortest time span a chart shows, seconds. */
const MIN_WINDOW_S = 60;
/** Wait before opening the stream again after it ended or failed, ms. */
const RETRY_MS = 2_000;
/** Most unparsed text kept from the stream: a server event is far smaller; past this the text is dropped. */
const MAX_PENDING_CHARS = 1 << 20;

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`dashboard: no #${id} in the page`);
  return e as T;
}

const text = (id: string, v: string): void => {
  el(id).textContent = v;
};

/** The key in use; null when the API needs none or none was entered yet. */
let apiKey: string | null = sessionStorage.getItem(KEY_STORAGE);
/** The open live stream's controller; replaced (and the old one aborted) at each connect. */
let stream: AbortController | null = null;
/** This gate's id, from the samples. */
let gateId = '';

const authHeaders = (): Record<string, string> => (apiKey ? { authorization: `Bearer ${apiKey}` } : {});

interface Answer {
  status: number;
  body: unknown;
}

async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? authHeaders() : { ...authHeaders(), 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
    cache: 'no-store',
  });
  let parsed: unknown;
  try {
    parsed = await res.json();
  } catch {
    parsed = null; // not JSON: the status says it
  }
  if (res.status === 401) lockOut('The API key was not accepted: enter it again.');
  return { status: res.status, body: parsed };
}

const messageOf = (a: Answer): string => {
  const b = a.body as { message?: unknown } | null;
  return typeof b?.message === 'string' ? b.message : `HTTP ${a.status}`;
};

function setStatus(s: string, cls: '' | 'live' | 'down' = ''): void {
  const e = el('status');
  e.textContent = s;
  e.className = `status ${cls}`;
}

// ---------------------------------------------------------------- the key

/** Shows only the key form (nothing of the gate's figures stays on the page). */
function lockOut(message: string): void {
  stream?.abort();
  stream = null;
  apiKey = null;
  sessionStorage.removeItem(KEY_STORAGE);
  el('dashboard').hidden = true;
  el('forget-key').hidden = true;
  el('key-panel').hidden = false;
  text('gate-id', '');
  text('key-message', message);
  setStatus('API key needed');
  el<HTMLInputElement>('key-input').focus();
}

el('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = el<HTMLInputElement>('key-input');
  const k = input.value.trim();
  input.value = '';
  if (!k) return;
  apiKey = k;
  sessionStorage.setItem(KEY_STORAGE, k);
  text('key-message', '');
  void open();
});

el('forget-key').addEventListener('click', () => lockOut(''));

/** Asks the API whether it lets us in (no key needed, or the kept key is right), then shows the dashboard. */
async function open(): Promise<void> {
  setStatus('connecting…');
  let a: Answer;
  try {
    a = await call('GET', '/v1/stats');
  } catch {
    setStatus('gate unreachable; trying again', 'down');
    setTimeout(() => void open(), RETRY_MS);
    return;
  }
  if (a.status === 401) return; // call() showed the key form
  if (a.status !== 200) {
    setStatus(`gate answered: ${messageOf(a)}; trying again`, 'down');
    setTimeout(() => void open(), RETRY_MS);
    return;
  }
  el('key-panel').hidden = true;
  el('dashboard').hidden = false;
  el('forget-key').hidden = apiKey === null;
  void connect();
}

// ---------------------------------------------------------------- the live stream

/** Reads /v1/stats/stream until it ends, then opens it again (unless a 401 locked the page). */
async function connect(): Promise<void> {
  stream?.abort();
  const ctl = new AbortController();
  stream = ctl;
  try {
    const res = await fetch('/v1/stats/stream', { headers: { ...authHeaders(), accept: 'text/event-stream' }, signal: ctl.signal, cache: 'no-store' });
    if (res.status === 401) {
      lockOut('The API key was not accepted: enter it again.');
      return;
    }
    if (!res.ok || !res.body) {
      let why = `HTTP ${res.status}`;
      try {
        why = ((await res.json()) as { message?: string }).message ?? why;
      } catch {
        // not JSON: the status says it
      }
      throw new Error(why);
    }
    setStatus('live', 'live');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let pending = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      pending += value;
      let end: number;
      while ((end = pending.indexOf('\n\n')) >= 0) {
        onEvent(pending.slice(0, end));
        pending = pending.slice(end + 2);
      }
      if (pending.length > MAX_PENDING_CHARS) pending = '';
    }
    if (stream === ctl) setStatus('stream ended; reconnecting…', 'down');
  } catch (e) {
    if (ctl.signal.aborted) return;
    setStatus(`stream failed (${(e as Error).message}); reconnecting…`, 'down');
  }
  if (stream !== ctl) return;
  setTimeout(() => {
    if (stream === ctl) void connect();
  }, RETRY_MS);
}

function onEvent(ev: string): void {
  for (const line of ev.split('\n')) if (line.startsWith('data: ')) render(JSON.parse(line.slice(6)) as StatsSample);
}

// ---------------------------------------------------------------- rendering

const fmtRate = (n: number): string => (n === 0 ? '0' : n < 10 ? n.toFixed(1) : String(Math.round(n)));
const fmtMs = (n: number | null): string => (n === null ? '–' : n < 10 ? `${n.toFixed(1)} ms` : `${Math.round(n)} ms`);
const sumOf = (r: Readonly<Record<string, number>>): number => Object.values(r).reduce((a, b) => a + b, 0);

/** One chart: its uPlot and its columns (x = seconds since the epoch, then one per series). */
interface Chart {
  plot: UPlot | null;
  readonly data: (number | null)[][];
  readonly labels: readonly string[];
  readonly colors: readonly string[];
  readonly target: string;
}

const chart = (target: string, labels: string[], colors: string[]): Chart => ({ plot: null, data: [[], ...labels.map(() => [])], labels, colors, target });

const charts = {
  conns: chart('chart-conns', ['TCP', 'WS', 'online', 'detached'], ['#2f6fdb', '#8e44ad', '#1e8449', '#d68910']),
  reqs: chart('chart-reqs', ['requests/s', 'errors/s'], ['#2f6fdb', '#c0392b']),
  latency: chart('chart-latency', ['p50', 'p99'], ['#1e8449', '#c0392b']),
  pushes: chart('chart-pushes', ['sent/s', 'buffered/s'], ['#2f6fdb', '#d68910']),
  load: chart('chart-load', ['workers busy', 'queued', 'events queued'], ['#2f6fdb', '#c0392b', '#8e44ad']),
};

const chartWidth = (c: Chart): number => Math.max(300, el(c.target).clientWidth - 8);

function plot(c: Chart, x: number, ys: (number | null)[]): void {
  c.data[0]!.push(x);
  ys.forEach((y, i) => c.data[i + 1]!.push(y));
  if (c.data[0]!.length > HISTORY) for (const col of c.data) col.shift();
  if (!c.plot) {
    c.plot = new uPlot(
      {
        width: chartWidth(c),
        height: 170,
        series: [{}, ...c.labels.map((label, i) => ({ label, stroke: c.colors[i], width: 1.5, spanGaps: false }))],
        axes: [{}, { size: 50 }],
        scales: {
          // A window of at least a minute ending at the newest sample, so the first few points do not span the axis.
          x: { time: true, range: (_u, min, max) => [Math.min(min, max - MIN_WINDOW_S), max] },
          y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
        },
        legend: { live: false },
      },
      c.data as UPlot.AlignedData,
      el(c.target),
    );
  } else c.plot.setData(c.data as UPlot.AlignedData);
}

window.addEventListener('resize', () => {
  for (const c of Object.values(charts)) c.plot?.setSize({ width: chartWidth(c), height: 170 });
});

function fillTable(id: string, rows: string[][]): void {
  const body = el<HTMLTableElement>(id).tBodies[0]!;
  body.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement('tr');
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = c; // text, never HTML: codes and ids come from the network
        tr.append(td);
      }
      return tr;
    }),
  );
}

function render(s: StatsSample): void {
  gateId = s.gateId;
  text('gate-id', s.gateId);
  const r = s.requests;
  const errs = sumOf(r.errorsPerSec);
  text('conn-total', String(s.connections.tcp + s.connections.ws));
  text('conn-tcp', String(s.connections.tcp));
  text('conn-ws', String(s.connections.ws));
  text('sess-online', String(s.sessions.online));
  text('sess-detached', String(s.sessions.detached));
  text('req-rate', fmtRate(r.perSec));
  text('req-p50', fmtMs(r.p50Ms));
  text('req-p99', fmtMs(r.p99Ms));
  text('err-rate', fmtRate(errs));
  text('push-sent', fmtRate(s.pushes.sentPerSec));
  text('push-buffered', fmtRate(s.pushes.bufferedPerSec));
  text('push-kept', String(s.sessions.buffered));
  text('workers-busy', String(s.workers.busy));
  text('workers-max', String(s.workers.max));
  text('queued', String(s.workers.queued));
  text('events-queued', s.eventsQueued === null ? 'in Redis' : String(s.eventsQueued));
  text('slow-total', String(s.slowConsumers.total));
  text('proto-total', String(s.protocolErrors.total));

  const codes = Object.keys(r.errorsTotal).sort();
  fillTable('errors', codes.map((c) => [c, fmtRate(r.errorsPerSec[c] ?? 0), String(r.errorsTotal[c])]));
  el('errors-none').hidden = codes.length > 0;
  el('gates-panel').hidden = s.gates === null;
  if (s.gates) fillTable('gates', s.gates.map((g) => [g.gateId, g.member, String(g.connections), String(g.sessions), g.api ?? '']));

  const x = s.at / 1000;
  plot(charts.conns, x, [s.connections.tcp, s.connections.ws, s.sessions.online, s.sessions.detached]);
  plot(charts.reqs, x, [r.perSec, errs]);
  plot(charts.latency, x, [r.p50Ms, r.p99Ms]);
  plot(charts.pushes, x, [s.pushes.sentPerSec, s.pushes.bufferedPerSec]);
  plot(charts.load, x, [s.workers.busy, s.workers.queued, s.eventsQueued]);
}

// ---------------------------------------------------------------- player lookup

/** The player shown, as last looked up; null when none. */
let shown: string | null = null;

function playerMessage(m: string, bad = false): void {
  const e = el('player-message');
  e.textContent = m;
  e.className = bad ? 'error' : '';
}

function lastRequest(p: PlayerInfo): string {
  if (p.lastRequestAt === null)
    return p.gateId === gateId || p.gateId === '' ? 'none yet' : `not known here (the session is held by ${p.gateId}; ask its dashboard)`;
  const ago = Math.max(0, Math.round((Date.now() - p.lastRequestAt) / 1000));
  return `${ago} s ago (${new Date(p.lastRequestAt).toLocaleTimeString()})`;
}

async function lookUp(playerId: string): Promise<void> {
  const a = await call('GET', `/v1/players/${encodeURIComponent(playerId)}`);
  if (a.status === 401) return;
  const found = a.status === 200;
  el('player-info').hidden = !found;
  el('player-actions').hidden = !found;
  shown = found ? playerId : null;
  if (!found) {
    playerMessage(a.status === 404 ? `no session for player ${playerId}` : messageOf(a), a.status !== 404);
    return;
  }
  const p = a.body as PlayerInfo;
  text('p-state', p.state);
  text('p-session', p.sessionId);
  text('p-buffered', String(p.buffered));
  text('p-seq', String(p.pushSeq));
  text('p-gate', p.gateId || '(none)');
  text('p-last', lastRequest(p));
  playerMessage('');
}

el('player-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = el<HTMLInputElement>('player-id').value.trim();
  if (id) lookUp(id).catch((e: unknown) => playerMessage(`lookup failed: ${(e as Error).message}`, true));
});

el('kick').addEventListener('click', () => {
  const id = shown;
  if (id === null) return;
  call('POST', '/v1/kick', { playerId: id, reason: 'kicked from the gate dashboard' })
    .then(async (a) => {
      if (a.status === 401) return;
      await lookUp(id);
      playerMessage(a.status === 200 ? `kicked ${id}` : messageOf(a), a.status !== 200);
    })
    .catch((e: unknown) => playerMessage(`kick failed: ${(e as Error).message}`, true));
});

el('test-push').addEventListener('click', () => {
  const id = shown;
  if (id === null) return;
  const route = Number(el<HTMLInputElement>('push-route').value || 0);
  call('POST', '/v1/push', { playerId: id, route, data: { test: true, from: 'gate dashboard', at: Date.now() } })
    .then(async (a) => {
      if (a.status === 401) return;
      const r = a.body as { seq?: number; status?: string } | null;
      await lookUp(id);
      playerMessage(a.status === 200 ? `test push #${r?.seq} ${r?.status} to ${id}` : messageOf(a), a.status !== 200);
    })
    .catch((e: unknown) => playerMessage(`push failed: ${(e as Error).message}`, true));
});

void open();

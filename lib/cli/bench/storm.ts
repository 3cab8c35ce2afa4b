// The `storm` scenario (issue 11): what a gate restart or a load-balancer failover does to a gate.
// N clients (source addresses 127.0.0.1–4) log in `window` at a time; once every one has its
// WELCOME and the server has settled, every link is cut at once and every client resumes its
// session, `window` at a time. Links are cut with a TCP reset (as a dropped network or a dead
// balancer does), which also leaves no client port in TIME_WAIT to slow the next run. Per phase: logins (or resumes) per second, time from dial to
// WELCOME, errors by code, and the server's CPU; plus the server's RSS before, after the logins
// and per connection, as the machine pays it (VmRSS, no forced GC).
import { LoginRefused, connectClient, cpuUs, latencyOf, progressLine, readServerStats, rssBytes, sleep, type BenchClient, type HostPort, type Latency, type Transport } from './common.js';
import { createHistogram } from 'node:perf_hooks';
import { FrameType, frame } from '../../frame.js';

/** Most one login or resume may take, ms: past it, it counts as an error (`timeout`). */
const WELCOME_TIMEOUT_MS = 30_000;
/** Most the server may take to see every cut link (sessions detached), ms. */
const DETACH_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
const PING = frame(FrameType.PING, 0);

export interface StormOptions {
  transport: Transport;
  at: HostPort;
  /** The server's API (/v1/stats: every cut link seen before the resumes); null for a baseline without one. */
  api: HostPort | null;
  apiKey: string | null;
  clients: number;
  window: number;
  /** Wait after the last WELCOME before the RSS sample, ms. */
  settleMs: number;
  /** The server process (RSS and CPU from /proc); null when unknown. */
  serverPid: number | null;
  /** Token prefix: tokens are `<prefix><i>`. */
  tokenPrefix?: string;
  progress: boolean;
  log: (s: string) => void;
}

export interface StormPhase {
  /** Logins (or resumes) that got their WELCOME (a resume: with `resumed: true`). */
  ok: number;
  seconds: number;
  /** ok per second over the phase. */
  rate: number;
  /** Dial to WELCOME. */
  welcomeMs: Latency;
  errors: number;
  errorCodes: Record<string, number>;
  /** Server CPU over the phase, s (NaN: unknown). */
  cpuSeconds: number;
}

export interface StormResult {
  scenario: 'storm';
  transport: Transport;
  clients: number;
  window: number;
  login: StormPhase;
  resume: StormPhase;
  rssBeforeMb: number | null;
  rssAfterLoginMb: number | null;
  /** (RSS settled after the logins − RSS before) / clients, KB. */
  rssPerConnKb: number | null;
  rssAfterResumeMb: number | null;
  /** From the cut until the server saw every link go (null: not watched). */
  detachMs: number | null;
}

const mb = (b: number | null): number | null => (b === null ? null : Math.round((b / 1048576) * 100) / 100);

function codeOf(e: unknown): string {
  if (e instanceof LoginRefused) return e.code;
  const err = e as Error & { code?: string };
  if (err.code) return err.code;
  if (/no WELCOME within/.test(err.message)) return 'timeout';
  if (/closed before WELCOME/.test(err.message)) return 'closed';
  return 'error';
}

/**
 * Runs `n` dials, `window` at a time. Each resolves with a client (kept in `out[i]`) or counts
 * an error; `accept` may reject a WELCOME (a resume that started a fresh session).
 */
async function phase(
  o: StormOptions,
  name: 'login' | 'resume',
  dial: (i: number) => Promise<BenchClient>,
  accept: (c: BenchClient) => string | null,
  out: (BenchClient | null)[],
): Promise<StormPhase> {
  const hist = createHistogram();
  const errorCodes: Record<string, number> = {};
  let next = 0;
  let ok = 0;
  let errors = 0;
  let last = 0;
  const stop = progressLine(o.progress, o.log, () => {
    const r = ok - last;
    last = ok;
    return `storm/${o.transport} ${name}  ${(ok + errors).toLocaleString('en-US')}/${o.clients.toLocaleString('en-US')}  ${r.toLocaleString('en-US')}/s  p99 ${latencyOf(hist).p99} ms  errors ${errors}`;
  });
  const cpu0 = cpuUs(o.serverPid ?? undefined);
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (next < o.clients) {
      const i = next++;
      const d0 = performance.now();
      try {
        const c = await dial(i);
        const bad = accept(c);
        if (bad !== null) {
          c.reset();
          errors++;
          errorCodes[bad] = (errorCodes[bad] ?? 0) + 1;
          continue;
        }
        hist.record(Math.max(1, Math.round((performance.now() - d0) * 1e6)));
        out[i] = c;
        ok++;
      } catch (e) {
        errors++;
        const code = codeOf(e);
        errorCodes[code] = (errorCodes[code] ?? 0) + 1;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(o.window, o.clients) }, lane));
  } finally {
    stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = cpuUs(o.serverPid ?? undefined);
  return { ok, seconds: Math.round(seconds * 100) / 100, rate: Math.round(ok / seconds), welcomeMs: latencyOf(hist), errors, errorCodes, cpuSeconds: Math.round((cpu1 - cpu0) / 1e4) / 100 };
}

/** Polls /v1/stats until the server holds no link and no online session. */
async function allDetached(o: StormOptions): Promise<number | null> {
  if (!o.api) return null;
  const t0 = Date.now();
  for (;;) {
    const j = await readServerStats(o.api, o.apiKey);
    if (j.connections === 0 && j.online === 0) return Date.now() - t0;
    if (Date.now() - t0 > DETACH_TIMEOUT_MS) throw new Error(`the server still had ${j.connections} links and ${j.online} online sessions ${DETACH_TIMEOUT_MS / 1000} s after every link was cut`);
    await sleep(POLL_MS);
  }
}

export async function runStorm(o: StormOptions): Promise<StormResult> {
  const prefix = o.tokenPrefix ?? 'storm-';
  const pid = o.serverPid ?? undefined;
  const clients: (BenchClient | null)[] = new Array<BenchClient | null>(o.clients).fill(null);
  // Links idle past the heartbeat get a PING (the server drops a link silent for 3 heartbeats).
  const lastSent = new Float64Array(o.clients);
  const keepAlive = setInterval(() => {
    const now = performance.now();
    for (let i = 0; i < clients.length; i++) {
      const c = clients[i];
      if (c && !c.closed && now - lastSent[i]! > c.welcome.heartbeatMs / 2) {
        c.send(PING);
        lastSent[i] = now;
      }
    }
  }, 1_000);
  try {
    const rssBefore = rssBytes(pid);
    const login = await phase(
      o,
      'login',
      (i) => connectClient(o.transport, o.at, i, WELCOME_TIMEOUT_MS, { token: `${prefix}${i}` }).then((c) => ((lastSent[i] = performance.now()), c)),
      () => null,
      clients,
    );
    await sleep(o.settleMs);
    const rssAfterLogin = rssBytes(pid);
    // The storm: every link cut at once, as a restart or failover would.
    const sessions = clients.map((c) => (c ? { token: c.playerId, resume: { sessionId: c.welcome.sessionId, resumeToken: c.welcome.resumeToken, lastSeq: c.welcome.lastSeq } } : null));
    for (const c of clients) c?.reset();
    clients.fill(null);
    const detachMs = await allDetached(o);
    const resume = await phase(
      o,
      'resume',
      (i) => {
        const s = sessions[i];
        if (!s) return Promise.reject(new LoginRefused('no session to resume (its login failed)', 'no_session'));
        return connectClient(o.transport, o.at, i, WELCOME_TIMEOUT_MS, s).then((c) => ((lastSent[i] = performance.now()), c));
      },
      (c) => (c.welcome.resumed ? null : 'fresh'),
      clients,
    );
    const rssAfterResume = rssBytes(pid);
    return {
      scenario: 'storm',
      transport: o.transport,
      clients: o.clients,
      window: o.window,
      login,
      resume,
      rssBeforeMb: mb(rssBefore),
      rssAfterLoginMb: mb(rssAfterLogin),
      rssPerConnKb: rssBefore === null || rssAfterLogin === null || login.ok === 0 ? null : Math.round(((rssAfterLogin - rssBefore) / login.ok / 1024) * 100) / 100,
      rssAfterResumeMb: mb(rssAfterResume),
      detachMs,
    };
  } finally {
    clearInterval(keepAlive);
    for (const c of clients) c?.reset();
  }
}

export function stormOk(r: StormResult): boolean {
  return r.login.errors === 0 && r.resume.errors === 0;
}

export function stormRows(r: StormResult): [string, string][] {
  const errs = (p: StormPhase): string => (p.errors === 0 ? '0' : `${p.errors} ${JSON.stringify(p.errorCodes)}`);
  const cpu = (p: StormPhase): string => (Number.isFinite(p.cpuSeconds) ? `${p.cpuSeconds} s (${Math.round((p.cpuSeconds * 1e6) / Math.max(1, p.ok))} µs each)` : 'n/a');
  return [
    ['scenario', `storm over ${r.transport}: ${r.clients.toLocaleString('en-US')} logins ${r.window} at a time, every link cut, every session resumed`],
    ['logins/s', `${r.login.rate.toLocaleString('en-US')} (${r.login.ok.toLocaleString('en-US')} in ${r.login.seconds} s)`],
    ['login: dial to WELCOME p50 / p99 / max', `${r.login.welcomeMs.p50} / ${r.login.welcomeMs.p99} / ${r.login.welcomeMs.max} ms`],
    ['login errors', errs(r.login)],
    ['server CPU, logins', cpu(r.login)],
    ['resumes/s', `${r.resume.rate.toLocaleString('en-US')} (${r.resume.ok.toLocaleString('en-US')} in ${r.resume.seconds} s)`],
    ['resume: dial to WELCOME p50 / p99 / max', `${r.resume.welcomeMs.p50} / ${r.resume.welcomeMs.p99} / ${r.resume.welcomeMs.max} ms`],
    ['resume errors', errs(r.resume)],
    ['server CPU, resumes', cpu(r.resume)],
    ['server RSS before / after logins / after resumes', `${r.rssBeforeMb ?? 'n/a'} / ${r.rssAfterLoginMb ?? 'n/a'} / ${r.rssAfterResumeMb ?? 'n/a'} MB`],
    ['server RSS per logged-in connection', r.rssPerConnKb === null ? 'n/a' : `${r.rssPerConnKb} KB (VmRSS, no forced GC)`],
    ['cut to every link seen gone', r.detachMs === null ? 'not watched (no API)' : `${r.detachMs} ms`],
  ];
}

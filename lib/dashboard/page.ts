// The dashboard's page and style sheet, as string constants so tsc carries them to dist/ (as
// the cluster's Lua scripts are carried); its script is app.ts, compiled beside this file.
// The page holds no figures: until the API key is accepted (or none is needed) only the key
// form shows, and everything else is filled in by app.js from calls that send the key.

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>gate dashboard</title>
<link rel="stylesheet" href="/dashboard/uPlot.min.css">
<link rel="stylesheet" href="/dashboard/dashboard.css">
<script src="/dashboard/uPlot.iife.min.js" defer></script>
<script type="module" src="/dashboard/app.js"></script>
</head>
<body>
<header>
  <h1>gate <span id="gate-id"></span></h1>
  <span id="status" class="status">connecting…</span>
  <button id="forget-key" type="button" hidden>Forget key</button>
</header>

<section id="key-panel" hidden>
  <form id="key-form" autocomplete="off">
    <h2>API key</h2>
    <p>This gate's API needs its key (<code>--api-key</code>). It is kept in this tab only (sessionStorage) and sent as <code>Authorization: Bearer</code>.</p>
    <input id="key-input" type="password" name="key" placeholder="API key" required autocomplete="off" spellcheck="false">
    <button type="submit">Open</button>
    <p id="key-message" class="error" role="alert"></p>
  </form>
</section>

<main id="dashboard" hidden>
  <section class="tiles">
    <div class="tile"><h3>Connections</h3><b id="conn-total">–</b><small>TCP <span id="conn-tcp">–</span> · WS <span id="conn-ws">–</span></small></div>
    <div class="tile"><h3>Sessions</h3><b id="sess-online">–</b><small>online · <span id="sess-detached">–</span> detached</small></div>
    <div class="tile"><h3>Requests/s</h3><b id="req-rate">–</b><small>upstream p50 <span id="req-p50">–</span> · p99 <span id="req-p99">–</span></small></div>
    <div class="tile"><h3>Errors/s</h3><b id="err-rate">–</b><small>by code below</small></div>
    <div class="tile"><h3>Pushes/s</h3><b id="push-sent">–</b><small>sent · <span id="push-buffered">–</span> buffered · <span id="push-kept">–</span> kept</small></div>
    <div class="tile"><h3>Workers</h3><b id="workers-busy">–</b><small>busy of <span id="workers-max">–</span> · <span id="queued">–</span> queued</small></div>
    <div class="tile"><h3>Event queue</h3><b id="events-queued">–</b><small>backend events waiting</small></div>
    <div class="tile"><h3>Slow consumers</h3><b id="slow-total">–</b><small>protocol errors <span id="proto-total">–</span></small></div>
  </section>

  <section class="charts">
    <figure><figcaption>Connections and sessions</figcaption><div id="chart-conns" class="chart"></div></figure>
    <figure><figcaption>Requests/s and errors/s</figcaption><div id="chart-reqs" class="chart"></div></figure>
    <figure><figcaption>Upstream time, ms (p50, p99)</figcaption><div id="chart-latency" class="chart"></div></figure>
    <figure><figcaption>Pushes/s</figcaption><div id="chart-pushes" class="chart"></div></figure>
    <figure><figcaption>Workers busy, requests queued, events queued</figcaption><div id="chart-load" class="chart"></div></figure>
  </section>

  <section class="tables">
    <div>
      <h2>Errors by code</h2>
      <table id="errors"><thead><tr><th>outcome</th><th>per s</th><th>since start</th></tr></thead><tbody></tbody></table>
      <p id="errors-none" class="muted">none yet</p>
    </div>
    <div id="gates-panel" hidden>
      <h2>Gates in the cluster</h2>
      <table id="gates"><thead><tr><th>gate</th><th>member</th><th>connections</th><th>sessions</th><th>API</th></tr></thead><tbody></tbody></table>
    </div>
  </section>

  <section class="player">
    <h2>Player</h2>
    <form id="player-form" autocomplete="off">
      <input id="player-id" name="playerId" placeholder="player id" required maxlength="128" spellcheck="false">
      <button type="submit">Look up</button>
    </form>
    <dl id="player-info" hidden>
      <dt>state</dt><dd id="p-state"></dd>
      <dt>session</dt><dd id="p-session"></dd>
      <dt>pushes buffered</dt><dd id="p-buffered"></dd>
      <dt>last push seq</dt><dd id="p-seq"></dd>
      <dt>gate</dt><dd id="p-gate"></dd>
      <dt>last request</dt><dd id="p-last"></dd>
    </dl>
    <div id="player-actions" hidden>
      <button id="kick" type="button" class="danger">Kick</button>
      <label>route <input id="push-route" type="number" min="0" max="65535" value="0"></label>
      <button id="test-push" type="button">Send test push</button>
    </div>
    <p id="player-message" role="status"></p>
  </section>
</main>
</body>
</html>
`;

export const DASHBOARD_CSS = `:root { color-scheme: light; --fg: #1d2330; --muted: #6b7385; --line: #dde1ea; --bg: #f5f6f9; --card: #fff; --accent: #2f6fdb; --bad: #c0392b; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 1rem; padding: .6rem 1.2rem; background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.1rem; margin: 0; }
header h1 span { color: var(--muted); font-weight: normal; }
.status { font-size: .85rem; color: var(--muted); }
.status.live { color: #1e8449; }
.status.down { color: var(--bad); }
header button { margin-left: auto; }
main, #key-panel { padding: 1rem 1.2rem; }
#key-form { max-width: 28rem; margin: 3rem auto; padding: 1.2rem; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
#key-form input { width: 100%; margin: .4rem 0 .6rem; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr)); gap: .6rem; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .5rem .7rem; }
.tile h3 { font-size: .75rem; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0; }
.tile b { display: block; font-size: 1.6rem; font-variant-numeric: tabular-nums; }
.tile small { color: var(--muted); font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(26rem, 1fr)); gap: .6rem; margin-top: .8rem; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .4rem; }
figcaption { font-size: .8rem; color: var(--muted); padding: 0 .3rem .2rem; }
.chart { min-height: 190px; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr)); gap: .6rem; margin-top: .8rem; }
.tables > div, .player { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; }
.player { margin-top: .8rem; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .2rem .5rem .2rem 0; border-bottom: 1px solid var(--line); }
th { font-size: .75rem; color: var(--muted); font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: .6rem 0; }
dt { color: var(--muted); }
dd { margin: 0; font-family: ui-monospace, monospace; }
input, button { font: inherit; padding: .3rem .5rem; border: 1px solid var(--line); border-radius: 4px; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
button.danger { background: var(--bad); border-color: var(--bad); }
#push-route { width: 5rem; }
#player-actions { display: flex; gap: .6rem; align-items: center; }
.error { color: var(--bad); }
.muted { color: var(--muted); }
`;

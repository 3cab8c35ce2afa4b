// Is HTTP/2 to the backend (h2c: undici's allowH2 + useH2c, every call a stream of one session)
// cheaper per call than the HTTP/1.1 keep-alive pool the gate uses? The client's CPU per 64-byte
// POST, 256 calls in flight, through the same `dispatch` handler the gate's RpcClient uses, against
// a node:http (or node:http2) echo server on core 1. Usage (pinned to core 0 by the caller):
//   taskset -c 0 node dist/bench/h1VsH2c.js [h1|h2c] [seconds=4]
import { spawn } from 'node:child_process';
import { Client, Pool, type Dispatcher } from 'undici';

const mode = process.argv[2] === 'h2c' ? 'h2c' : 'h1';
const seconds = Number(process.argv[3] ?? 4);
const IN_FLIGHT = 256;

const echoServer =
  mode === 'h2c'
    ? `const s = require('node:http2').createServer({ settings: { maxConcurrentStreams: 1000 } });
       s.on('stream', (st) => { const parts = []; st.on('data', (c) => parts.push(c)); st.on('end', () => { st.respond({ ':status': 200, 'content-type': 'application/octet-stream' }); st.end(Buffer.concat(parts)); }); });
       s.listen(0, '127.0.0.1', () => console.log(s.address().port));`
    : `const s = require('node:http').createServer((q, r) => { const parts = []; q.on('data', (c) => parts.push(c)); q.on('end', () => { r.writeHead(200, { 'content-type': 'application/octet-stream' }); r.end(Buffer.concat(parts)); }); });
       s.keepAliveTimeout = 30000; s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;
// The server ends with this process: its stdin is our pipe.
const child = spawn('taskset', ['-c', '1', process.execPath, '-e', `${echoServer} process.stdin.on('end', () => process.exit(0)).resume();`], { stdio: ['pipe', 'pipe', 'inherit'] });
const port = await new Promise<number>((resolve, reject) => {
  child.once('error', reject);
  child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString())));
});
const origin = `http://127.0.0.1:${port}`;
// useH2c (HTTP/2 without TLS, by prior knowledge) is in undici 7's Client but not in its types.
const h2cOptions = { allowH2: true, useH2c: true, maxConcurrentStreams: 1000, pipelining: 1000, headersTimeout: 0, bodyTimeout: 0 };
const dispatcher: Dispatcher =
  mode === 'h2c'
    ? new Client(origin, h2cOptions)
    : new Pool(origin, { connections: IN_FLIGHT, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });
const body = Buffer.alloc(64, 0x61);
const headers = { 'x-gate-id': 'bench', 'x-player-id': 'p', 'x-session-id': 's', 'x-request-id': 's.1', 'content-type': 'application/octet-stream' };
let done = 0;
let errors = 0;
let running = true;

const call = (): Promise<void> =>
  new Promise((resolve) => {
    const handler: Dispatcher.DispatchHandler = {
      onConnect: () => undefined,
      onHeaders: () => true,
      onData: () => true,
      onComplete: () => resolve(),
      onError: () => {
        errors++;
        resolve();
      },
    };
    dispatcher.dispatch({ method: 'POST', path: '/rpc/5', headers, body }, handler);
  });
const loop = async (): Promise<void> => {
  while (running) {
    await call();
    done++;
  }
};
const loops = Array.from({ length: IN_FLIGHT }, loop);
await new Promise((r) => setTimeout(r, 1_500)); // warm-up
const d0 = done;
const u0 = process.cpuUsage();
await new Promise((r) => setTimeout(r, seconds * 1_000));
const u = process.cpuUsage(u0);
const n = done - d0;
running = false;
await Promise.all(loops);
console.log(`${mode}: ${Math.round(n / seconds)} calls/s, client CPU ${((u.user + u.system) / n).toFixed(1)} µs per call, ${errors} errors`);
await dispatcher.close();
child.stdin.end();

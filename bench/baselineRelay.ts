// The request-path baseline for `npm run bench`: the least a TCP→HTTP relay must do, in plain
// Node with undici. It accepts TCP (length-prefixed frames, §2.1) and WebSocket (one binary
// message per frame), answers HELLO with a WELCOME (token = player id, no checks), PING with PONG, and forwards each REQUEST to
// `POST {backend}/rpc/{route}` with the gate's headers, writing the RESPONSE (or ERROR) back.
// Like the gate at --player-concurrency 1, one connection's requests run one at a time, in
// order; all connections share one undici Pool of --workers sockets. No sessions, no replay
// buffer, no dedupe, no metrics, no logs. Usage:
//   node dist/bench/baselineRelay.js --backend http://127.0.0.1:PORT [--port 0] [--ws-port 0] [--workers 256]
// Prints {"tcp":"127.0.0.1:PORT","ws":"127.0.0.1:PORT"} on stdout when listening.
import { createServer, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { WebSocketServer } from 'ws';
import { FrameType, encodeFrame, frame, type Frame } from '../lib/frame.js';
import { FrameDecoder } from '../lib/frameDecoder.js';
import { onParentGone } from '../lib/parentWatch.js';
import { onWsFrames } from './wsFrames.js';

const { values } = parseArgs({ options: { backend: { type: 'string' }, port: { type: 'string', default: '0' }, 'ws-port': { type: 'string', default: '0' }, workers: { type: 'string', default: '256' } } });
if (!values.backend) {
  process.stderr.write('baselineRelay: --backend url is required\n');
  process.exit(2);
}
const origin = new URL(values.backend);
const pool = new Pool(origin.origin, { connections: Number(values.workers), pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });
const MAX_FRAME = 256 * 1024;

interface Job {
  route: number;
  seq: number;
  body: Buffer;
}

/** One client link, either transport: `send` writes one frame (TCP: length-prefixed; WS: one message). */
function serveLink(send: (f: Frame) => void): (f: Frame) => void {
  const sessionId = randomUUID();
  let playerId: string | null = null;
  const queue: Job[] = [];
  let busy = false;
  const headers = (seq: number): Record<string, string> => ({
    'x-gate-id': 'baseline',
    'x-player-id': playerId ?? '',
    'x-session-id': sessionId,
    'x-request-id': `${sessionId}.${seq}`,
    'content-type': 'application/octet-stream',
  });
  const run = async (j: Job): Promise<void> => {
    try {
      const res = await pool.request({ method: 'POST', path: `/rpc/${j.route}`, headers: headers(j.seq), body: j.body });
      const chunks: Buffer[] = [];
      for await (const c of res.body) chunks.push(c as Buffer);
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (j.seq === 0) return;
      if (res.statusCode >= 200 && res.statusCode < 300) send(frame(FrameType.RESPONSE, j.seq, body, j.route));
      else send(frame(FrameType.ERROR, j.seq, Buffer.from(JSON.stringify({ code: 'UPSTREAM_STATUS', message: 'backend error', status: res.statusCode })), j.route));
    } catch (e) {
      if (j.seq !== 0)
        send(frame(FrameType.ERROR, j.seq, Buffer.from(JSON.stringify({ code: 'UPSTREAM_UNAVAILABLE', message: (e as Error).message })), j.route));
    }
  };
  const pump = async (): Promise<void> => {
    busy = true;
    for (let j = queue.shift(); j; j = queue.shift()) await run(j);
    busy = false;
  };
  const onFrame = (f: Frame): void => {
    switch (f.type) {
      case FrameType.HELLO: {
        let token = '';
        try {
          const t = (JSON.parse(f.body.toString()) as { token?: unknown }).token;
          if (typeof t === 'string') token = t;
        } catch {
          /* anonymous */
        }
        playerId = token || sessionId;
        const welcome = { playerId, sessionId, resumeToken: 'x', gateId: 'baseline', heartbeatMs: 15_000, resumed: false, gap: false, lastSeq: 0 };
        send(frame(FrameType.WELCOME, 0, Buffer.from(JSON.stringify(welcome))));
        return;
      }
      case FrameType.PING:
        send(frame(FrameType.PONG, f.seq));
        return;
      case FrameType.REQUEST:
        // The frame's body is a view of the receive chunk: copy it, as the gate does.
        queue.push({ route: f.route, seq: f.seq, body: Buffer.from(f.body) });
        if (!busy) void pump();
        return;
      default:
        return;
    }
  };
  return onFrame;
}

function serveTcp(socket: Socket): void {
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  const decoder = new FrameDecoder(MAX_FRAME);
  const onFrame = serveLink((f) => void socket.write(encodeFrame(f, true)));
  socket.on('data', (chunk: Buffer) => {
    if (decoder.push(chunk, onFrame)) socket.destroy();
  });
}

const server = createServer(serveTcp);
// The same relay over WebSocket: one binary message is one frame (§2.1).
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(values['ws-port']), perMessageDeflate: false, maxPayload: MAX_FRAME + 64, clientTracking: false, backlog: 4096 });
wss.on('connection', (ws) => onWsFrames(ws, MAX_FRAME, serveLink((f) => ws.send(encodeFrame(f, false)))));
let wsAddr = '';
wss.on('listening', () => {
  const a = wss.address();
  wsAddr = typeof a === 'object' && a ? `127.0.0.1:${a.port}` : String(a);
  ready();
});
let tcpAddr = '';
const ready = (): void => {
  if (tcpAddr && wsAddr) process.stdout.write(`${JSON.stringify({ tcp: tcpAddr, ws: wsAddr })}\n`);
};
server.listen({ host: '127.0.0.1', port: Number(values.port), backlog: 4096 }, () => {
  const a = server.address();
  tcpAddr = `127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  ready();
});
const stop = (): void => {
  server.close();
  wss.close();
  void pool.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

// Started by gate bench with an IPC channel: end with it, SIGKILL of the bench included.
onParentGone(() => process.exit(0));

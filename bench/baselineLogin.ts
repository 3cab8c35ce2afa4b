// The login baseline for `gate bench --scenario storm` and `npm run bench`: the least a server
// must do for a crowd of logins, in plain Node. It accepts TCP (length-prefixed frames, §2.1)
// and WebSocket (one binary message per frame), reads the HELLO, answers a WELCOME in one write
// (token = player id, no checks; `resumed: true` when the HELLO carried a resume), answers PING
// with PONG, and keeps the socket. No sessions, no timers, no logs, no metrics. Usage:
//   node dist/bench/baselineLogin.js [--port 0] [--ws-port 0]
// Prints {"tcp":"127.0.0.1:PORT","ws":"127.0.0.1:PORT"} on stdout when listening.
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';
import { FrameType, encodeFrame, frame, type Frame } from '../lib/frame.js';
import { FrameDecoder } from '../lib/frameDecoder.js';
import { onParentGone } from '../lib/parentWatch.js';
import { onWsFrames } from './wsFrames.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, 'ws-port': { type: 'string', default: '0' } } });
const MAX_FRAME = 64 * 1024;
const HEARTBEAT_MS = 15_000;

/** The WELCOME for a HELLO body, or null when the body is not a HELLO object. */
function welcome(body: Buffer): Frame | null {
  let h: { token?: unknown; resume?: { sessionId?: unknown } };
  try {
    h = JSON.parse(body.toString('utf8')) as typeof h;
  } catch {
    return null;
  }
  const resumed = typeof h.resume?.sessionId === 'string';
  const sessionId = resumed ? String(h.resume!.sessionId) : randomUUID();
  const w = { playerId: typeof h.token === 'string' ? h.token : sessionId, sessionId, resumeToken: randomBytes(18).toString('base64url'), gateId: 'baseline', heartbeatMs: HEARTBEAT_MS, resumed, gap: false, lastSeq: 0 };
  return frame(FrameType.WELCOME, 0, Buffer.from(JSON.stringify(w)));
}

function serveTcp(socket: Socket): void {
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  const decoder = new FrameDecoder(MAX_FRAME);
  const onFrame = (f: Frame): void => {
    if (f.type === FrameType.HELLO) {
      const w = welcome(f.body);
      if (w) socket.write(encodeFrame(w, true));
      else socket.destroy();
    } else if (f.type === FrameType.PING) socket.write(encodeFrame(frame(FrameType.PONG, f.seq), true));
  };
  socket.on('data', (chunk: Buffer) => {
    if (decoder.push(chunk, onFrame)) socket.destroy();
  });
}

const tcp = createServer(serveTcp);
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(values['ws-port']), perMessageDeflate: false, maxPayload: MAX_FRAME, backlog: 4096 });
wss.on('connection', (ws) =>
  onWsFrames(ws, MAX_FRAME, (f) => {
    if (f.type === FrameType.HELLO) {
      const w = welcome(f.body);
      if (w) ws.send(encodeFrame(w, false));
      else ws.terminate();
    } else if (f.type === FrameType.PING) ws.send(encodeFrame(frame(FrameType.PONG, f.seq), false));
  }),
);

let wsAddr = '';
let tcpAddr = '';
const ready = (): void => {
  if (wsAddr && tcpAddr) process.stdout.write(`${JSON.stringify({ tcp: tcpAddr, ws: wsAddr })}\n`);
};
wss.on('listening', () => {
  const a = wss.address();
  wsAddr = typeof a === 'object' && a ? `127.0.0.1:${a.port}` : String(a);
  ready();
});
tcp.listen({ host: '127.0.0.1', port: Number(values.port), backlog: 4096 }, () => {
  const a = tcp.address();
  tcpAddr = typeof a === 'object' && a ? `127.0.0.1:${a.port}` : String(a);
  ready();
});
const stop = (): void => {
  tcp.close();
  wss.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
onParentGone(() => process.exit(0));

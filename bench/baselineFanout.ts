// The push-path and idle-memory baseline for `npm run bench`: a raw fan-out in plain Node.
// Clients connect over TCP (length-prefixed frames, §2.1) or WebSocket (`ws`, one frame per
// binary message) and send HELLO; the token is the player id and the answer a WELCOME. An HTTP
// endpoint takes the gate's push API bodies — `POST /v1/push/batch {messages:[{playerId, route,
// data|body64}]}` and `POST /v1/broadcast {playerIds?, route, data|body64}` — and writes one
// PUSH frame per message to the player's socket, numbering pushes per player (1, 2, 3 …). No
// sessions, no replay buffer, no validation beyond JSON.parse, no metrics, no logs. Usage:
//   node dist/bench/baselineFanout.js [--port-tcp 0] [--port-ws 0] [--port-api 0]
// Prints {"tcp":"127.0.0.1:P","ws":"127.0.0.1:P","api":"127.0.0.1:P"} when listening.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';
import { parseArgs } from 'node:util';
import { WebSocketServer, type WebSocket } from 'ws';
import { FrameType, encodeFrame, frame, type Frame } from '../lib/frame.js';
import { FrameDecoder } from '../lib/frameDecoder.js';
import { onParentGone } from '../lib/parentWatch.js';
import { onWsFrames } from './wsFrames.js';

const { values } = parseArgs({ options: { 'port-tcp': { type: 'string', default: '0' }, 'port-ws': { type: 'string', default: '0' }, 'port-api': { type: 'string', default: '0' } } });
const MAX_FRAME = 256 * 1024;

interface Player {
  write: (f: Frame) => void;
  seq: number;
}
const players = new Map<string, Player>();

/** HELLO → WELCOME; returns the player id. */
function login(f: Frame, write: (f: Frame) => void): string {
  let token = '';
  try {
    const t = (JSON.parse(f.body.toString()) as { token?: unknown }).token;
    if (typeof t === 'string') token = t;
  } catch {
    /* anonymous */
  }
  const playerId = token || `anon-${players.size}`;
  players.set(playerId, { write, seq: 0 });
  write(frame(FrameType.WELCOME, 0, Buffer.from(JSON.stringify({ playerId, sessionId: playerId, resumeToken: 'x', gateId: 'baseline', heartbeatMs: 15_000, resumed: false, gap: false, lastSeq: 0 }))));
  return playerId;
}

const tcp = createNetServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  const decoder = new FrameDecoder(MAX_FRAME);
  const write = (f: Frame): void => void socket.write(encodeFrame(f, true));
  let playerId: string | null = null;
  const onFrame = (f: Frame): void => {
    if (f.type === FrameType.HELLO) playerId = login(f, write);
    else if (f.type === FrameType.PING) write(frame(FrameType.PONG, f.seq));
  };
  socket.on('data', (chunk: Buffer) => {
    if (decoder.push(chunk, onFrame)) socket.destroy();
  });
  socket.once('close', () => {
    if (playerId && players.get(playerId)?.write === write) players.delete(playerId);
  });
});

const wsHttp = createHttpServer();
const wss = new WebSocketServer({ server: wsHttp, perMessageDeflate: false, clientTracking: false, maxPayload: MAX_FRAME + 8 });
wss.on('connection', (ws: WebSocket) => {
  const write = (f: Frame): void => ws.send(encodeFrame(f, false));
  let playerId: string | null = null;
  onWsFrames(ws, MAX_FRAME, (f) => {
    if (f.type === FrameType.HELLO) playerId = login(f, write);
    else if (f.type === FrameType.PING) write(frame(FrameType.PONG, f.seq));
  });
  ws.once('close', () => {
    if (playerId && players.get(playerId)?.write === write) players.delete(playerId);
  });
});

interface PushIn {
  playerId?: string;
  playerIds?: string[];
  route?: number;
  data?: unknown;
  body64?: string;
}
const bodyOf = (m: PushIn): Buffer => (m.body64 !== undefined ? Buffer.from(m.body64, 'base64') : Buffer.from(JSON.stringify(m.data)));

function push(playerId: string, route: number, body: Buffer): { seq: number; status: 'sent' } | { error: string } {
  const p = players.get(playerId);
  if (!p) return { error: 'player_not_found' };
  const seq = ++p.seq;
  p.write(frame(FrameType.PUSH, seq, body, route));
  return { seq, status: 'sent' };
}

const reply = (res: ServerResponse, status: number, v: unknown): void => {
  const b = JSON.stringify(v);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
  res.end(b);
};

const api = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      if (req.method === 'GET' && req.url === '/healthz') return reply(res, 200, { ok: true });
      const b = JSON.parse(Buffer.concat(chunks).toString()) as PushIn & { messages?: PushIn[] };
      if (req.url === '/v1/push/batch') return reply(res, 200, { results: (b.messages ?? []).map((m) => push(String(m.playerId), m.route ?? 0, bodyOf(m))) });
      if (req.url === '/v1/push') return reply(res, 200, push(String(b.playerId), b.route ?? 0, bodyOf(b)));
      if (req.url === '/v1/broadcast') {
        const body = bodyOf(b);
        let sent = 0;
        let missing = 0;
        for (const id of b.playerIds ?? players.keys()) if ('seq' in push(id, b.route ?? 0, body)) sent++;
        else missing++;
        return reply(res, 200, { sent, buffered: 0, missing });
      }
      reply(res, 404, { error: 'not_found' });
    } catch (e) {
      reply(res, 400, { error: 'bad_request', message: (e as Error).message });
    }
  });
});
api.keepAliveTimeout = 65_000;

const listen = (s: Server, port: string): Promise<string> =>
  new Promise((resolve) => s.listen({ host: '127.0.0.1', port: Number(port), backlog: 4096 }, () => resolve(`127.0.0.1:${(s.address() as AddressInfo).port}`)));
const addrs = { tcp: await listen(tcp, values['port-tcp']), ws: await listen(wsHttp, values['port-ws']), api: await listen(api, values['port-api']) };
process.stdout.write(`${JSON.stringify(addrs)}\n`);
const stop = (): void => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

// Started by gate bench with an IPC channel: end with it, SIGKILL of the bench included.
onParentGone(() => process.exit(0));

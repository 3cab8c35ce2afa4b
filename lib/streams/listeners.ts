import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { Duplex } from 'node:stream';
import { Observable, type Subscription } from 'rxjs';
import { WebSocketServer } from 'ws';
import type { HostPort } from '../config.js';
import type { Connection, ConnectionLimits } from '../connection.js';
import { GatewayError } from '../errors.js';
import { HEADER_BYTES } from '../frame.js';
import { TcpConnection } from './tcpConnection.js';
import { WsConnection } from './wsConnection.js';

export interface TlsFiles {
  cert: string;
  key: string;
}

/** Shared by every listener: one --max-connections across TCP and WS. */
export interface Admission {
  /** Open connections now. */
  open: number;
  /** --max-connections (a reload changes it: open connections over a lowered bound stay). */
  max: number;
  /** Refused at accept so far. */
  refused: number;
}

/**
 * Shared by every listener: one --max-handshakes across TCP and WS. A socket counts from its
 * accept until its TLS handshake or WebSocket upgrade completes, or it closes; past the bound a
 * new socket is destroyed at once, so a flood of half-open handshakes costs a descriptor for a
 * moment, not a handshake timeout's worth each (docs/security.md).
 */
export interface Handshakes {
  pending: number;
  /** --max-handshakes (a reload changes it). */
  max: number;
  /** Refused at accept so far. */
  refused: number;
}

export interface ListenerConfig {
  at: HostPort;
  tls: TlsFiles | null;
  /**
   * Certificate rotation (a reload): each value's files are read and serve the handshakes from
   * then on; open connections keep theirs. A pair that cannot be loaded goes to `onTlsError`
   * and the previous one stays.
   */
  tlsReload$?: Observable<TlsFiles>;
  onTlsError?: (e: unknown) => void;
  limits: ConnectionLimits;
  admission: Admission;
  handshakes: Handshakes;
  nextId: () => number;
  /** Called once with the bound `host:port` (port 0 resolves to the real port). */
  onListening: (address: string) => void;
}

export const formatAddress = (a: AddressInfo | string | null): string =>
  a === null ? '' : typeof a === 'string' ? a : `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;

const listenError = (at: HostPort, e: NodeJS.ErrnoException): GatewayError =>
  new GatewayError(
    'GW_ERR_LISTEN',
    e.code === 'EADDRINUSE' ? `${at.host}:${at.port} is already in use` : `cannot listen on ${at.host}:${at.port}: ${e.code ?? e.message}`,
    { code: e.code },
  );

/**
 * How long a client may take over the TLS handshake, ms. Until it completes the socket is not a
 * connection yet (not counted against --max-connections, no --hello-timeout running), so node's
 * default of 120 s would let a stalled client hold it that long; 10 s matches the default
 * --hello-timeout.
 */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

const readTls = (tls: TlsFiles): { cert: Buffer; key: Buffer; handshakeTimeout: number } => ({
  cert: readFileSync(tls.cert),
  key: readFileSync(tls.key),
  handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
});

const ignoreError = (): void => undefined;

/** Applies `tlsReload$` to a TLS or HTTPS server while the listener runs; returns the teardown. */
function rotateCertificates(cfg: ListenerConfig, server: { setSecureContext(o: { cert: Buffer; key: Buffer }): void }): Subscription | null {
  if (!cfg.tls || !cfg.tlsReload$) return null;
  return cfg.tlsReload$.subscribe((files) => {
    try {
      server.setSecureContext(readTls(files));
    } catch (e) {
      cfg.onTlsError?.(e);
    }
  });
}

/**
 * The socket leaves the --max-connections count if it closes during the upgrade; once the
 * upgrade is done, the WsConnection's own close listener does it (one listener per link, not
 * two). A function of its own on purpose: a closure made inside the upgrade handler would share
 * that handler's context, and keep the upgrade request (headers and all, about 2 KB) alive.
 */
function countUntilClose(socket: Duplex, a: Admission): () => void {
  const uncount = (): void => void a.open--;
  socket.once('close', uncount);
  return uncount;
}

/** Counts a new link against --max-connections; false = refuse it. */
function admit(a: Admission): boolean {
  if (a.open >= a.max) {
    a.refused++;
    return false;
  }
  a.open++;
  return true;
}

type Peer = { remoteAddress?: string | undefined; remotePort?: number | undefined };

/** The key of a live socket as both ends of a TLS wrap see it (its peer's address and port). */
const peerKey = (s: Peer): string => `${s.remoteAddress ?? ''}|${s.remotePort ?? 0}`;

/**
 * Counts raw sockets against --max-handshakes until `done(socket)` or their close. Under TLS the
 * socket `done` gets wraps the raw one, so both are found by their peer's address and port;
 * without it they are the same object, which is the key (reading the address would cache it on
 * every socket for the link's life). Returns the `connection` listener for the server and `done`.
 */
function handshakeCounter(h: Handshakes, tls: boolean): { onRaw: (raw: Socket) => void; done: (s: Peer) => void } {
  const live = new Map<unknown, () => void>();
  const keyOf = tls ? peerKey : (s: Peer): unknown => s;
  return {
    onRaw: (raw) => {
      if (h.pending >= h.max) {
        h.refused++;
        raw.destroy();
        return;
      }
      h.pending++;
      const key = keyOf(raw);
      // Released once, at the end of the handshake or at close, whichever comes first; then
      // nothing of it stays on the socket for the connection's life.
      const release = (): void => {
        raw.off('close', release);
        h.pending--;
        if (live.get(key) === release) live.delete(key);
      };
      live.set(key, release);
      raw.once('close', release);
    },
    done: (s) => live.get(keyOf(s))?.(),
  };
}

/**
 * The raw TCP (or TLS) listener as an Observable of connections: subscribing binds and
 * listens, unsubscribing stops accepting (open connections live on). Errors with
 * GW_ERR_LISTEN when the address cannot be bound.
 */
export function tcpConnection$(cfg: ListenerConfig): Observable<Connection> {
  return new Observable<Connection>((subscriber) => {
    // Plain TCP has no handshake: a socket is a connection at once (--max-connections, --hello-timeout).
    const handshakes = cfg.tls ? handshakeCounter(cfg.handshakes, true) : null;
    const onSocket = (socket: Socket): void => {
      handshakes?.done(socket);
      if (!admit(cfg.admission)) {
        socket.destroy();
        return;
      }
      subscriber.next(new TcpConnection(cfg.nextId(), socket, cfg.limits, cfg.admission));
    };
    let server: NetServer;
    try {
      server = cfg.tls ? createTlsServer(readTls(cfg.tls), onSocket) : createNetServer(onSocket);
    } catch (e) {
      subscriber.error(new GatewayError('GW_ERR_LISTEN', `TLS setup failed: ${(e as Error).message}`));
      return;
    }
    // A TLS handshake failure is one client's problem, never the listener's.
    server.on('tlsClientError', (_err, sock: Socket) => sock.destroy());
    // Before the handshake: listeners of 'connection' run before tls wraps the socket.
    if (handshakes) server.prependListener('connection', handshakes.onRaw);
    server.once('error', (e: NodeJS.ErrnoException) => subscriber.error(listenError(cfg.at, e)));
    server.listen({ host: cfg.at.host, port: cfg.at.port, backlog: 4096 }, () => cfg.onListening(formatAddress(server.address())));
    const rotation = cfg.tls ? rotateCertificates(cfg, server as TlsServer) : null;
    return () => {
      rotation?.unsubscribe();
      server.close();
    };
  });
}

/**
 * Slack over --max-frame + header that ws still reads whole, so that the frame parser (not ws)
 * judges the message and the client gets the BYE protocol_error of §2.1. ws cuts a message past
 * `maxPayload` off itself with a close frame (1009), after which no BYE can be sent; a fixed
 * 64 KiB keeps that to messages far over the limit even when --max-frame is small.
 */
const WS_OVERSIZE_SLACK = 64 * 1024;

/**
 * The WebSocket listener (path `/`, binary frames) as an Observable of connections. The ws
 * `maxPayload` is --max-frame plus the header plus WS_OVERSIZE_SLACK: a message up to 64 KiB
 * over the limit still gets a BYE protocol_error from the frame parser, while a huge one is cut
 * off by ws itself (close 1009) before it is buffered.
 */
export function wsConnection$(cfg: ListenerConfig): Observable<Connection> {
  return new Observable<Connection>((subscriber) => {
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: cfg.limits.maxFrame + HEADER_BYTES + WS_OVERSIZE_SLACK,
      perMessageDeflate: false,
      clientTracking: false,
    });
    let server: HttpServer;
    try {
      server = cfg.tls ? createHttpsServer(readTls(cfg.tls)) : createHttpServer();
    } catch (e) {
      subscriber.error(new GatewayError('GW_ERR_LISTEN', `TLS setup failed: ${(e as Error).message}`));
      return;
    }
    server.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'application/json', upgrade: 'websocket' });
      res.end(JSON.stringify({ error: 'upgrade_required', message: 'this port speaks WebSocket only' }));
    });
    const handshakes = handshakeCounter(cfg.handshakes, cfg.tls !== null);
    server.prependListener('connection', handshakes.onRaw);
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // The upgrade request arrived: the socket is past its handshake (a refused one closes below).
      handshakes.done(req.socket);
      socket.on('error', ignoreError);
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/') {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      if (!admit(cfg.admission)) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      const uncount = countUntilClose(socket, cfg.admission);
      wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off('close', uncount);
        socket.off('error', ignoreError); // ws listens for the socket's errors from here on
        subscriber.next(new WsConnection(cfg.nextId(), ws, req.socket, cfg.limits, cfg.admission));
      });
    });
    server.on('clientError', (_err, socket: Duplex) => socket.destroy());
    server.on('tlsClientError', (_err, socket: Duplex) => socket.destroy());
    server.once('error', (e: NodeJS.ErrnoException) => subscriber.error(listenError(cfg.at, e)));
    server.listen({ host: cfg.at.host, port: cfg.at.port, backlog: 4096 }, () => cfg.onListening(formatAddress(server.address())));
    const rotation = cfg.tls ? rotateCertificates(cfg, server as HttpsServer) : null;
    return () => {
      rotation?.unsubscribe();
      server.close();
      wss.close();
    };
  });
}

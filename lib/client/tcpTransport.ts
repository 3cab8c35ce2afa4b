/**
 * TCP (and TLS) transport for Node (CONTRACT §2.1: each frame preceded by a u32 length).
 * Not browser-safe: import it from `gate/client/node`.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Observable } from 'rxjs';
import { DEFAULT_MAX_FRAME, FrameReader, encodeFrame, type GateFrame } from './codec.js';
import { DEFAULT_MAX_BUFFERED_BYTES, GateLinkError, type Link, type Transport } from './gateClient.js';
import { LinkFrames } from './linkFrames.js';

export interface TcpTransportConfig {
  /** Default 127.0.0.1. */
  readonly host?: string;
  readonly port: number;
  /** TLS: `true`, or node:tls options (ca, servername, rejectUnauthorized …). */
  readonly tls?: boolean | ConnectionOptions;
  /** Largest frame body accepted from the gate. Default 16 MiB. */
  readonly maxFrame?: number;
  /** Bytes written and not yet sent before the link is dropped as stalled. Default 4 MiB. */
  readonly maxBufferedBytes?: number;
  /** After close(), how long to wait for the gate to close its side before destroying the socket, ms. Default 1000. */
  readonly closeGraceMs?: number;
}

const DEFAULT_CLOSE_GRACE_MS = 1000;

/** A transport over TCP, or TLS with `tls`. */
export function tcpTransport(cfg: TcpTransportConfig): Transport {
  if (!Number.isInteger(cfg.port) || cfg.port < 1 || cfg.port > 0xffff) throw new TypeError('tcpTransport: port must be 1–65535');
  const host = cfg.host ?? '127.0.0.1';
  const maxFrame = cfg.maxFrame ?? DEFAULT_MAX_FRAME;
  const maxBuffered = cfg.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const graceMs = cfg.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
  return {
    open: () =>
      // why not composed: one socket per subscription, with listeners that must come off on teardown.
      new Observable<Link>((subscriber) => {
        const tlsOpts = cfg.tls === true ? {} : cfg.tls;
        const sock: Socket = tlsOpts ? tlsConnect({ host, port: cfg.port, servername: host, ...tlsOpts }) : netConnect({ host, port: cfg.port });
        sock.setNoDelay(true);
        const reader = new FrameReader(maxFrame);
        let opened = false;
        const inbound = new LinkFrames();
        const finish = (err: unknown): void => inbound.finish(err);
        const onConnect = (): void => {
          opened = true;
          subscriber.next(link);
        };
        const onData = (chunk: Buffer): void => {
          let frames: GateFrame[];
          try {
            frames = reader.push(chunk);
          } catch (e) {
            sock.destroy();
            finish(e);
            return;
          }
          for (const f of frames) inbound.next(f);
        };
        const onError = (e: Error): void => {
          const err = new GateLinkError(opened ? 'LINK_ERROR' : 'DIAL_FAILED', `${host}:${cfg.port}: ${e.message}`, { cause: e });
          if (!opened) subscriber.error(err);
          else inbound.noteFailure(err);
        };
        const onClose = (): void => {
          finish(null);
          subscriber.complete();
        };

        const link: Link = {
          frames$: inbound.frames$,
          send: (f) => {
            if (inbound.ended || sock.destroyed) return false;
            if (sock.writableLength + f.body.length > maxBuffered) {
              sock.destroy();
              finish(new GateLinkError('SLOW_LINK', `over ${maxBuffered} bytes waiting to be sent`));
              return false;
            }
            sock.write(encodeFrame(f, true));
            return true;
          },
          close: () => {
            if (inbound.ended) return;
            finish(null);
            sock.end();
            setTimeout(() => sock.destroy(), graceMs).unref();
          },
          abort: () => {
            sock.destroy();
            finish(null);
          },
        };

        sock.once(tlsOpts ? 'secureConnect' : 'connect', onConnect);
        sock.on('data', onData);
        sock.on('error', onError);
        sock.once('close', onClose);
        return () => {
          sock.off(tlsOpts ? 'secureConnect' : 'connect', onConnect);
          sock.off('data', onData);
          sock.off('close', onClose);
          // Keep an error listener: an unhandled 'error' event would crash the process.
          sock.off('error', onError);
          sock.on('error', () => undefined);
          if (!opened) sock.destroy();
          else link.close();
          inbound.detach();
        };
      }),
  };
}

/**
 * WebSocket transport (CONTRACT §2.1: one binary message is exactly one frame, no length prefix).
 * Browser-safe: it uses whatever WebSocket constructor it is given, `globalThis.WebSocket` by
 * default; in Node pass the `ws` package (or use `wsTransport` from `gate/client/node`).
 */
import { Observable } from 'rxjs';
import { DEFAULT_MAX_FRAME, GateProtocolError, decodeFrame, encodeFrame, type GateFrame } from './codec.js';
import { DEFAULT_MAX_BUFFERED_BYTES, GateLinkError, type Link, type Transport } from './gateClient.js';
import { LinkFrames } from './linkFrames.js';

/** The part of the WHATWG WebSocket the transport uses (browsers, Deno, Bun, Node ≥ 22, and the `ws` package). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (ev: unknown) => void): void;
  removeEventListener(type: string, listener: (ev: unknown) => void): void;
  /** `ws` only: drop the socket without a closing handshake. */
  terminate?(): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface WsTransportConfig {
  /** `ws://host:port/` or `wss://…`. */
  readonly url: string;
  /** Default `globalThis.WebSocket`. */
  readonly WebSocket?: WebSocketConstructor;
  readonly protocols?: string | string[];
  /** Largest frame body accepted from the gate. Default 16 MiB. */
  readonly maxFrame?: number;
  /** Bytes queued by `send` and not yet sent before the link is dropped as stalled. Default 4 MiB. */
  readonly maxBufferedBytes?: number;
}

/** WebSocket readyState values. */
const OPEN = 1;
/** Close code for an abort (browsers only allow 1000 and 3000–4999 from scripts). */
const ABORT_CODE = 4000;

/** A transport over WebSocket. A string is the URL. */
export function wsTransport(config: WsTransportConfig | string): Transport {
  const cfg: WsTransportConfig = typeof config === 'string' ? { url: config } : config;
  const Ctor = cfg.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Ctor) throw new TypeError('wsTransport: no WebSocket constructor (pass one, e.g. the `ws` package, as `WebSocket`)');
  const maxFrame = cfg.maxFrame ?? DEFAULT_MAX_FRAME;
  const maxBuffered = cfg.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  return {
    open: () =>
      // why not composed: one socket per subscription, with listeners that must come off on teardown.
      new Observable<Link>((subscriber) => {
        const ws = new Ctor(cfg.url, cfg.protocols);
        ws.binaryType = 'arraybuffer';
        let opened = false;
        const inbound = new LinkFrames();
        const finish = (err: unknown): void => inbound.finish(err);
        const onOpen = (): void => {
          opened = true;
          subscriber.next(link);
        };
        const onMessage = (ev: unknown): void => {
          const data = (ev as { data: unknown }).data;
          if (typeof data === 'string') {
            link.abort();
            finish(new GateProtocolError('FRAME_TEXT', 'the gate sent a text message; frames are binary'));
            return;
          }
          let f: GateFrame;
          try {
            f = decodeFrame(new Uint8Array(data as ArrayBuffer), maxFrame);
          } catch (e) {
            link.abort();
            finish(e);
            return;
          }
          inbound.next(f);
        };
        const onError = (ev: unknown): void => {
          const err = new GateLinkError(opened ? 'LINK_ERROR' : 'DIAL_FAILED', `WebSocket ${cfg.url}: ${(ev as { message?: string }).message ?? 'error'}`);
          if (!opened) subscriber.error(err);
          else inbound.noteFailure(err);
        };
        const onClose = (): void => {
          if (!opened) subscriber.error(new GateLinkError('DIAL_FAILED', `WebSocket ${cfg.url} closed before it opened`));
          finish(null);
          subscriber.complete();
        };

        const link: Link = {
          frames$: inbound.frames$,
          send: (f) => {
            if (inbound.ended || ws.readyState !== OPEN) return false;
            if (ws.bufferedAmount + f.body.length > maxBuffered) {
              link.abort();
              finish(new GateLinkError('SLOW_LINK', `over ${maxBuffered} bytes waiting to be sent`));
              return false;
            }
            ws.send(encodeFrame(f, false));
            return true;
          },
          close: () => {
            if (inbound.ended) return;
            ws.close(1000);
            finish(null);
          },
          abort: () => {
            if (inbound.ended && ws.readyState > OPEN) return;
            if (ws.terminate) ws.terminate();
            else ws.close(ABORT_CODE, 'abort');
            finish(null);
          },
        };

        ws.addEventListener('open', onOpen);
        ws.addEventListener('message', onMessage);
        ws.addEventListener('error', onError);
        ws.addEventListener('close', onClose);
        return () => {
          ws.removeEventListener('open', onOpen);
          ws.removeEventListener('message', onMessage);
          ws.removeEventListener('error', onError);
          ws.removeEventListener('close', onClose);
          // `ws` throws an 'error' event nobody listens to (closing while still dialling emits one).
          ws.addEventListener('error', () => undefined);
          // Still dialling: a close() now would be an error in browsers' eyes, but is the only way out.
          if (!inbound.ended) link.close();
          inbound.detach();
        };
      }),
  };
}

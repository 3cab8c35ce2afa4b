/**
 * `gate/client/node`: the client SDK for Node 20+. Everything from `gate/client`, plus the TCP/TLS
 * transport, a `wsTransport` that uses the `ws` package (Node 20 has no global WebSocket), and
 * a raw-DEFLATE `inflateRaw` for `new GateClient({ inflate: inflateRaw, … })`.
 */
import { inflateRawSync } from 'node:zlib';
import WebSocket from 'ws';
import { DEFAULT_MAX_FRAME } from './codec.js';
import type { Transport } from './gateClient.js';
import { wsTransport as baseWsTransport, type WsTransportConfig } from './wsTransport.js';

export * from './index.js';
export { tcpTransport, type TcpTransportConfig } from './tcpTransport.js';

/** A WebSocket transport on the `ws` package, with its maxPayload set from `maxFrame`. A string is the URL. */
export function wsTransport(config: WsTransportConfig | string): Transport {
  const cfg: WsTransportConfig = typeof config === 'string' ? { url: config } : config;
  const maxPayload = 8 + (cfg.maxFrame ?? DEFAULT_MAX_FRAME);
  // ws' default maxPayload is 100 MiB: bound it by the frame limit.
  class BoundedWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { maxPayload });
    }
  }
  return baseWsTransport({ ...cfg, WebSocket: cfg.WebSocket ?? BoundedWebSocket });
}

/** Raw DEFLATE → bytes, capped at `maxBytes` (default 16 MiB) so a deflate bomb costs little. */
export function inflateRaw(body: Uint8Array, maxBytes = DEFAULT_MAX_FRAME): Uint8Array {
  return inflateRawSync(body, { maxOutputLength: maxBytes });
}

/**
 * `gate/client`: the browser-safe client SDK (no Node APIs). For TCP, TLS and the `ws` package
 * in Node, import `gate/client/node` (lib/client/node.ts) instead; it re-exports all of this.
 */
export {
  GateClient,
  GateClosedError,
  GateLinkError,
  GateRequestError,
  DEFAULT_MAX_BUFFERED_BYTES,
  TERMINAL_BYES,
  type ByeCode,
  type ClientEvent,
  type ClientState,
  type GateClientOptions,
  type Link,
  type Push,
  type ReconnectConfig,
  type RequestErrorCode,
  type Transport,
  type Welcome,
} from './gateClient.js';
export { wsTransport, type WebSocketConstructor, type WebSocketLike, type WsTransportConfig } from './wsTransport.js';
export {
  DEFAULT_MAX_FRAME,
  FLAG_DEFLATE,
  FrameReader,
  FrameType,
  GateProtocolError,
  HEADER_BYTES,
  PREFIX_BYTES,
  decodeFrame,
  decodeJson,
  decodeText,
  encodeFrame,
  frame,
  toBytes,
  type FrameTypeCode,
  type GateFrame,
  type ProtocolErrorCode,
} from './codec.js';

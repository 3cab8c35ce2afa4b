/**
 * The constants of the wire protocol (CONTRACT §2.1), shared by the gate (`lib/frame.ts`) and
 * the client SDK (`lib/client/codec.ts`). No imports and no `Buffer`: browsers load it too.
 */

/** Frame types of §2.1. */
export const FrameType = {
  HELLO: 1,
  WELCOME: 2,
  REQUEST: 3,
  RESPONSE: 4,
  PUSH: 5,
  ACK: 6,
  PING: 7,
  PONG: 8,
  ERROR: 9,
  BYE: 10,
} as const;
export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];

/** Flag bit 0: the body is raw DEFLATE. Every other bit is reserved and must be 0. */
export const FLAG_DEFLATE = 0x01;
export const HEADER_BYTES = 8;
/** TCP framing adds a u32 length (8 + body) before each frame. */
export const PREFIX_BYTES = 4;

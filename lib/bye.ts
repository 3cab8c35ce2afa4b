import { GatewayError } from './errors.js';
import { FrameType, frame, type Frame } from './frame.js';

/** The BYE frame an error ends a connection with, or null when it ends it without one. */
export function byeFrame(err: GatewayError): Frame | null {
  const code = err.bye;
  if (code === null) return null;
  return frame(FrameType.BYE, 0, Buffer.from(JSON.stringify({ code, reason: err.message })));
}

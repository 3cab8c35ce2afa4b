// The baselines' WebSocket side: one binary message is one frame (§2.1); anything else ends the link.
import type { WebSocket } from 'ws';
import { parseFrame, type Frame } from '../lib/frame.js';

/** Calls `onFrame` for each frame `ws` receives; a text or malformed message terminates the link. */
export function onWsFrames(ws: WebSocket, maxFrame: number, onFrame: (f: Frame) => void): void {
  ws.on('error', () => undefined);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return ws.terminate();
    let f: Frame;
    try {
      f = parseFrame(data, maxFrame);
    } catch {
      return ws.terminate();
    }
    onFrame(f);
  });
}

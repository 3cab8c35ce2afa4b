/**
 * gate as a library: start a gate in-process (embedding, tests), or reuse its pieces.
 * The client SDK is `gate/client` (browsers and Node) and `gate/client/node` (TCP, ws preset).
 */
export { buildConfig, readConfigFile, readEnv, testConfig, OPTIONS, type GateConfig, type HostPort, type AuthMode } from './config.js';
export { GatewayError, GW_ERRORS, isGatewayError, type GatewayErrorCode, type RequestErrorCode } from './errors.js';
export { FrameType, encodeFrame, parseFrame, frame, type Frame } from './frame.js';
export { FrameDecoder } from './frameDecoder.js';
export { Gate, type GateDeps, type PushResult, type PlayerInfo } from './gate.js';
export { serve, createLogger, type RunningGate } from './serve.js';
export type { Connection, Transport } from './connection.js';
export type { SessionStore } from './session/sessionStore.js';
export type { RpcClient, RpcRequest, RpcReply } from './streams/rpcClient.js';
export type { BackendClient, BackendEvent } from './streams/backend.js';

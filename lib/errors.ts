/**
 * The one error catalogue (fastify/undici style): every failure the gate raises internally
 * carries a stable `GW_ERR_*` code, never reused. `close` is the WebSocket close code used when
 * the error ends a connection; `bye` is the BYE code the client sees (§2.1), when it ends one.
 */
export const GW_ERRORS = {
  GW_ERR_FRAME_TOO_SHORT: { close: 1002, bye: 'protocol_error', message: 'frame length under 8 bytes' },
  GW_ERR_FRAME_TOO_LARGE: { close: 1009, bye: 'protocol_error', message: 'frame body over --max-frame' },
  GW_ERR_FRAME_TYPE: { close: 1002, bye: 'protocol_error', message: 'unknown frame type' },
  GW_ERR_FRAME_FLAGS: { close: 1002, bye: 'protocol_error', message: 'reserved frame flag set' },
  GW_ERR_FRAME_TEXT: { close: 1003, bye: 'protocol_error', message: 'text WebSocket message' },
  GW_ERR_FRAME_INFLATE: { close: 1007, bye: 'protocol_error', message: 'compressed body does not inflate' },
  GW_ERR_FRAME_UNEXPECTED: { close: 1002, bye: 'protocol_error', message: 'frame not allowed here' },
  GW_ERR_RATE_ABUSE: { close: 1008, bye: 'protocol_error', message: 'kept sending past --rate-limit' },
  GW_ERR_HELLO_MALFORMED: { close: 1002, bye: 'protocol_error', message: 'HELLO body is not valid JSON of the right shape' },
  GW_ERR_HELLO_TIMEOUT: { close: 4001, bye: 'hello_timeout', message: 'no HELLO within --hello-timeout' },
  GW_ERR_HEARTBEAT_TIMEOUT: { close: 4002, bye: null, message: 'connection silent for 3x heartbeat' },
  GW_ERR_IDLE_TIMEOUT: { close: 4003, bye: 'idle', message: 'no REQUEST within --idle-timeout' },
  GW_ERR_AUTH_FAILED: { close: 4004, bye: 'auth_failed', message: 'login refused' },
  GW_ERR_REPLACED: { close: 4005, bye: 'replaced', message: 'a newer login replaced this session' },
  GW_ERR_KICKED: { close: 4006, bye: 'kicked', message: 'kicked by the backend' },
  GW_ERR_SLOW_CONSUMER: { close: 1013, bye: 'slow_consumer', message: 'outbound bytes over --outbound-max' },
  GW_ERR_SHUTDOWN: { close: 1001, bye: 'shutdown', message: 'gate shutting down' },
  GW_ERR_LOGOUT: { close: 1000, bye: null, message: 'client logged out' },
  GW_ERR_OVERLOADED: { close: 1013, bye: null, message: 'request queue full (--queue-max)' },
  GW_ERR_UPSTREAM_STATUS: { close: 1011, bye: null, message: 'backend answered non-2xx' },
  GW_ERR_UPSTREAM_TIMEOUT: { close: 1011, bye: null, message: 'backend attempt timed out (--upstream-timeout)' },
  GW_ERR_UPSTREAM_UNAVAILABLE: { close: 1011, bye: null, message: 'backend unreachable after retries' },
  GW_ERR_CLUSTER_UNAVAILABLE: { close: 1013, bye: null, message: 'Redis (cluster mode) unreachable: try again' },
  GW_ERR_CONFIG: { close: 1011, bye: null, message: 'invalid configuration' },
  GW_ERR_LISTEN: { close: 1011, bye: null, message: 'could not listen' },
} as const;

export type GatewayErrorCode = keyof typeof GW_ERRORS;

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly closeCode: number;
  constructor(
    readonly code: GatewayErrorCode,
    message: string = GW_ERRORS[code].message,
    readonly details?: Readonly<Record<string, unknown>>,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.closeCode = GW_ERRORS[code].close;
  }
  /** The BYE code (§2.1) this error ends a connection with, or null when it ends it silently. */
  get bye(): string | null {
    return GW_ERRORS[this.code].bye;
  }
}

export const isGatewayError = (e: unknown, code?: GatewayErrorCode): e is GatewayError =>
  e instanceof GatewayError && (code === undefined || e.code === code);

/** ERROR frame codes of §2.1 (what a failed REQUEST is answered with). */
export type RequestErrorCode =
  | 'UNAUTHORIZED'
  | 'UPSTREAM_STATUS'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_UNAVAILABLE'
  | 'OVERLOADED'
  | 'RATE_LIMITED'
  | 'STALE_REQUEST'
  /** Cluster mode: a HELLO while Redis is unreachable (seq 0; the link closes, try again). */
  | 'CLUSTER_UNAVAILABLE'
  /** Cluster mode: the gate running this REQUEST died mid-call; it is not run again (the backend may dedupe by x-request-id). */
  | 'OUTCOME_UNKNOWN';

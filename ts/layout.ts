// Generated from crates/quicwire-engine/src/abi.rs by its tests: do not edit. After a
// change there, `QUICWIRE_BLESS=1 cargo test -p quicwire-engine` writes it anew.

export const OP_WORDS = 6;
export const EVENT_WORDS = 7;
/** Bodies of this many bytes and more travel in buffers of their own. */
export const LARGE_BODY = 16384;

/** Op codes (`[op, connection, id, length, extra, priority]`). */
export const Op = {
  Message: 1,
  Request: 2,
  Respond: 3,
  RespondError: 4,
  Datagram: 5,
  IdempotentRequest: 6,
  IdempotentMessage: 7,
  Cancel: 8,
  Trace: 9,
} as const;
/** A message op's `extra`: its sender does not wait for the peer's ACK. */
export const UNCONFIRMED = 1;

/** Event kinds (`[kind, connection, b, c, d, offset, length]`). */
export const Event = {
  Connection: 1,
  Message: 2,
  Request: 3,
  Response: 4,
  RequestFailed: 5,
  Acked: 6,
  Closed: 7,
  Receipt: 8,
  Datagram: 9,
  KeyLog: 10,
  Qlog: 11,
  Trace: 12,
  RequestCancelled: 13,
} as const;

/** Error codes by their number. */
export const ERROR_CODES = [
  'ERR_INTERNAL',
  'ERR_INVALID_ARGUMENT',
  'ERR_CONNECT_TIMEOUT',
  'ERR_TLS',
  'ERR_CONNECTION_CLOSED',
  'ERR_STREAM_RESET',
  'ERR_MESSAGE_TOO_LARGE',
  'ERR_DECODE',
  'ERR_ENCODE',
  'ERR_TIMEOUT',
  'ERR_FLOW_CONTROL_PAUSED',
  'ERR_POOL_EXHAUSTED',
  'ERR_NOT_INITIALIZED',
  'ERR_BACKEND_UNAVAILABLE',
  'ERR_REMOTE',
  'ERR_PROTOCOL',
  'ERR_NEGOTIATION',
  'ERR_IO',
  'ERR_NO_RESPONDERS',
  'ERR_NAME_TAKEN',
  'ERR_ABORTED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The positional transport options, in order. */
export const TRANSPORT_OPTIONS = [
  'maxMessageSize',
  'maxConcurrentStreams',
  'idleTimeoutMs',
  'connectTimeoutMs',
  'requestTimeoutMs',
  'maxConnections',
  'keepAliveMs',
  'sendBufferHigh',
  'congestionControl',
  'keyLog',
  'qlog',
  'earlyData',
] as const;

/** The positional server options, in order. */
export const SERVER_OPTIONS = [
  'maxConnections',
  'maxConnectionsPerIp',
  'validateAddresses',
  'worker',
] as const;

/** Congestion controllers, by their number in `congestionControl`. */
export const CONGESTION_CONTROLLERS = [
  'cubic',
  'newreno',
  'bbr',
] as const;

/** What a page does for its WebTransport sessions (`[kind, connection, stream, number, payload]`). */
export const WebCommand = {
  Connect: 0,
  Open: 1,
  Write: 2,
  Finish: 3,
  Reset: 4,
  Stop: 5,
  Priority: 6,
  Datagram: 7,
  Close: 8,
} as const;

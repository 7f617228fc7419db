// Public option and stats types.

/** How message bodies are encoded on the wire. `raw` sends Uint8Array as is. */
export type Encoding = 'msgpack' | 'json' | 'raw';

/** Congestion controllers: CUBIC (the default), NewReno, or BBR (which random loss slows less). */
export type CongestionControl = 'cubic' | 'newreno' | 'bbr';

/** Limits and timers shared by clients and servers. */
export interface LimitOptions {
  /** Largest message, request or response body accepted, in bytes (default 1 MiB). */
  maxMessageSize?: number;
  /** Concurrent requests (bidirectional streams) the peer may open (default 1000). */
  maxConcurrentStreams?: number;
  /** QUIC keep-alive interval; a silent peer is dropped after three (default 5000). */
  keepAliveMs?: number;
  /** Default timeout of `request` (default 30000). */
  requestTimeoutMs?: number;
  /** The congestion controller of this endpoint's connections (default 'cubic'). */
  congestionControl?: CongestionControl;
  /** Gets each connection's TLS secrets as `SSLKEYLOGFILE` lines, to decrypt a packet
   *  capture (Wireshark). Anyone with the lines can read the traffic: for debugging only. */
  keyLog?: (line: string) => void;
  /** Gets each connection's qlog trace (JSON-SEQ records, whole ones) as it is written,
   *  with the connection's `id`: append them to `<id>.sqlog` and open it in qvis. The trace
   *  starts with the handshake, before the connection is ready. Native backend only. */
  qlog?: (records: string, connectionId: number) => void;
  /** 0-RTT (default false). A server takes 0-RTT data from clients that resume a session
   *  and says which messages and requests came that way (`info.early` in its handlers): an
   *  attacker can replay them. A client with it on resumes such a server at once: `connect`
   *  resolves without waiting for the handshake, what is marked `{ idempotent: true }`
   *  goes with the first packet, and everything else after the handshake. */
  earlyData?: boolean;
  /** OpenTelemetry spans for requests (default false): a CLIENT span per request made, a
   *  SERVER span per request answered (its handler runs inside it), with the trace context
   *  carried to the peer, so the responder's span is the child of the requester's. Needs
   *  `@opentelemetry/api` installed, and an OpenTelemetry SDK registered to record them. */
  tracing?: boolean;
}

export interface TransportOptions extends LimitOptions {
  /** Trusted CA certificate(s), PEM. Without it the system roots are used. */
  ca?: string;
  /** Skip certificate verification. Development only; warns once. */
  insecure?: boolean;
  /** Encoding to offer the server (default 'msgpack'). */
  encoding?: Encoding;
  /** Most pooled connections (default 64). */
  maxConnections?: number;
  /** Close a pooled connection unused for this long (default 30000). */
  idleTimeoutMs?: number;
  /** Give up a connect after this long with ERR_CONNECT_TIMEOUT (default 5000). */
  connectTimeoutMs?: number;
  /** Unacknowledged bytes per connection before `send` waits (default 8 MiB); queued
   *  bytes beyond twice this reject with ERR_FLOW_CONTROL_PAUSED. */
  sendBufferHigh?: number;
  /** What carries QUIC to servers (default 'udp'). 'tcp': QUIC's packets over a TCP
   *  connection to the same port, for networks that block UDP (the server must listen with
   *  `tcp: true`); the same handshake, certificate checks, delivery and ordering. 'auto':
   *  UDP first, and if it has not finished the handshake `fallbackDelayMs` in, TCP races
   *  it (happy eyeballs); the first to finish is the connection. */
  transport?: 'udp' | 'tcp' | 'auto' | 'webtransport';
  /** With `transport: 'auto'`, how long UDP has alone before TCP joins (default 250). */
  fallbackDelayMs?: number;
  /** With `transport: 'webtransport'` (browsers, after `initWasm()`): connections ride the
   *  browser's own WebTransport to a server listening with `webTransport`, at
   *  `https://host:port{path}` (path default '/'). The browser checks the certificate:
   *  against its trusted roots, or against `certificateHashes` (SHA-256 in hex, as
   *  `generateDevCert` returns for a certificate of 14 days at most). */
  webTransport?: { path?: string; certificateHashes?: string[] };
}

export interface ServerOptions extends LimitOptions {
  /** IP address to bind (default '127.0.0.1'; '::' or '0.0.0.0' for all). */
  host?: string;
  /** UDP port; 0 (default) picks a free one, see `server.port`. */
  port?: number;
  /** Certificate chain (PEM). */
  cert: string;
  /** Private key (PEM). */
  key: string;
  /** Encodings accepted (default all three). */
  encodings?: Encoding[];
  /** Unacknowledged bytes per peer before `peer.send` waits (default 8 MiB). */
  sendBufferHigh?: number;
  /** Connections open at once; more are refused (default 10,000). */
  maxConnections?: number;
  /** Connections from one IP address; more are refused (default 1,000). */
  maxConnectionsPerIp?: number;
  /** Clients prove their address with a retry token first: one more round trip per
   * connection, but a spoofed flood costs the server nothing (default false). */
  validateAddresses?: boolean;
  /** Also take QUIC carried over TCP, on the same port number, from clients behind a UDP
   *  block (`transport: 'tcp'`); default false. */
  tcp?: boolean;
  /** Also accept WebTransport sessions from browsers (HTTP/3, ALPN `h3`) on the same UDP
   *  port, at `https://host:port{path}` (path default '/'), from pages of `origins` (e.g.
   *  'https://app.example.com'; default: any page): each is a connection like any other,
   *  over the same session protocol (docs/PROTOCOL.md, section 1b). */
  webTransport?: { path?: string; origins?: string[] };
}

export interface ConnectOptions {
  /** false: a connection of its own rather than the pooled one (default true). */
  pooled?: boolean;
}

export interface RequestOptions {
  /** Reject with ERR_TIMEOUT when no answer came within this many ms. */
  timeoutMs?: number;
  /** Its bytes go before those of this side's lower-priority streams, and it takes a
   *  free stream before waiting requests of lower priority (default 0, as messages and
   *  answers; a 32-bit integer, higher first). The answer comes at the responder's pace. */
  priority?: number;
  /** Safe to repeat (default false): on a connection resuming with 0-RTT (`earlyData`) it
   *  goes with the first packet, as 0-RTT data, which an attacker can replay. */
  idempotent?: boolean;
  /** Aborting it rejects the request with ERR_ABORTED at once and resets its stream, so the
   *  peer's answer, if it still comes, is dropped. */
  signal?: AbortSignal;
}

export interface SendOptions {
  /** The lane: each priority in use has a stream of its own, whose bytes go before those
   *  of lower-priority streams (requests and answers too). Order holds within a lane, not
   *  across lanes. A 32-bit integer, higher first (default 0); a connection has at most 8
   *  lanes (ERR_INVALID_ARGUMENT past them). */
  priority?: number;
  /** Safe to repeat (default false): on a connection resuming with 0-RTT (`earlyData`) they
   *  go with the first packet, as 0-RTT data, which an attacker can replay; unless messages
   *  sent before them on their lane wait for the handshake (order holds). */
  idempotent?: boolean;
  /** Resolve once queued to go, not once the peer's application has them (default false):
   *  the peer acknowledges them late, in fewer packets. They still arrive in order and are
   *  retransmitted until they do, but if the connection closes first, no error says so.
   *  Past `sendBufferHigh` waiting bytes they reject with ERR_FLOW_CONTROL_PAUSED, as
   *  confirmed sends do. */
  unconfirmed?: boolean;
}

/** What a handler learns of a message or request besides its body. */
export interface ArrivalInfo {
  /** It came as 0-RTT data, before the client finished its handshake: an attacker may
   *  have replayed it. Act on it only if doing so twice is harmless. */
  early: boolean;
}

/** What a request handler is told of its request. */
export interface RequestInfo extends ArrivalInfo {
  /** Aborted (with ERR_ABORTED) when the requester stops waiting for the answer (it gave
   *  up or its timeout passed), or with ERR_CONNECTION_CLOSED when the connection closes:
   *  the work may stop, as the answer can no longer be delivered. */
  readonly signal: AbortSignal;
}

export interface MessageHandlerOptions {
  /** The handler takes a message's bytes only until it returns: they may be views of a
   *  buffer quicwire reuses, which spares an allocation (and the garbage collector's
   *  work) per large message. Copy what you keep (default false). */
  borrow?: boolean;
}

export interface ReceiveOptions {
  /** Reject with ERR_TIMEOUT when no message came within this many ms. */
  timeoutMs?: number;
}

export interface CloseOptions {
  /** Send GOAWAY and let open requests finish (default true). */
  graceful?: boolean;
  /** Longest wait for open requests when graceful (default 5000). */
  timeoutMs?: number;
}

export interface ConnectionStats {
  /** `host:port` dialed (client) or the client's address (server). */
  peer: string;
  messagesOut: number;
  messagesIn: number;
  requestsOut: number;
  requestsIn: number;
  bytesOut: number;
  bytesIn: number;
  streamsOpen: number;
  /** Smoothed round-trip time, and the lowest one seen (ms). */
  rttMs: number;
  minRttMs: number;
  /** Packets declared lost (and retransmitted), and their bytes. */
  lostPackets: number;
  lostBytes: number;
  /** UDP datagrams sent and received. */
  udpTx: number;
  udpRx: number;
  /** Congestion window: bytes that may be in flight. */
  cwnd: number;
  /** Times the congestion controller cut the window (loss or ECN). */
  congestionEvents: number;
  /** The path's maximum datagram size now (bytes of UDP payload). */
  mtu: number;
  congestionControl: CongestionControl;
  /** Unreliable datagrams sent and received. */
  datagramsOut: number;
  datagramsIn: number;
  /** Datagrams dropped before they went: the send queue was full (the oldest go first). */
  datagramsDropped: number;
  /** The peer's datagrams that never arrived (gaps in their numbering, its drops included). */
  datagramsLost: number;
  /** The largest datagram this side may send, as of the connection's start or its last
   *  datagram sent (0: the peer takes none). */
  maxDatagramSize: number;
  /** 1 when the connection's 0-RTT data was taken (`earlyData`), or, in
   *  `zeroRttRejected`, turned down by the server and sent again after the handshake. In
   *  totals, how many connections. */
  zeroRttAccepted: number;
  zeroRttRejected: number;
  /** What carries its packets: 'udp', 'tcp' (`transport: 'tcp'`), or the browser's
   *  WebTransport (`transport: 'webtransport'`; its path figures are the browser's own). */
  carrier: 'udp' | 'tcp' | 'webtransport';
}

export interface PoolStats {
  /** Connections with messages or requests in flight. */
  active: number;
  /** Open connections with nothing in flight. */
  idle: number;
  /** Connections established so far. */
  created: number;
  /** `connect` calls answered by an existing or in-progress connection. */
  reused: number;
  /** Connections closed by the pool (idle timeout, LRU eviction). */
  evicted: number;
  /** Connection attempts that failed. */
  failed: number;
  /** Answers to the servers' requests that could not be sent (see `onError`). */
  answersFailed: number;
  /** The open connections' figures, added up. */
  totals: ConnectionStats;
  /** Those of every connection no longer open (closing, or gone), added up: with `totals`,
   *  what the client did since it started (never decreasing, for metrics). */
  ended: ConnectionStats;
  connections: ConnectionStats[];
}

export interface ServerStats {
  connections: number;
  /** Connections completed (TLS and HELLO). */
  accepted: number;
  /** Handshakes that failed (TLS, negotiation). */
  rejected: number;
  /** Connections refused at `maxConnections` or `maxConnectionsPerIp`. */
  refused: number;
  /** Clients sent to prove their address with a retry token (`validateAddresses`). */
  retried: number;
  /** Answers to clients' requests that could not be sent (see `onError`). */
  answersFailed: number;
  /** The open connections' figures, added up. */
  totals: ConnectionStats;
  /** Those of every connection no longer open, added up (see `PoolStats.ended`). */
  ended: ConnectionStats;
}

export interface DevCert {
  /** Certificate (PEM): the server's `cert`, and the clients' `ca`. */
  cert: string;
  /** Private key (PEM). */
  key: string;
  /** SHA-256 of the certificate (DER), in hex: what a browser's `WebTransport` takes in
   *  `serverCertificateHashes` to trust it without a CA (see `validDays`). Not enumerable,
   *  so `{ ...dev }` spreads only `cert` and `key` (into a server's options, say). */
  readonly hash: string;
}

export interface DevCertOptions {
  /** Valid from now for this many days (1 to 3650); default: never expires. Browsers take
   *  a certificate by its `hash` only when it is valid for 14 days at most. */
  validDays?: number;
}

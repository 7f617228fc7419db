// The only error class the API throws. `code` is stable (documented in the README);
// `message` is for people; `cause` keeps the underlying error.

export type ErrorCode =
  | 'ERR_INTERNAL'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_CONNECT_TIMEOUT'
  | 'ERR_TLS'
  | 'ERR_CONNECTION_CLOSED'
  | 'ERR_STREAM_RESET'
  | 'ERR_MESSAGE_TOO_LARGE'
  | 'ERR_DECODE'
  | 'ERR_ENCODE'
  | 'ERR_TIMEOUT'
  | 'ERR_FLOW_CONTROL_PAUSED'
  | 'ERR_POOL_EXHAUSTED'
  | 'ERR_NOT_INITIALIZED'
  | 'ERR_BACKEND_UNAVAILABLE'
  | 'ERR_REMOTE'
  | 'ERR_PROTOCOL'
  | 'ERR_NEGOTIATION'
  | 'ERR_IO';

export class QuicwireError extends Error {
  override readonly name = 'QuicwireError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

const CODED = /^(ERR_[A-Z_]+): ([\s\S]*)$/;

/** Turns an error from the engine ("ERR_X: message") into a QuicwireError. */
export function fromEngine(err: unknown): QuicwireError {
  if (err instanceof QuicwireError) return err;
  const text = err instanceof Error ? err.message : String(err);
  const m = CODED.exec(text);
  if (m) return new QuicwireError(m[1] as ErrorCode, m[2] ?? '', { cause: err });
  return new QuicwireError('ERR_INTERNAL', `internal error: ${text}`, { cause: err });
}

export function invalidArgument(message: string): QuicwireError {
  return new QuicwireError('ERR_INVALID_ARGUMENT', message);
}

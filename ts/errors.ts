// The only error class the API throws. `code` is stable (documented in the README);
// `message` is for people; `cause` keeps the underlying error.

import { ERROR_CODES, type ErrorCode } from './layout.js';

export type { ErrorCode };

export class QuicwireError extends Error {
  override readonly name = 'QuicwireError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

const KNOWN = new Set<string>(ERROR_CODES);

/** An error an engine call threw (its shell sets `code`), as a QuicwireError. Anything
 *  else (a panic, a broken binding) is ERR_INTERNAL. */
export function fromEngine(err: unknown): QuicwireError {
  if (err instanceof QuicwireError) return err;
  const text = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && KNOWN.has(code)) {
    return new QuicwireError(code as ErrorCode, text, { cause: err });
  }
  return new QuicwireError('ERR_INTERNAL', `internal error: ${text}`, { cause: err });
}

/** The code with this number (as events and write failures carry them). */
export function codeOf(n: number): ErrorCode {
  return ERROR_CODES[n] ?? 'ERR_INTERNAL';
}

/** A code's number, for an ERROR answer. */
export function codeNumber(code: ErrorCode): number {
  return ERROR_CODES.indexOf(code);
}

export function invalidArgument(message: string): QuicwireError {
  return new QuicwireError('ERR_INVALID_ARGUMENT', message);
}

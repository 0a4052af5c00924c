/**
 * Errors raised by the tensor engine. A TorchError carries the operator that failed and
 * libtorch's own message, so a user sees both what was called and why it failed.
 */
export class TorchError extends Error {
  readonly op: string;
  readonly detail: string;
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
    this.name = 'TorchError';
    this.op = op;
    this.detail = detail;
  }
}

/** The tensor was disposed (explicitly or at the end of a tidy() scope) and then used. */
export class DisposedTensorError extends Error {
  constructor(what: string) {
    super(`${what}: the tensor was disposed (explicitly, or at the end of a tidy() scope); keep() a tensor that must outlive its scope`);
    this.name = 'DisposedTensorError';
  }
}

/** Turns an exception thrown by the addon into a TorchError; other errors pass through. */
export function fromNative(e: unknown): unknown {
  if (e instanceof Error && (e as Error & { code?: string }).code === 'ERR_TORCH') {
    const i = e.message.indexOf(': ');
    return i > 0 ? new TorchError(e.message.slice(0, i), e.message.slice(i + 2)) : new TorchError('libtorch', e.message);
  }
  return e;
}

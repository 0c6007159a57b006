/** The errors of the upstream HTTP/1.1 client (router/upstream/http1.ts). */

/**
 * The engine could not be reached or broke the exchange: connection refused or reset, closed early, or a
 * response that is not valid HTTP/1.1. `beforeResponse` is true when no byte of the response had arrived, the
 * only case in which sending the request again (to a fresh engine) cannot duplicate work the engine started.
 */
export class UpstreamError extends Error {
  constructor(message: string, readonly beforeResponse: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = "UpstreamError";
  }
}

/** A request the pool refused after `close()`; nothing was sent. */
export class UpstreamPoolClosedError extends UpstreamError {
  constructor() {
    super("the upstream pool is closed", true);
    this.name = "UpstreamPoolClosedError";
  }
}

/**
 * The caller's request cannot be written as HTTP/1.1 without changing its meaning (a method that is not a
 * token, a path or header with spaces or line breaks). A bug in the caller, so it is not an UpstreamError.
 */
export class InvalidUpstreamRequestError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "InvalidUpstreamRequestError";
  }
}

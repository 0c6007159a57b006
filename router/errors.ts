/**
 * Errors in the OpenAI shape llama.cpp uses: `{"error": {"code", "message", "type"}}`. Handlers throw
 * an `ApiError`; the app's error handler renders it, so every error a client sees has this shape.
 */

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "server_error"
  | "not_supported_error"
  | "unavailable_error";

const STATUS_OF: Record<ErrorType, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  server_error: 500,
  not_supported_error: 501,
  unavailable_error: 503,
};

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly type: ErrorType,
    message: string,
    status?: number,
    /** extra response headers, e.g. Retry-After */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status ?? STATUS_OF[type];
  }
}

export const badRequest = (message: string): ApiError => new ApiError("invalid_request_error", message);
export const notFound = (message: string): ApiError => new ApiError("not_found_error", message);
export const serverError = (message: string): ApiError => new ApiError("server_error", message);
export const unavailable = (message: string, retryAfterS?: number): ApiError =>
  new ApiError(
    "unavailable_error",
    message,
    503,
    retryAfterS === undefined ? {} : { "Retry-After": String(retryAfterS) },
  );

/** The error type that goes with an HTTP status. */
export function errorTypeOf(status: number): ErrorType {
  const found = Object.entries(STATUS_OF).find(([, s]) => s === status)?.[0] as ErrorType | undefined;
  return found ?? (status >= 500 ? "server_error" : "invalid_request_error");
}

/**
 * The OpenAI-style error object every error answer carries. `type` is usually an `ErrorType`; a few
 * llama.cpp answers have their own (`feature_disabled`, a tool's).
 */
export function errorObject(
  status: number,
  type: ErrorType | string,
  message: string,
): { error: { code: number; message: string; type: string } } {
  return { error: { code: status, message, type } };
}

export function errorBody(status: number, type: ErrorType | string, message: string): string {
  return JSON.stringify(errorObject(status, type, message));
}

export function errorResponse(err: ApiError): Response {
  return new Response(errorBody(err.status, err.type, err.message), {
    status: err.status,
    headers: { "Content-Type": "application/json; charset=utf-8", ...err.headers },
  });
}

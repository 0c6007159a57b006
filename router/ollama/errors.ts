/**
 * Errors in Ollama's shape, `{"error": "message"}`, with the status the gateway chose. Handlers of
 * the Ollama routes throw `ApiError`s as every route does; `ollamaErrorShape` re-shapes what the
 * app's error handler made of them, and answers relayed from the gateway's own routes are re-shaped
 * the same way (`asOllamaError`), so an Ollama client never sees the OpenAI shape.
 */
import type { MiddlewareHandler } from "hono";

/** The message of an error body in either shape, or the text itself when it is neither. */
export function errorMessageOf(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: unknown };
    const error = body?.error;
    if (typeof error === "string") return error;
    const message = (error as { message?: unknown } | undefined)?.message;
    if (typeof message === "string") return message;
  } catch {
    // not JSON: the text says what went wrong
  }
  return text.trim() || "unknown error";
}

/** An Ollama error answer. */
export function ollamaError(status: number, message: string, headers: HeadersInit = {}): Response {
  const out = new Headers(headers);
  out.set("Content-Type", "application/json; charset=utf-8");
  return new Response(JSON.stringify({ error: message }), { status, headers: out });
}

/** A gateway error answer (OpenAI shape) as Ollama's: the same status and headers, its message. */
export async function asOllamaError(res: Response): Promise<Response> {
  const message = errorMessageOf(await res.text());
  const headers = new Headers(res.headers);
  headers.delete("Content-Length");
  return ollamaError(res.status, message, headers);
}

/**
 * Middleware for Ollama's paths: an error any handler or middleware threw (a bad key's 401, a body
 * over `--body-limit`), or a path that is not there, was answered in the OpenAI shape by the app's
 * handlers; this re-shapes it. An answer in Ollama's shape already stays as it is.
 */
export const ollamaErrorShape: MiddlewareHandler = async (c, next) => {
  await next();
  if (c.res.status >= 400) c.res = await asOllamaError(c.res);
};

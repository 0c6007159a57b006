/** The OpenAI side of end-to-end tests: a chat request body, the error shape, and SSE streams. */
import { assert, assertEquals } from "./assert.ts";

/** A short chat request for `model` (any value: bad-input tests send numbers, arrays...). */
export function chatBody(model: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model, messages: [{ role: "user", content: "hi" }], max_tokens: 4, ...extra };
}

export interface ErrorShape {
  /** the `error.type` expected; any string when not given */
  type?: string;
  /** also: `error` is the body's only key, and the message is not empty */
  exact?: boolean;
}

/** Asserts the OpenAI error shape `{"error":{"code","message","type"}}` with code = status. */
export function assertErrorBody(
  body: unknown,
  status: number,
  context: string,
  shape: ErrorShape = {},
): void {
  const error = (body as { error?: Record<string, unknown> } | null)?.error;
  assert(error && typeof error === "object", `${context}: no error object in ${JSON.stringify(body)}`);
  if (shape.exact) assertEquals(Object.keys(body as object), ["error"], `${context}: top-level keys`);
  assertEquals(Object.keys(error).sort(), ["code", "message", "type"], `${context}: error keys`);
  assertEquals(error.code, status, `${context}: error.code`);
  assertEquals(typeof error.message, "string", `${context}: error.message`);
  if (shape.exact) assert((error.message as string).length > 0, `${context}: empty message`);
  assertEquals(typeof error.type, "string", `${context}: error.type`);
  if (shape.type !== undefined) assertEquals(error.type, shape.type, `${context}: error.type`);
}

/** Asserts that `res` has this status and an OpenAI error body. */
export async function expectError(
  res: Response,
  status: number,
  context: string,
  shape: ErrorShape = {},
): Promise<void> {
  const text = await res.text();
  assertEquals(res.status, status, `${context}: ${text}`);
  assertErrorBody(JSON.parse(text), status, context, shape);
}

/** Reads an SSE body as it comes and returns its `data:` payloads. `onEvent` sees the count so far. */
export async function readSse(res: Response, onEvent?: (count: number) => void): Promise<string[]> {
  const events: string[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += value;
    let cut;
    while ((cut = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, cut).replace(/\r$/, "");
      buffered = buffered.slice(cut + 1);
      if (line.startsWith("data: ")) {
        events.push(line.slice(6));
        onEvent?.(events.length);
      }
    }
  }
  if (buffered.startsWith("data: ")) events.push(buffered.slice(6));
  return events;
}

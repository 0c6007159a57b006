/**
 * Ollama's framing: a stream is newline-delimited JSON (`application/x-ndjson`), one object a line.
 * Engines stream server-sent events; `eventsToNdjson` turns one into the other as the bytes arrive,
 * with nothing held back, and a client that goes away cancels the engine's stream through it.
 */

export const NDJSON_TYPE = "application/x-ndjson";

const encoder = new TextEncoder();

export function ndjsonLine(value: unknown): Uint8Array {
  return encoder.encode(`${JSON.stringify(value)}\n`);
}

/** An NDJSON answer, streamed. */
export function ndjsonResponse(body: ReadableStream<Uint8Array>, status = 200): Response {
  return new Response(body, { status, headers: { "Content-Type": NDJSON_TYPE, "X-Accel-Buffering": "no" } });
}

/** Splits an event stream's text into the payloads of its `data:` fields, as they complete. */
export class SseDataParser {
  #buffered = "";

  /** The payloads the text completes; a partial line waits for the next push. */
  push(text: string): string[] {
    this.#buffered += text;
    const lines = this.#buffered.split("\n");
    this.#buffered = lines.pop() ?? "";
    return lines.flatMap((line) => payloadOf(line));
  }

  /** The payload of a last line that had no newline. */
  end(): string[] {
    const rest = this.#buffered;
    this.#buffered = "";
    return payloadOf(rest);
  }
}

function payloadOf(raw: string): string[] {
  const line = raw.replace(/\r$/, "");
  if (!line.startsWith("data:")) return [];
  const data = line.slice(5).trimStart();
  return data && data !== "[DONE]" ? [data] : [];
}

/** What a translation from an engine's events to Ollama's objects does at each step. */
export interface EventTranslation {
  /** the objects to send for one event (its `data`, parsed) */
  event(data: unknown): unknown[];
  /** the objects to send once the engine's stream has ended */
  end(): unknown[];
  /** once, when the stream ended, failed or was cancelled */
  settled?(): void;
}

function parsed(payload: string): unknown {
  try {
    return JSON.parse(payload);
  } catch {
    return undefined;
  }
}

/** Engine SSE bytes in, Ollama NDJSON bytes out, one event at a time. */
export function eventsToNdjson(translation: EventTranslation): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  const parser = new SseDataParser();
  let settled = false;
  const settle = () => {
    if (settled) return;
    settled = true;
    translation.settled?.();
  };
  const send = (c: TransformStreamDefaultController<Uint8Array>, payloads: string[]) => {
    for (const payload of payloads) {
      const data = parsed(payload);
      if (data !== undefined) { for (const out of translation.event(data)) c.enqueue(ndjsonLine(out)); }
    }
  };
  return new TransformStream({
    transform(chunk, c) {
      send(c, parser.push(decoder.decode(chunk, { stream: true })));
    },
    flush(c) {
      send(c, parser.push(decoder.decode()));
      send(c, parser.end());
      for (const out of translation.end()) c.enqueue(ndjsonLine(out));
      settle();
    },
    cancel() {
      settle();
    },
  });
}

/** Reads a whole event stream, handing each event's parsed `data` to `onEvent`. */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  onEvent: (data: unknown) => void,
): Promise<void> {
  const parser = new SseDataParser();
  const handle = (payloads: string[]) => {
    for (const payload of payloads) {
      const data = parsed(payload);
      if (data !== undefined) onEvent(data);
    }
  };
  for await (const text of body.pipeThrough(new TextDecoderStream())) handle(parser.push(text));
  handle(parser.end());
}

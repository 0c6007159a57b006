/** `GET /models/sse` of a gateway under test, parsed as it arrives. */
import { assertEquals, assertMatch } from "./assert.ts";
import type { HasUrl } from "./http.ts";
import { HANG_MS } from "./wait.ts";

export interface SseEvent {
  model: string;
  event: string;
  data?: Record<string, unknown>;
}

/**
 * The `data:` payload of each event of an event stream as it arrives (an event's `data:` lines
 * joined); `afterChunk` runs once the events of each chunk read have been taken.
 */
export async function* sseData(
  body: ReadableStream<Uint8Array>,
  afterChunk?: () => void,
): AsyncGenerator<string> {
  let buf = "";
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim());
      if (data.length) yield data.join("\n");
    }
    afterChunk?.();
  }
}

/** The feed of one gateway; `onEvent` sees each event as it arrives (to sample the gateway then). */
export class SseFeed {
  readonly events: SseEvent[] = [];
  readonly #abort = new AbortController();
  readonly #done: Promise<void>;
  #wake?: () => void;

  constructor(gw: HasUrl, onEvent?: (e: SseEvent) => void) {
    this.#done = (async () => {
      const res = await fetch(`${gw.url}/models/sse`, { signal: this.#abort.signal });
      assertEquals(res.status, 200);
      assertMatch(res.headers.get("content-type") ?? "", /text\/event-stream/);
      for await (const data of sseData(res.body!, () => this.#wake?.())) {
        const event = JSON.parse(data);
        this.events.push(event);
        onEvent?.(event);
      }
    })().catch(() => {});
  }

  /** The first event (from `from` on) that matches; `timeoutMs` only bounds a hang. */
  async waitFor(pred: (e: SseEvent) => boolean, timeoutMs = HANG_MS, from = 0): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.slice(from).find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `no matching SSE event in ${timeoutMs} ms; got:\n${JSON.stringify(this.events.slice(from))}`,
        );
      }
      await new Promise<void>((r) => {
        const timer = setTimeout(r, Math.min(left, 200));
        this.#wake = () => {
          clearTimeout(timer);
          r();
        };
      });
    }
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#done;
  }
}

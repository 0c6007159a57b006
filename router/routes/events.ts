/**
 * `GET /models/sse`: llama.cpp's model event feed, plus what it lacks: a first `snapshot` event with
 * every model, so a new subscriber needs no second call, and a keep-alive so proxies don't cut it.
 */
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { modelVisible } from "../auth.ts";
import type { GatewayDeps } from "../deps.ts";
import type { ModelEvent } from "../scheduler/events.ts";
import { modelEntry } from "./model_entry.ts";

const KEEP_ALIVE_MS = 15_000;

export function eventRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.get("/models/sse", (c) => {
    c.header("X-Accel-Buffering", "no");
    return streamSSE(c, async (stream) => {
      const pending: ModelEvent[] = [];
      let wake: (() => void) | undefined;
      // a key limited to some models hears of those only, as it sees only those in /models
      const visible = (model: string) =>
        model === "*" || modelVisible(c, deps.scheduler.find(model)?.names ?? [model]);
      const unsubscribe = deps.events.subscribe((event) => {
        if (!visible(event.model)) return;
        pending.push(event);
        wake?.();
      });
      stream.onAbort(() => wake?.());
      const models = deps.scheduler.records().filter((r) => !r.spec.hidden && modelVisible(c, r.names))
        .map((r) => modelEntry(r, deps.scheduler));
      await stream.writeSSE({ data: JSON.stringify({ model: "*", event: "snapshot", data: { models } }) });
      try {
        while (!stream.aborted) {
          if (pending.length === 0) {
            const idle = new Promise<void>((resolve) => (wake = resolve));
            const timer = setTimeout(() => wake?.(), KEEP_ALIVE_MS);
            await idle;
            clearTimeout(timer);
            wake = undefined;
            if (pending.length === 0 && !stream.aborted) await stream.write(": ping\n\n");
            continue;
          }
          const event = pending.shift()!;
          await stream.writeSSE({ data: JSON.stringify(event) });
        }
      } finally {
        unsubscribe();
      }
    });
  });
  return app;
}

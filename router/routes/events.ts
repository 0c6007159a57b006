/**
 * `GET /models/sse`: llama.cpp's model event feed, plus what it lacks: a first `snapshot` event with
 * every model, so a new subscriber needs no second call, and a keep-alive so proxies don't cut it.
 */
import { Hono } from "hono";
import { modelVisible } from "../auth.ts";
import type { GatewayDeps } from "../deps.ts";
import type { ModelEvent } from "../scheduler/events.ts";
import { followSse } from "./follow.ts";
import { modelEntry } from "./model_entry.ts";

export function eventRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.get("/models/sse", (c) => {
    // a key limited to some models hears of those only, as it sees only those in /models
    const visible = (model: string) =>
      model === "*" || modelVisible(c, deps.scheduler.find(model)?.names ?? [model]);
    return followSse<ModelEvent>(c, {
      snapshot: () => {
        const models = deps.scheduler.records().filter((r) => !r.spec.hidden && modelVisible(c, r.names))
          .map((r) => modelEntry(r, deps.scheduler));
        return { model: "*", event: "snapshot", data: { models } };
      },
      subscribe: (push) => deps.events.subscribe((event) => visible(event.model) && push(event)),
      // llama.cpp's envelope, one event each; none is dropped, as its clients cannot ask again
      render: (events) => events,
      maxPending: Infinity,
    });
  });
  return app;
}

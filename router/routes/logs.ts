/**
 * `GET /models/logs?model=ID`: a model's recent log lines (the engine's output and what the gateway
 * said of it, as its model record keeps them), and with `&follow=1` the same as server-sent events,
 * then every new line as it is logged. Admin-only when admin keys are configured; a key limited to
 * some models reads only theirs.
 */
import { Hono } from "hono";
import { requireAdmin, requireModelAllowed } from "../auth.ts";
import type { GatewayDeps } from "../deps.ts";
import { badRequest } from "../errors.ts";
import { followSse } from "./follow.ts";

export function logRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.get("/models/logs", (c) => {
    requireAdmin(c, deps.config.adminKeysConfigured);
    const name = c.req.query("model") ?? "";
    const record = deps.scheduler.find(name);
    if (!record) throw badRequest(`model '${name}' not found`);
    requireModelAllowed(c, record.names);
    if (!followed(c.req.query("follow"))) return c.json({ model: record.id, lines: record.logs });
    return followSse<string>(c, {
      snapshot: () => ({ model: record.id, event: "snapshot", data: { lines: record.logs } }),
      subscribe: (push) => {
        record.logFollowers.add(push);
        return () => record.logFollowers.delete(push);
      },
      render: (lines, dropped) => [{
        model: record.id,
        event: "log",
        data: dropped ? { lines, dropped } : { lines },
      }],
    });
  });
  return app;
}

/** `follow=1` or `follow=true` follows; absent or anything else does not. */
export function followed(value: string | undefined): boolean {
  return value === "1" || value === "true";
}

/**
 * `GET /activity`: the last requests the gateway relayed, newest first (`?model=ID` for one model's,
 * `?limit=N` for fewer), and with `&follow=1` the same as server-sent events, then each request as it
 * ends. Admin-only when admin keys are configured; a key limited to some models sees only theirs.
 * With `--no-metrics` nothing is recorded, and the route says so.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { ActivityEntry } from "../activity/ring.ts";
import { modelVisible, requireAdmin, requireModelAllowed } from "../auth.ts";
import type { GatewayDeps } from "../deps.ts";
import { ApiError, badRequest } from "../errors.ts";
import { followSse } from "./follow.ts";
import { followed } from "./logs.ts";

export function activityRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.get("/activity", (c) => {
    requireAdmin(c, deps.config.adminKeysConfigured);
    const observer = deps.observer;
    if (!observer) throw metricsOff();
    const keep = entryFilter(c, deps);
    const limit = limitOf(c.req.query("limit"), observer.activity.capacity);
    if (!followed(c.req.query("follow"))) {
      return c.json({ object: "list", data: observer.activity.recent(keep, limit) });
    }
    return followSse<ActivityEntry>(c, {
      snapshot: () => ({ event: "snapshot", data: observer.activity.recent(keep, limit) }),
      subscribe: (push) => observer.activity.subscribe((entry) => keep(entry) && push(entry)),
      render: (entries, dropped) => [{ event: "activity", data: entries, ...(dropped ? { dropped } : {}) }],
    });
  });
  return app;
}

/** The 501 llama-server answers for an endpoint it was started without. */
export function metricsOff(): ApiError {
  return new ApiError("not_supported_error", "the gateway runs with --no-metrics: it records no metrics");
}

/** Which entries the request may see: one model's (`?model=`), and only models its key may use. */
function entryFilter(c: Context, deps: GatewayDeps): (entry: ActivityEntry) => boolean {
  const name = c.req.query("model");
  if (name !== undefined) {
    const record = deps.scheduler.find(name);
    if (!record) throw badRequest(`model '${name}' not found`);
    requireModelAllowed(c, record.names);
    return (entry) => entry.model === record.id;
  }
  const visible = new Map<string, boolean>();
  return (entry) => {
    // a request that reached no model says nothing of any model: only an unrestricted key sees it
    const names = entry.model === null ? [] : deps.scheduler.find(entry.model)?.names ?? [entry.model];
    let ok = visible.get(entry.model ?? "");
    if (ok === undefined) visible.set(entry.model ?? "", ok = modelVisible(c, names));
    return ok;
  };
}

function limitOf(raw: string | undefined, max: number): number {
  if (raw === undefined) return max;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw badRequest("limit must be a positive integer");
  return Math.min(Number(raw), max);
}

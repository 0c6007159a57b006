/** The router's model-management API: list, load, unload (llama.cpp's `/models` family; logs: logs.ts). */
import { Hono } from "hono";
import type { Context } from "hono";
import { modelVisible, requireAdmin, requireModelAllowed } from "../auth.ts";
import { badRequest, notFound } from "../errors.ts";
import { isSafeModelName } from "../sources/names.ts";
import { removeCacheModel } from "../sources/hf_cache.ts";
import type { GatewayDeps } from "../deps.ts";
import { modelEntry } from "./model_entry.ts";

export function modelRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const admin = (c: Context) => requireAdmin(c, deps.config.adminKeysConfigured);
  const list = async (c: Context) => {
    // llama.cpp: any non-empty value of `reload` rescans the sources first
    if (c.req.query("reload")) {
      admin(c);
      await deps.reload();
    }
    const now = Math.floor(Date.now() / 1000);
    const data = deps.scheduler.records()
      .filter((r) => !r.spec.hidden && modelVisible(c, r.names))
      .map((r) => modelEntry(r, deps.scheduler, now));
    return c.json({ object: "list", data });
  };
  app.get("/models", list);
  app.get("/v1/models", list);

  app.post("/models/load", async (c) => {
    admin(c);
    const name = await modelName(c);
    requireModelAllowed(c, deps.scheduler.find(name)?.names ?? [name]);
    await deps.scheduler.load(name);
    return c.json({ success: true });
  });
  app.post("/models/unload", async (c) => {
    admin(c);
    const name = await modelName(c);
    if (deps.scheduler.find(name)?.state === "downloading") await deps.puller.cancel(name);
    else deps.scheduler.unload(name);
    return c.json({ success: true });
  });

  // download into the cache; progress and the outcome arrive on /models/sse
  app.post("/models", async (c) => {
    admin(c);
    const name = await modelName(c);
    if (!name) throw badRequest("model must be a non-empty string");
    if (deps.scheduler.find(name)) throw badRequest(`model '${name}' already exists`);
    void deps.puller.pull(name);
    return c.json({ success: true });
  });

  // cache models only, by id: stop it, delete its files, forget it
  app.delete("/models", async (c) => {
    admin(c);
    const name = c.req.query("model") ?? "";
    if (!name) throw badRequest("model must be a non-empty string");
    const record = deps.scheduler.records().find((r) => r.id === name);
    if (!record) throw notFound(`model name=${name} is not found`);
    if (record.state === "downloading") await deps.puller.cancel(name);
    if (record.spec.source !== "cache" || !record.spec.cache) {
      throw badRequest(`model name=${name} is not removable (not from cache)`);
    }
    await deps.scheduler.remove(record);
    const removed = await removeCacheModel(record.spec);
    deps.log(`deleted ${name}: ${removed.length} files`);
    deps.events.publish({ model: name, event: "model_remove" });
    return c.json({ success: true });
  });
  return app;
}

/** The `model` field of a JSON body; a missing or empty one resolves to no model. */
export async function modelName(c: Context): Promise<string> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch (err) {
    throw badRequest(`request body is not valid JSON: ${(err as Error).message}`);
  }
  const model = (body as Record<string, unknown> | null)?.model;
  if (model !== undefined && typeof model !== "string") throw badRequest("model must be a string");
  if (model && !isSafeModelName(model)) throw badRequest("invalid model name");
  return model ?? "";
}

/** The router's model-management API: list, load, unload, logs (llama.cpp's `/models` family). */
import { Hono } from "hono";
import type { Context } from "hono";
import { badRequest } from "../errors.ts";
import type { GatewayDeps } from "../deps.ts";
import { modelEntry } from "./model_entry.ts";

export function modelRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const list = async (c: Context) => {
    // llama.cpp: any non-empty value of `reload` rescans the sources first
    if (c.req.query("reload")) await deps.reload();
    const now = Math.floor(Date.now() / 1000);
    const data = deps.scheduler.records().filter((r) => !r.spec.hidden).map((r) => modelEntry(r, now));
    return c.json({ object: "list", data });
  };
  app.get("/models", list);
  app.get("/v1/models", list);

  app.post("/models/load", async (c) => {
    await deps.scheduler.load(await modelName(c));
    return c.json({ success: true });
  });
  app.post("/models/unload", async (c) => {
    deps.scheduler.unload(await modelName(c));
    return c.json({ success: true });
  });
  app.get("/models/logs", (c) => {
    const name = c.req.query("model") ?? "";
    const record = deps.scheduler.find(name);
    if (!record) throw badRequest(`model '${name}' not found`);
    return c.json({ model: record.id, lines: record.logs });
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
  return model ?? "";
}

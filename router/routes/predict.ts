/**
 * Google Cloud Vertex AI's prediction protocol, as llama-server serves it with `AIP_MODE=PREDICTION`
 * (`server-http.cpp`, `register_gcp_compat`): `POST AIP_PREDICT_ROUTE` (default `/predict`) takes
 * `{"instances": [...]}`, runs each instance as a request to the endpoint its `@requestFormat` names
 * (a path, or its camelCase alias: `chatCompletions` is `/v1/chat/completions`), never streamed, and
 * answers `{"predictions": [...]}` in order. The gateway serves it itself, so engines never see
 * the `AIP_*` variables (they would all try to bind the gateway's port).
 */
import { Hono } from "hono";
import { badRequest, errorObject } from "../errors.ts";
import type { GcpCompat } from "../config.ts";
import { POST_ROUTES } from "./inference.ts";

/** llama.cpp's limit on instances in one prediction request. */
const MAX_INSTANCES = 128;

/** `/v1/chat/completions` → `chatCompletions`, `/apply-template` → `applyTemplate` (`path_to_gcp_format`). */
export function gcpFormatOf(path: string): string {
  const bare = path.replace(/^\/v1(?=\/)/, "").replace(/^\//, "").split(":")[0];
  return bare.replace(/[/_-]+(.)/g, (_, c: string) => c.toUpperCase()).replace(/[/_-]+$/, "");
}

/** The predict route; `dispatch` sends one internal request through the gateway's own routes. */
export function predictRoutes(gcp: GcpCompat, dispatch: (req: Request) => Promise<Response>): Hono {
  const app = new Hono();
  const byFormat = new Map<string, string>();
  for (const path of POST_ROUTES) if (!path.includes(":")) byFormat.set(gcpFormatOf(path), path);
  const paths = new Set(byFormat.values());

  app.post(gcp.predictRoute, async (c) => {
    let data: unknown;
    try {
      data = JSON.parse(await c.req.text());
    } catch (err) {
      throw badRequest((err as Error).message);
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      throw badRequest("request body must be a JSON object");
    }
    const instances = (data as Record<string, unknown>).instances;
    if (!Array.isArray(instances)) {
      throw badRequest("request body must include an array field named instances");
    }
    if (instances.length > MAX_INSTANCES) {
      throw badRequest(`instances array exceeds maximum size of ${MAX_INSTANCES}`);
    }
    const headers = new Headers(c.req.raw.headers);
    headers.set("Content-Type", "application/json");
    headers.delete("Content-Length");
    const predictOne = async (instance: unknown): Promise<unknown> => {
      if (instance === null || typeof instance !== "object" || Array.isArray(instance)) {
        return invalid("each instance must be a JSON object");
      }
      const { "@requestFormat": format, ...payload } = instance as Record<string, unknown>;
      if (typeof format !== "string") return invalid("each instance must include a string @requestFormat");
      const path = byFormat.get(format) ?? (paths.has(format) ? format : undefined);
      if (!path) return invalid(`no handler registered for @requestFormat: ${format}`);
      if ("stream" in payload) payload.stream = false;
      const url = new URL(path, c.req.url);
      const res = await dispatch(
        new Request(url, {
          method: "POST",
          headers,
          body: JSON.stringify(payload),
          signal: c.req.raw.signal,
        }),
      );
      const text = await res.text();
      if (!text) return null;
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    };
    return c.json({ predictions: await Promise.all(instances.map(predictOne)) });
  });
  return app;
}

function invalid(message: string): unknown {
  return errorObject(400, "invalid_request_error", message);
}

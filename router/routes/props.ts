/** The router's own `/health` and `/props` (the latter only without `?model=`, in router mode). */
import { Hono } from "hono";
import type { GatewayDeps } from "../deps.ts";
import { ApiError, errorResponse } from "../errors.ts";
import type { DeviceReport, GatewayMemory } from "../memory/port.ts";
import type { Scheduler } from "../scheduler/scheduler.ts";

export function propsRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const health = () => {
    // llama-server with a model answers 503 until that model is ready; the gateway listens before its
    // first spawn (while the model is projected), and that counts as loading too
    const model = deps.defaultModel ? deps.scheduler.find(deps.defaultModel) : undefined;
    if (model && (model.state === "loading" || (model.state === "unloaded" && model.generation === 0))) {
      return errorResponse(new ApiError("unavailable_error", "Loading model", 503));
    }
    return Response.json({ status: "ok" });
  };
  app.get("/health", health);
  app.get("/v1/health", health);
  app.get("/props", async (c, next) => {
    // on a single-model command line, the default model's engine answers, as llama-server does
    if (c.req.query("model") || deps.defaultModel) return next();
    const memory = deps.memory ? await memoryBlock(deps.memory, deps.scheduler) : undefined;
    return c.json({
      role: "router",
      max_instances: deps.config.modelsMax,
      models_autoload: deps.config.autoload,
      model_alias: "llama-server",
      model_path: "none",
      default_generation_settings: { params: {}, n_ctx: 0 },
      ui_settings: {},
      build_info: deps.buildInfo,
      cors_proxy_enabled: deps.features?.settings.corsProxy ?? false,
      switchyard: { queue: deps.scheduler.queueLength(), running: deps.scheduler.aliveCount() },
      ...(memory ? { memory } : {}),
    });
  });
  return app;
}

/** Per device, in bytes: what there is, what models may claim and what they have claimed now. */
async function memoryBlock(
  memory: GatewayMemory,
  scheduler: Scheduler,
): Promise<Record<string, DeviceReport & { claimed: number }>> {
  const claimed = scheduler.claimed();
  const devices = await memory.report();
  return Object.fromEntries(
    Object.entries(devices).map(([device, d]) => [device, { ...d, claimed: claimed[device] ?? 0 }]),
  );
}

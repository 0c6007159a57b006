/** The router's own `/health` and `/props` (the latter only without `?model=`). */
import { Hono } from "hono";
import type { GatewayDeps } from "../deps.ts";

export function propsRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  const health = () => Response.json({ status: "ok" });
  app.get("/health", health);
  app.get("/v1/health", health);
  app.get("/props", (c, next) => {
    if (c.req.query("model")) return next();
    return c.json({
      role: "router",
      max_instances: deps.config.modelsMax,
      models_autoload: deps.config.autoload,
      model_alias: "llama-server",
      model_path: "none",
      default_generation_settings: { params: {}, n_ctx: 0 },
      ui_settings: {},
      build_info: deps.buildInfo,
      cors_proxy_enabled: false,
      switchyard: { queue: deps.scheduler.queueLength(), running: deps.scheduler.aliveCount() },
    });
  });
  return app;
}

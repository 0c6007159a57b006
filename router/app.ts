/** The Hono app: middleware and route mounting only. */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { keyAuth } from "./auth.ts";
import { ApiError, errorResponse } from "./errors.ts";
import type { GatewayDeps } from "./deps.ts";
import { ollamaErrorShape } from "./ollama/errors.ts";
import { eventRoutes } from "./routes/events.ts";
import { featureRoutes } from "./routes/features.ts";
import { activityRoutes } from "./routes/activity.ts";
import { inferenceRoutes } from "./routes/inference.ts";
import { logRoutes } from "./routes/logs.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { modelRoutes } from "./routes/models.ts";
import { ollamaRoutes } from "./routes/ollama.ts";
import { predictRoutes } from "./routes/predict.ts";
import { propsRoutes } from "./routes/props.ts";
import { streamRoutes } from "./routes/streams.ts";
import { llamacppApiAlias, uiRoutes } from "./routes/ui.ts";

export function createApp(deps: GatewayDeps): Hono {
  const { config } = deps;
  const app = new Hono();
  const api = new Hono();

  // first, so that it also re-shapes what the middleware below refuses (a bad key, a body too large)
  api.use("/api/*", ollamaErrorShape);
  if (config.corsOrigins) {
    const allowed = config.corsOrigins.split(",").map((o) => o.trim()).filter(Boolean);
    api.use("*", cors({ origin: allowed.includes("*") ? "*" : allowed }));
  }
  if (config.apiKeys.length) api.use("*", keyAuth(config.apiKeys));
  api.use(
    "*",
    bodyLimit({
      maxSize: config.bodyLimit,
      onError: () => {
        throw new ApiError("invalid_request_error", `request body exceeds ${config.bodyLimit} bytes`, 413);
      },
    }),
  );
  api.route("/", propsRoutes(deps));
  api.route("/", modelRoutes(deps));
  api.route("/", eventRoutes(deps));
  api.route("/", logRoutes(deps));
  api.route("/", activityRoutes(deps));
  // before the proxied routes: `/metrics` without `?model` is the gateway's own page
  api.route("/", metricsRoutes(deps));
  api.route("/", inferenceRoutes(deps));
  if (config.gcp) api.route("/", predictRoutes(config.gcp, (req) => Promise.resolve(app.fetch(req))));
  api.route("/", streamRoutes(deps));
  api.route("/", featureRoutes(deps));
  api.route("/", ollamaRoutes(deps, (req) => Promise.resolve(app.fetch(req))));
  if (config.uiEnabled) {
    app.route(
      "/",
      uiRoutes({
        home: config.webui,
        staticPath: config.staticPath,
        apiPrefix: config.apiPrefix,
        offline: config.offline,
        log: deps.log,
      }),
    );
  }
  if (config.gcp?.healthRoute) {
    // public, as /health is: Vertex AI probes it without credentials
    app.get(config.gcp.healthRoute, (c) => app.fetch(new Request(new URL("/health", c.req.url))));
  }
  app.route(config.apiPrefix || "/", api);
  if (config.uiEnabled) llamacppApiAlias(app, config.apiPrefix);

  app.notFound(() => errorResponse(new ApiError("not_found_error", "File Not Found")));
  app.onError((err) => {
    if (err instanceof ApiError) return errorResponse(err);
    if (err instanceof HTTPException) {
      return errorResponse(new ApiError("invalid_request_error", err.message, err.status));
    }
    if (err instanceof DOMException && (err.name === "AbortError" || err.name === "TimeoutError")) {
      // the client is gone (nobody reads this) or the request outlived --timeout
      return errorResponse(
        new ApiError(
          "unavailable_error",
          `request ${err.name === "TimeoutError" ? "timed out" : "aborted"}`,
          503,
        ),
      );
    }
    deps.log(`internal error: ${(err as Error).stack ?? err}`);
    return errorResponse(new ApiError("server_error", (err as Error).message ?? String(err)));
  });
  return app;
}

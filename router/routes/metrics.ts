/**
 * `GET /metrics`. Which page it is:
 *
 * - `/metrics/gateway`, always, and `/metrics` without `?model` in router mode: the gateway's own
 *   page (router/metrics/), its families and every running engine's `llamacpp:*` with a `model` label.
 *   llama.cpp's router has nothing there (a 400), so that page takes its place.
 * - `/metrics?model=ID`: that engine's own page, proxied as llama.cpp's router proxies it, and so is
 *   `/metrics` on a single-model command line (`-m`), where llama-server's scrapers and tests read the
 *   default engine's unlabelled page. Engines always run with `--metrics` for the gateway's page, but
 *   a model's own page answers 501 unless `--metrics` was asked for, as llama-server does.
 *
 * The gateway's page is admin-only when admin keys are configured, and a key limited to some models
 * sees only their series.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { modelVisible, requireAdmin, requireModelAllowed } from "../auth.ts";
import type { GatewayDeps } from "../deps.ts";
import { ApiError } from "../errors.ts";
import type { ModelRecord } from "../scheduler/record.ts";
import { metricsOff } from "./activity.ts";

export function metricsRoutes(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.get("/metrics/gateway", (c) => gatewayPage(c, deps));
  app.get("/metrics", (c, next) => {
    const name = c.req.query("model");
    if (!name && !deps.defaultModel) return gatewayPage(c, deps);
    const record = (name ? deps.scheduler.find(name) : undefined) ??
      (deps.defaultModel ? deps.scheduler.find(deps.defaultModel) : undefined);
    if (deps.config.metrics && record) {
      requireModelAllowed(c, record.names);
      if (!enginePageAsked(record, deps.config.engineMetricsAsked)) throw enginePageOff();
    }
    // the inference routes proxy it to the engine
    return next();
  });
  return app;
}

async function gatewayPage(c: Context, deps: GatewayDeps): Promise<Response> {
  requireAdmin(c, deps.config.adminKeysConfigured);
  if (!deps.observer) throw metricsOff();
  const restricted = !modelVisible(c, []);
  const visible = restricted
    ? (model: string) => modelVisible(c, deps.scheduler.find(model)?.names ?? [model])
    : undefined;
  return c.body(await deps.observer.page(visible), 200, { "Content-Type": deps.observer.contentType });
}

/** Whether the user asked for the model's own page: `--metrics` on the command line or in its preset. */
export function enginePageAsked(record: Pick<ModelRecord, "spec">, askedForAll: boolean): boolean {
  return askedForAll || record.spec.options.get("--metrics") === true;
}

/** llama-server's answer to `/metrics` when it was started without `--metrics`. */
function enginePageOff(): ApiError {
  return new ApiError(
    "not_supported_error",
    "This server does not support metrics endpoint. Start it with `--metrics`",
  );
}

/**
 * Every running engine's own `/metrics` page (llama-server started with `--metrics`), asked for all at
 * once, each with a short time limit: a hung or slow engine costs a scrape that limit at most, and
 * the others' pages still arrive. Engines are asked on the gateway's kept-alive connections.
 */
import type { UpstreamPool } from "../upstream/http1.ts";

export interface EngineTarget {
  model: string;
  port: number;
}

/** One engine's page, or why there is none. */
export type EnginePage = { model: string; page: string } | { model: string; error: string };

/** Reads an engine's page; must give up when `signal` aborts. */
export type PageFetcher = (port: number, signal: AbortSignal) => Promise<string>;

/** How long a scrape waits for an engine's page by default. */
export const ENGINE_PAGE_TIMEOUT_MS = 1000;

/** Every target's page, asked for concurrently, each given up after `timeoutMs`. */
export function gatherEnginePages(
  targets: readonly EngineTarget[],
  fetchPage: PageFetcher,
  timeoutMs: number = ENGINE_PAGE_TIMEOUT_MS,
): Promise<EnginePage[]> {
  return Promise.all(targets.map(async ({ model, port }): Promise<EnginePage> => {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      return { model, page: await fetchPage(port, controller.signal) };
    } catch (err) {
      return {
        model,
        error: controller.signal.aborted ? String(controller.signal.reason.message) : String(err),
      };
    } finally {
      clearTimeout(timer);
    }
  }));
}

/** Fetches `path` (the engines' `/metrics`, under `--api-prefix`) from an engine on the pool. */
export function pageFetcher(pool: UpstreamPool, path: string): PageFetcher {
  return async (port, signal) => {
    const res = await pool.request({
      port,
      method: "GET",
      pathAndQuery: path,
      headers: [],
      body: null,
      signal,
    });
    const bytes = res.bytes ??
      (res.stream ? new Uint8Array(await new Response(res.stream).arrayBuffer()) : null);
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    return bytes ? new TextDecoder().decode(bytes) : "";
  };
}

/**
 * llama-server's own router↔child protocol (tools/server/server-models.cpp), which it speaks when
 * `LLAMA_SERVER_ROUTER_PORT` is set: state lines on stdout, an exit line on stdin. Translating it
 * here means the runner needs no health polling to know when the engine loads, is ready or sleeps.
 */
import type { RunnerMessage } from "./protocol.ts";

/** Prefix of a state line; the rest is `{"state": ..., "payload": {...}}`. */
export const CHILD_STATE_PREFIX = "cmd_child_to_router:state:";

/** Asks a ready engine to shut down gracefully. Before its first `ready` nothing reads stdin. */
export const ROUTER_EXIT_LINE = "cmd_router_to_child:exit\n";

/** The env var whose presence turns llama-server into a router child. Its value is never read. */
export const ROUTER_PORT_ENV = "LLAMA_SERVER_ROUTER_PORT";

/** What llama-server logs when it cannot bind its port (server-http.cpp), then it exits with 1. */
export const BIND_FAILURE_TEXT = "couldn't bind HTTP server socket";

/** The messages an engine output line can become. */
export type EngineLineMessage = Extract<
  RunnerMessage,
  { type: "progress" } | { type: "ready" } | { type: "sleeping" } | { type: "log" }
>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Translates one engine output line. Anything that is not a well-formed state line, including an
 * unknown state (on which llama.cpp's router asserts and aborts), passes through as a log line.
 */
export function parseEngineLine(line: string): EngineLineMessage {
  if (!line.startsWith(CHILD_STATE_PREFIX)) return { type: "log", line };
  let data: unknown;
  try {
    data = JSON.parse(line.slice(CHILD_STATE_PREFIX.length));
  } catch {
    return { type: "log", line };
  }
  if (!isRecord(data)) return { type: "log", line };
  const payload = isRecord(data.payload) ? data.payload : {};
  switch (data.state) {
    case "loading":
    // A download child reports `{url, downloaded, total}` or `{result}`: progress of another kind.
    case "downloading":
      return { type: "progress", progress: payload };
    case "ready":
      return { type: "ready", info: payload };
    case "sleeping":
      return { type: "sleeping" };
    default:
      return { type: "log", line };
  }
}

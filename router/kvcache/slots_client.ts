/**
 * llama-server's slot API, as the KV cache store uses it: `GET /slots` (which slots hold a prompt),
 * `POST /slots/{id}?action=save|restore` with a file name relative to the engine's `--slot-save-path`
 * (tools/server/server-context.cpp, `handle_slots_save`/`handle_slots_restore`).
 *
 * It keeps its own sockets, apart from the gateway's upstream pool, and closes them when asked
 * (`release`): a save runs right before the engine is asked to stop, when the gateway has closed its
 * kept-alive sockets to it, and llama-server polls each open socket before it exits.
 */
import { UpstreamPool } from "../upstream/http1.ts";
import type { SlotFacts } from "./policy.ts";

/** What the engine reports of one slot save or restore. */
export interface SlotTransfer {
  /** `n_saved` or `n_restored` */
  tokens: number;
  /** `n_written` or `n_read` */
  bytes: number;
  /** `timings.save_ms` or `timings.restore_ms` */
  ms: number;
}

/** The engine refused or failed a slot request; `message` is its own error text. */
export class SlotApiError extends Error {
  override name = "SlotApiError";
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** The calls the store makes, behind an interface so the store's tests can stand in for an engine. */
export interface SlotApi {
  /** every slot with the tokens it holds; undefined when the engine does not list them (`--no-slots`) */
  list(port: number, signal: AbortSignal): Promise<SlotFacts[] | undefined>;
  save(port: number, slot: number, filename: string, signal: AbortSignal): Promise<SlotTransfer>;
  restore(port: number, slot: number, filename: string, signal: AbortSignal): Promise<SlotTransfer>;
  /** closes this client's sockets to the engine at `port` */
  release(port: number): void;
}

export class EngineSlots implements SlotApi {
  readonly #pool = new UpstreamPool({ maxIdlePerPort: 1 });
  readonly #prefix: string;

  /** `apiPrefix`: engines serve under the gateway's `--api-prefix` too */
  constructor(apiPrefix = "") {
    this.#prefix = apiPrefix;
  }

  async list(port: number, signal: AbortSignal): Promise<SlotFacts[] | undefined> {
    const { status, body } = await this.#call(port, "GET", "/slots", null, signal);
    if (status === 501 || status === 404) return undefined;
    if (status !== 200 || !Array.isArray(body)) throw apiError(status, body, "GET /slots");
    return body.map((s: Record<string, unknown>) => ({
      id: Number(s.id),
      promptTokens: Number(s.n_prompt_tokens ?? 0) || 0,
    }));
  }

  save(port: number, slot: number, filename: string, signal: AbortSignal): Promise<SlotTransfer> {
    return this.#transfer(port, slot, "save", filename, signal);
  }

  restore(port: number, slot: number, filename: string, signal: AbortSignal): Promise<SlotTransfer> {
    return this.#transfer(port, slot, "restore", filename, signal);
  }

  release(port: number): void {
    this.#pool.closePort(port);
  }

  async #transfer(
    port: number,
    slot: number,
    action: "save" | "restore",
    filename: string,
    signal: AbortSignal,
  ): Promise<SlotTransfer> {
    const what = `POST /slots/${slot}?action=${action}`;
    const { status, body } = await this.#call(port, "POST", `/slots/${slot}?action=${action}`, {
      filename,
    }, signal);
    if (status !== 200 || typeof body !== "object" || body === null) throw apiError(status, body, what);
    const b = body as Record<string, unknown>;
    const timings = (b.timings ?? {}) as Record<string, unknown>;
    return {
      tokens: Number(action === "save" ? b.n_saved : b.n_restored) || 0,
      bytes: Number(action === "save" ? b.n_written : b.n_read) || 0,
      ms: Number(action === "save" ? timings.save_ms : timings.restore_ms) || 0,
    };
  }

  async #call(
    port: number,
    method: string,
    path: string,
    json: unknown,
    signal: AbortSignal,
  ): Promise<{ status: number; body: unknown }> {
    const body = json === null ? null : new TextEncoder().encode(JSON.stringify(json));
    const res = await this.#pool.request({
      port,
      method,
      pathAndQuery: this.#prefix + path,
      headers: body ? [["Content-Type", "application/json"]] : [],
      body,
      signal,
    });
    const bytes = res.bytes ??
      (res.stream ? new Uint8Array(await new Response(res.stream).arrayBuffer()) : null);
    const text = bytes ? new TextDecoder().decode(bytes) : "";
    try {
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    } catch {
      return { status: res.status, body: text };
    }
  }
}

/** The engine's error, in its words when it gave them (`{"error":{"message"}}`). */
function apiError(status: number, body: unknown, what: string): SlotApiError {
  const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
  return new SlotApiError(
    `${what}: ${status} ${typeof message === "string" ? message : JSON.stringify(body)}`,
    status,
  );
}

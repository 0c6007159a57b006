/** Small HTTP helpers for end-to-end tests against a gateway. */
import { engineBinPath } from "./llama_server.ts";
import { HANG_MS } from "./wait.ts";

export interface HasUrl {
  url: string;
}

/**
 * Undefined when llama-server is there (`LLAMA_SERVER_BIN`, as `deno task test` sets it, or the cached
 * build); otherwise why the engine tests are skipped. Tests never start a 10-minute build themselves.
 */
export async function engineAvailable(): Promise<string | undefined> {
  const bin = engineBinPath();
  try {
    await Deno.stat(bin);
    return undefined;
  } catch {
    const why = `no llama-server at ${bin}; run \`deno task engine\` (or \`deno task test\`) to build it`;
    console.error(`skipping engine tests: ${why}`);
    return why;
  }
}

export async function getJson(gw: HasUrl, path: string, headers?: HeadersInit) {
  const res = await fetch(gw.url + path, { headers });
  const body = await res.json();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

export function postJson(gw: HasUrl, path: string, body: unknown, headers?: HeadersInit): Promise<Response> {
  return postJsonWith(gw, path, body, { headers });
}

/** `postJson` with an abort signal (a timeout, or a client that leaves) besides the headers. */
export function postJsonWith(
  gw: HasUrl,
  path: string,
  body: unknown,
  init: { headers?: HeadersInit; signal?: AbortSignal },
): Promise<Response> {
  return fetch(gw.url + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...init.headers },
    body: JSON.stringify(body),
    signal: init.signal,
  });
}

/**
 * Polls `/models` until the model reaches `state` (the router's own tests poll the same way); `timeoutMs`
 * only bounds a hang.
 */
export async function waitForStatus(
  gw: HasUrl,
  model: string,
  state: string,
  timeoutMs = HANG_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const list = await getJson(gw, "/models");
    last = list.data.find((m: { id: string }) => m.id === model)?.status?.value ?? "(absent)";
    if (last === state) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${model} did not reach ${state} in ${timeoutMs} ms (last: ${last})`);
}

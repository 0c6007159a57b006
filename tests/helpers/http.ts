/** Small HTTP helpers for end-to-end tests against a gateway. */
import { resolveEngine } from "../../runners/engine.ts";

export interface HasUrl {
  url: string;
}

/** Undefined when llama-server can be found; otherwise why the engine tests are skipped. */
export async function engineAvailable(): Promise<string | undefined> {
  try {
    await resolveEngine({ env: Deno.env.toObject(), build: false });
    return undefined;
  } catch (err) {
    const why = `no llama-server (${(err as Error).message}); run \`deno task engine\` to build it`;
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
  return fetch(gw.url + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

/** Polls `/models` until the model reaches `state` (the router's own tests poll the same way). */
export async function waitForStatus(gw: HasUrl, model: string, state: string, timeoutMs = 30_000): Promise<void> {
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

/** Cold start: from nothing running for the model to its first streamed token. */
import { encodeRequest, HttpConnection } from "./http_client.ts";
import { COLD_SETTLE_MS } from "./options.ts";
import { type Server, spawnServer } from "./procs.ts";
import { coldBody, expectOk, getJson, MODEL, postJson, sleep, type System } from "./systems.ts";

const UNLOAD_TIMEOUT_MS = 30_000;
const COLD_REQUEST_RETRY_MS = 2;
const COLD_REQUEST_RETRIES = 2_500;

/** A model's state in a router's GET /models. */
async function modelState(sys: System, model: string): Promise<string> {
  const list = await getJson(`${sys.url}/models`) as { data: { id: string; status: { value: string } }[] };
  return list.data.find((m) => m.id === model)?.status?.value ?? "(absent)";
}

/** Polls a router's GET /models until `model` is unloaded (its engine has exited). */
export async function waitUnloaded(sys: System, model: string): Promise<void> {
  const deadline = performance.now() + UNLOAD_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (await modelState(sys, model) === "unloaded") return;
    await sleep(10);
  }
  throw new Error(`${sys.key}: ${model} not unloaded in ${UNLOAD_TIMEOUT_MS} ms`);
}

async function unloadAndWait(sys: System): Promise<void> {
  const res = await postJson(`${sys.url}/models/unload`, { model: MODEL });
  const text = await res.text();
  if (!res.ok) throw new Error(`unload on ${sys.key}: ${res.status} ${text}`);
  await waitUnloaded(sys, MODEL);
}

/**
 * Sends `body` to `/completion` until it is answered: connection refused and 503 (still loading) are
 * retried. Returns the time from `t0` to the answer's first body byte (for a stream: its first event).
 */
async function firstTokenMs(port: number, t0: number, body: unknown): Promise<number> {
  const req = encodeRequest("POST", port, "/completion", body);
  let last = "";
  for (let i = 0; i < COLD_REQUEST_RETRIES; i++) {
    const conn = new HttpConnection(port);
    try {
      const ex = await conn.request(req, true);
      if (ex.status === 200) return performance.now() - t0 - (ex.totalMs - ex.firstBodyMs);
      last = `HTTP ${ex.status}`;
    } catch (err) {
      last = (err as Error).message;
    } finally {
      conn.close();
    }
    await sleep(COLD_REQUEST_RETRY_MS);
  }
  throw new Error(`no first token on port ${port}: ${last}`);
}

/**
 * Spawns llama-server on `modelPath` and sends it `body` the moment it says it listens (no polling delay;
 * retries cover the rest). Returns the server, left running, and the time from `t0` to its first answer.
 */
export async function spawnAnswering(
  bin: string,
  modelPath: string,
  engineFlags: string[],
  body: unknown,
  t0: number,
): Promise<{ server: Server; ms: number }> {
  const listening = Promise.withResolvers<void>();
  const server = spawnServer(bin, ["-m", modelPath, ...engineFlags], (line) => {
    if (/listening on http/.test(line)) listening.resolve();
  });
  try {
    await Promise.race([listening.promise, sleep(10_000), server.status]);
    return { server, ms: await firstTokenMs(server.port, t0, body) };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** (a)'s cold start: from spawning llama-server to the first streamed token. */
export async function coldDirect(bin: string, modelPath: string, engineFlags: string[]): Promise<number> {
  const { server, ms } = await spawnAnswering(bin, modelPath, engineFlags, coldBody, performance.now());
  await server.stop();
  return ms;
}

/** (b) and (c)'s cold start: a request for an unloaded model, to its first streamed token. */
export async function coldRouted(sys: System): Promise<number> {
  await unloadAndWait(sys);
  await sleep(COLD_SETTLE_MS);
  const conn = new HttpConnection(sys.port);
  try {
    const ex = expectOk(
      await conn.request(encodeRequest("POST", sys.port, "/completion", coldBody), true),
      "cold",
    );
    return ex.firstBodyMs;
  } finally {
    conn.close();
  }
}

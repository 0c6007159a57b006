/** Cold start: from nothing running for the model to its first streamed token. */
import { encodeRequest, HttpConnection } from "./http_client.ts";
import { COLD_SETTLE_MS } from "./options.ts";
import { spawnServer } from "./procs.ts";
import { coldBody, expectOk, getJson, MODEL, postJson, sleep, type System } from "./systems.ts";

const UNLOAD_TIMEOUT_MS = 30_000;
const COLD_REQUEST_RETRY_MS = 2;
const COLD_REQUEST_RETRIES = 2_500;

/** The model's state in a router's GET /models. */
async function modelState(sys: System): Promise<string> {
  const list = await getJson(`${sys.url}/models`) as { data: { id: string; status: { value: string } }[] };
  return list.data.find((m) => m.id === MODEL)?.status?.value ?? "(absent)";
}

async function unloadAndWait(sys: System): Promise<void> {
  const res = await postJson(`${sys.url}/models/unload`, { model: MODEL });
  const text = await res.text();
  if (!res.ok) throw new Error(`unload on ${sys.key}: ${res.status} ${text}`);
  const deadline = performance.now() + UNLOAD_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (await modelState(sys) === "unloaded") return;
    await sleep(10);
  }
  throw new Error(`${sys.key}: ${MODEL} not unloaded in ${UNLOAD_TIMEOUT_MS} ms`);
}

/** Sends a streamed completion until it is answered: connection refused and 503 (still loading) are retried. */
async function firstTokenMs(port: number, t0: number): Promise<number> {
  const req = encodeRequest("POST", port, "/completion", coldBody);
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

/** (a)'s cold start: from spawning llama-server to the first streamed token. */
export async function coldDirect(bin: string, modelPath: string, engineFlags: string[]): Promise<number> {
  const listening = Promise.withResolvers<void>();
  const t0 = performance.now();
  const server = spawnServer(bin, ["-m", modelPath, ...engineFlags], (line) => {
    if (/listening on http/.test(line)) listening.resolve();
  });
  try {
    // The request goes out the moment the server says it listens (no polling delay); retries cover the rest.
    await Promise.race([listening.promise, sleep(10_000), server.status]);
    return await firstTokenMs(server.port, t0);
  } finally {
    await server.stop();
  }
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

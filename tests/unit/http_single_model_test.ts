/**
 * A single-model command line (`-m model.gguf`) against the real app in process: `/health` answers
 * 503 while its model is projected and loads, a request that comes meanwhile joins that load, requests without a `model` the gateway knows go to it, `/props` and
 * `/slots` without `?model` are its engine's, and the routes of router mode keep working beside it.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../helpers/assert.ts";
import { type InProcessGateway, withInProcess } from "../helpers/in_process.ts";
import { chatBody } from "../helpers/openai.ts";
import { keyed } from "../helpers/requests.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";
import type { GatewayMemory } from "../../router/memory/port.ts";
import { HOST } from "../../router/memory/projection.ts";

const single = (dir: string) => ({ args: ["-m", join(dir, "solo.gguf")] });

/** Which engine got the request: the stub engines answer a chat with their model id. */
async function answeredBy(gw: InProcessGateway, model: unknown): Promise<string> {
  const res = await gw.send("/v1/chat/completions", keyed({ method: "POST", json: chatBody(model) }));
  assertEquals(res.status, 200, `chat for ${JSON.stringify(model)}`);
  return (await res.json()).model;
}

Deno.test("-m: /health is 503 'Loading model' until the model is ready, then ok", async () => {
  await withInProcess(["solo"], single, async (gw, dir) => {
    const id = join(dir, "solo.gguf");
    assertEquals(gw.scheduler.find(id)?.state, "loading", "the model loads at start-up");
    const loading = await gw.send("/health");
    assertEquals(loading.status, 503);
    assertEquals((await loading.json()).error.message, "Loading model");
    await waitFor(() => gw.scheduler.find(id)?.state === "loaded", HANG_MS, "the model is ready");
    assertEquals(await (await gw.send("/health")).json(), { status: "ok" });
  });
});

Deno.test("-m: no model, an unknown one or an unsafe name go to the default model; known ones to theirs", async () => {
  await withInProcess(["solo", "other"], single, async (gw, dir) => {
    const id = join(dir, "solo.gguf");
    for (const model of [undefined, "", "gpt-4o", "../etc/passwd", 42]) {
      assertEquals(await answeredBy(gw, model), id, `model ${JSON.stringify(model)}`);
    }
    assertEquals(await answeredBy(gw, "other"), "other");
    const ids = (await (await gw.send("/v1/models")).json()).data.map((m: { id: string }) => m.id).sort();
    assertEquals(ids, [id, "other", "solo"].sort(), "the models dir is listed beside the default model");
  });
});

Deno.test("-m: GET /props and /slots without ?model are the default engine's; with it, that model's", async () => {
  await withInProcess(["solo", "other"], single, async (gw, dir) => {
    const id = join(dir, "solo.gguf");
    await waitFor(() => gw.scheduler.find(id)?.state === "loaded", HANG_MS, "the model is ready");
    const props = await (await gw.send("/props")).json();
    assert(props.role !== "router", `not the router's own /props: ${JSON.stringify(props)}`);
    assertEquals(gw.engine(id).requests.map((r) => r.path).filter((p) => p === "/props").length, 1);
    const slots = await gw.send("/slots");
    assertEquals(slots.status, 200);
    await slots.body?.cancel();
    const other = await gw.send("/props?model=other");
    assertEquals(other.status, 200);
    await other.body?.cancel();
    assertEquals(gw.engine("other").requests.map((r) => r.path).includes("/props"), true);
  });
});

Deno.test("-m: while the model is projected, /health is 503 and an early request joins the start-up load", async () => {
  const gate = Promise.withResolvers<void>();
  const projected = Promise.withResolvers<void>();
  const memory: GatewayMemory = {
    budgets: () => ({ [HOST]: 8 * 2 ** 30 }),
    serialisedDevices: () => [],
    project: async () => {
      projected.resolve();
      await gate.promise;
      return { bytes: { [HOST]: 2 ** 30 }, source: "fit-params" };
    },
    observe: () => undefined,
    launchOptions: (options) => options,
    report: () => Promise.resolve({}),
  };
  await withInProcess(["solo"], (dir) => ({ ...single(dir), memory }), async (gw, dir) => {
    const id = join(dir, "solo.gguf");
    await projected.promise;
    assertEquals(gw.scheduler.find(id)?.state, "unloaded", "not spawned while it is projected");
    const health = await gw.send("/health");
    assertEquals([health.status, (await health.json()).error.message], [503, "Loading model"]);
    const early = answeredBy(gw, undefined);
    gate.resolve();
    assertEquals(await early, id, "the early request is answered by the one engine");
    assertEquals(gw.starter.starts, [id], "one spawn for the start-up load and the request");
    assertEquals(await (await gw.send("/health")).json(), { status: "ok" });
  });
});

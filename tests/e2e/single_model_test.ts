/**
 * llama-server's single-model command line on the real engine: `-m model.gguf` loads that model at
 * start-up (`/health` 503 until it is ready), requests without a known `model` go to it, its engine
 * answers `/props`, `/slots` and `/metrics`; other sources keep working beside it. llama.cpp's own
 * single-model tests cover the rest (conformance_server_test.ts).
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { runMain, withGateway } from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJson } from "../helpers/http.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";
import { chatBody } from "../helpers/openai.ts";
import { makeModelsDir } from "../helpers/models.ts";

const skip = await engineAvailable();
const base = { ignore: !!skip, sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...base,
  name: "-m: the model loads at start-up and is the default; --models-dir models are served beside it",
  async fn() {
    const single = await makeModelsDir(["solo"]);
    try {
      const path = join(single, "solo.gguf");
      await withGateway(
        ["other"],
        { args: ["-m", path, "-c", "512", "-np", "2", "--slots", "--metrics"] },
        async (gw) => {
          await waitFor(
            async () => {
              const res = await fetch(gw.url + "/health");
              await res.body?.cancel();
              return res.status === 200;
            },
            HANG_MS,
            "/health answers 200 once the model is ready",
          );
          assertEquals(await getJson(gw, "/health"), { status: "ok" });
          const ids = (await getJson(gw, "/v1/models")).data.map((m: { id: string }) => m.id);
          assertEquals(ids.sort(), [path, "other"].sort());

          const answeredBy = async (model: unknown) => {
            const res = await postJson(gw, "/v1/chat/completions", chatBody(model, { max_tokens: 2 }));
            assertEquals(res.status, 200, `chat for ${model}`);
            return (await res.json()).model;
          };
          assertEquals(await answeredBy(undefined), path, "no model: the default one");
          assertEquals(await answeredBy("gpt-4o"), path, "an unknown model: the default one");
          assertEquals(await answeredBy("other"), "other", "a known model: that one");

          const props = await getJson(gw, "/props");
          assertEquals(props.model_path, path, "GET /props is the default engine's");
          assertEquals(props.total_slots, 2);
          assertEquals((await getJson(gw, "/props?model=other")).model_alias, "other");
          assertEquals((await getJson(gw, "/slots")).length, 2, "GET /slots is the default engine's");
          const metrics = await fetch(gw.url + "/metrics");
          assertEquals(metrics.status, 200);
          assertMatch(await metrics.text(), /llamacpp:prompt_tokens_total/);
        },
      );
    } finally {
      await Deno.remove(single, { recursive: true });
    }
  },
});

Deno.test({
  ...base,
  name: "-m with a file that does not exist, or that fails to load: the gateway exits 1 with the reason",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "switchyard-single-" });
    try {
      const missing = await runMain(["-m", join(dir, "nope.gguf"), "--port", "0"]);
      assertEquals(missing.code, 1, missing.out);
      assertMatch(missing.out, /nope\.gguf: no such model file/);

      const broken = join(dir, "broken.gguf");
      await Deno.writeTextFile(broken, "not a gguf file");
      const failed = await runMain(["-m", broken, "--port", "0"]);
      assertEquals(failed.code, 1, failed.out);
      assertMatch(failed.out, /failed to load/);
      assert(!/listening on/.test(failed.out.split("failed to load")[1] ?? ""), "nothing served after");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

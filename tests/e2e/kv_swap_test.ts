/**
 * `--swap-kv-cache` on the real engine (issue 11): two tiny models under `--models-max 1`, a
 * conversation of a few thousand tokens with `a`, one request to `b` (which evicts `a`), then the
 * conversation's next turn to `a`. The engine's own `timings.prompt_n` for that turn is only what the
 * saved cache did not hold (the new tokens) with the feature on, and the whole conversation without it.
 * Then the rest of the lifecycle: an unload saves, `/models` shows it, a damaged file is logged and the
 * model serves from cold, `DELETE /models` removes the files.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { turn, wordTokens } from "../helpers/conversation.ts";
import { type TestGateway, withGateway } from "../helpers/gateway.ts";
import { engineAvailable, getJson, postJson, waitForStatus } from "../helpers/http.ts";
import { addToHfCache } from "../helpers/models.ts";
import { HANG_MS, waitFor } from "../helpers/wait.ts";

const skip = await engineAvailable();

/** a few thousand tokens: well past what a swap should cost to prefill again, within `-c 4096` */
const CONVERSATION = 3000;
const ANSWER = 8;
const NEXT_TURN = 50;

interface SavedCache {
  tokens: number;
  bytes: number;
  slots: number;
  saved_at: string;
}

async function modelEntry(gw: TestGateway, id: string) {
  const list = await getJson(gw, "/models");
  return list.data.find((m: { id: string }) => m.id === id);
}

/** The model's saved cache as `/models` shows it, once there is one. */
async function savedCache(gw: TestGateway, id: string): Promise<SavedCache> {
  let saved: SavedCache | undefined;
  await waitFor(
    async () => (saved = (await modelEntry(gw, id))?.status?.kv_cache) !== undefined,
    HANG_MS,
    `${id}'s saved cache`,
  );
  return saved!;
}

/** Files in the store's folders (model folder/file), sorted. */
async function storeFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const folder of Deno.readDir(root)) {
      for await (const file of Deno.readDir(join(root, folder.name))) out.push(`${folder.name}/${file.name}`);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/**
 * The swap itself: `a`'s conversation, `b` once, `a`'s next turn. Returns that turn's prompt length and
 * the engine's `prompt_n` for it.
 */
async function conversationAcrossSwap(gw: TestGateway): Promise<{ prompt: number[]; promptN: number }> {
  const first = wordTokens(CONVERSATION, 1);
  const answered = await turn(gw, "a", first, ANSWER);
  assertEquals(answered.promptN, CONVERSATION, "a's first turn is all prefill");
  assertEquals(answered.tokens.length, ANSWER);
  await turn(gw, "b", wordTokens(16, 2), 4);
  const prompt = [...first, ...answered.tokens, ...wordTokens(NEXT_TURN, 3)];
  const next = await turn(gw, "a", prompt, 4);
  const a = await modelEntry(gw, "a");
  assertEquals(a.status.value, "loaded", "a was loaded again for its next turn");
  return { prompt, promptN: next.promptN };
}

Deno.test({
  name: "with --swap-kv-cache, the turn after a swap processes only its new tokens",
  ignore: !!skip,
  async fn() {
    const kvDir = await Deno.makeTempDir({ prefix: "switchyard-kv-" });
    try {
      await withGateway(["a", "b"], {
        args: ["--models-max", "1", "-c", "4096", "--swap-kv-cache", "--swap-kv-cache-dir", kvDir],
      }, async (gw) => {
        const { prompt, promptN } = await conversationAcrossSwap(gw);
        const saved = await savedCache(gw, "a");
        assertEquals(saved.slots, 1, "one slot held the conversation");
        // the engine caches the prompt and the answer but the answer's last token, which it never fed back
        assertEquals(saved.tokens, CONVERSATION + ANSWER - 1);
        assert(saved.bytes > 0, "the saved cache has bytes");
        assertEquals(
          promptN,
          prompt.length - saved.tokens,
          "only what the saved cache did not hold is prefilled",
        );
        assertEquals(promptN, NEXT_TURN + 1, "that is the new turn (and the answer's last token)");
        await gw.waitForLog(new RegExp(`kv cache: saved a: 1 slot, ${saved.tokens} tokens`));
        await gw.waitForLog(new RegExp(`kv cache: restored a: 1 slot, ${saved.tokens} tokens`));
        const a = await modelEntry(gw, "a");
        assert(a.status.args.includes("--slot-save-path"), "the engine was given the store's folder");
        // b was evicted for a's turn, so b's cache was saved too; nothing half-written was left
        await savedCache(gw, "b");
        const files = await storeFiles(kvDir);
        assertEquals(files.filter((f) => /\.tmp-/.test(f)), [], `no temporary files: ${files}`);
        assertEquals(files.filter((f) => f.endsWith(".bin")).length, 2, `one slot file per model: ${files}`);
      });
    } finally {
      await Deno.remove(kvDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "without --swap-kv-cache, or with a preset's swap-kv-cache = false, the turn processes the whole conversation",
  ignore: !!skip,
  async fn() {
    const kvDir = await Deno.makeTempDir({ prefix: "switchyard-kv-" });
    try {
      await withGateway(["a", "b"], {
        args: ["--models-max", "1", "-c", "4096", "--swap-kv-cache-dir", kvDir],
      }, async (gw) => {
        const { prompt, promptN } = await conversationAcrossSwap(gw);
        assertEquals(promptN, prompt.length, "the whole conversation is prefilled again");
        assertEquals((await modelEntry(gw, "a")).status.kv_cache, undefined);
        assert(!(await modelEntry(gw, "a")).status.args.includes("--slot-save-path"));
      });
      await withGateway(["a", "b"], async (dir) => {
        const preset = join(dir, "preset.ini");
        await Deno.writeTextFile(
          preset,
          `[a]\nmodel = ${join(dir, "a.gguf")}\nswap-kv-cache = false\n\n[b]\nmodel = ${
            join(dir, "b.gguf")
          }\n`,
        );
        return {
          args: [
            "--models-preset",
            preset,
            "--models-max",
            "1",
            "-c",
            "4096",
            "--swap-kv-cache",
            "--swap-kv-cache-dir",
            kvDir,
          ],
        };
      }, async (gw) => {
        const { prompt, promptN } = await conversationAcrossSwap(gw);
        assertEquals(promptN, prompt.length, "a opted out: the whole conversation is prefilled again");
        assertEquals((await modelEntry(gw, "a")).status.kv_cache, undefined);
        // b did not opt out: its cache was saved when a's turn evicted it
        assert((await savedCache(gw, "b")).tokens > 0);
      });
      assertEquals((await storeFiles(kvDir)).filter((f) => f.startsWith("a-")), [], "nothing saved for a");
    } finally {
      await Deno.remove(kvDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "an unload saves; a damaged file is logged and the model serves from cold; DELETE /models removes the files",
  ignore: !!skip,
  async fn() {
    const kvDir = await Deno.makeTempDir({ prefix: "switchyard-kv-" });
    const cache = await Deno.makeTempDir({ prefix: "switchyard-kv-hf-" });
    const model = "test/kv-swap:Q8_0";
    try {
      await addToHfCache(cache, "test/kv-swap", "kv-swap-Q8_0.gguf");
      await withGateway([], {
        args: ["-c", "2048", "--swap-kv-cache", "--swap-kv-cache-dir", kvDir],
        env: { LLAMA_CACHE: cache },
      }, async (gw) => {
        const first = wordTokens(1000, 4);
        const answered = await turn(gw, model, first, ANSWER);
        assertEquals((await postJson(gw, "/models/unload", { model })).status, 200);
        await waitForStatus(gw, model, "unloaded");
        const saved = await savedCache(gw, model);
        assertEquals([saved.slots, saved.tokens], [1, 1000 + ANSWER - 1]);
        const slotFiles = (await storeFiles(kvDir)).filter((f) => f.endsWith(".bin"));
        assertEquals(slotFiles.length, 1, `${slotFiles}`);

        // a file that is not the engine's state: the restore fails, the model answers from cold
        await Deno.writeTextFile(join(kvDir, slotFiles[0]), "not a KV cache");
        const prompt = [...first, ...answered.tokens, ...wordTokens(NEXT_TURN, 5)];
        const cold = await turn(gw, model, prompt, 4);
        assertEquals(cold.promptN, prompt.length, "served from cold");
        assertMatch(await gw.waitForLog(/kv cache: restoring test\/kv-swap:Q8_0 failed/), /serves from cold/);
        assertEquals(
          (await storeFiles(kvDir)).filter((f) => f.endsWith(".bin")),
          [],
          "the damaged file is gone",
        );

        // DELETE stops it without saving, and takes what was saved with the model
        assertEquals((await postJson(gw, "/models/unload", { model })).status, 200);
        await waitForStatus(gw, model, "unloaded");
        await savedCache(gw, model);
        const res = await fetch(`${gw.url}/models?model=${encodeURIComponent(model)}`, { method: "DELETE" });
        assertEquals(res.status, 200, await res.text());
        assertEquals(await storeFiles(kvDir), [], "the model's saved cache is deleted with it");
      });
    } finally {
      await Deno.remove(kvDir, { recursive: true });
      await Deno.remove(cache, { recursive: true }).catch(() => {});
    }
  },
});

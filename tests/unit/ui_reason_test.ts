/** The page's pick of a failure's telling line (ui/models.js `reasonOf`), on the gateway's failure texts. */
import { assertEquals } from "../helpers/assert.ts";

// loaded by URL, so `deno check` does not take the page's code (and its DOM typings) into the server's graph
const page = new URL("../../ui/models.js", import.meta.url).href;
const { reasonOf } = await import(page) as { reasonOf: (text: string) => string };

const TAIL = "0.00.002.232 I srv         start: binding port with default address family";

Deno.test("reasonOf: the engine's error-level line first, without its timestamp and level", () => {
  const text = `exit code 1; last log lines:\n${TAIL}\n` +
    "0.00.003.645 E gguf_init_from_reader: invalid magic characters: 'this', expected 'GGUF'\n" +
    "0.00.003.836 E srv    load_model: failed to load model";
  assertEquals(reasonOf(text), "gguf_init_from_reader: invalid magic characters: 'this', expected 'GGUF'");
});

Deno.test("reasonOf: where the engine's error lines were lost, the gateway's own finding, not the last line", () => {
  const text = `invalid model file /m/broken.gguf: not a GGUF file, it begins with "this", not "GGUF"; ` +
    `exit code 1; last log lines:\n${TAIL}`;
  assertEquals(reasonOf(text).startsWith("invalid model file /m/broken.gguf: not a GGUF file"), true);
  // with nothing that reads as an error, the last line is all there is
  assertEquals(
    reasonOf(`exit code 1; last log lines:\n${TAIL}`),
    "srv         start: binding port with default address family",
  );
});

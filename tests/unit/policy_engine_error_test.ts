import { assertEquals } from "../helpers/assert.ts";
import { engineLoggedAnError } from "../../router/scheduler/policies/engine_error.ts";

Deno.test("engineLoggedAnError: a line llama.cpp logged at error level, and only that", () => {
  const lines = (...l: string[]) => l;
  assertEquals(
    engineLoggedAnError(lines("0.00.003.645 E gguf_init_from_reader: invalid magic characters")),
    true,
  );
  assertEquals(
    engineLoggedAnError(lines("0.00.002.232 I srv         start: binding port", "0.00.002.224 W srv  CORS")),
    false,
  );
  // an error word is not an error-level line; nor is a line without llama.cpp's timestamp
  assertEquals(engineLoggedAnError(lines("0.00.004.1 I load: error loading is retried", "E gguf: x")), false);
  assertEquals(engineLoggedAnError([]), false);
});

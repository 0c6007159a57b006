/** `--swap-kv-cache`, `--swap-kv-cache-max`, `--swap-kv-cache-dir`, and the preset's `swap-kv-cache`. */
import { CliError, parseCli } from "../../router/cli.ts";
import { loadCatalog } from "../../router/sources/catalog.ts";
import { parsePreset } from "../../router/sources/preset.ts";
import { SourceError } from "../../router/sources/types.ts";
import { assert, assertEquals } from "../helpers/assert.ts";

const GiB = 1024 ** 3;

Deno.test("the feature is off by default, bounded at 4 GiB, kept in the gateway's cache dir", () => {
  const { config } = parseCli([], {});
  assertEquals([config.swapKvCache, config.swapKvCacheMaxBytes, config.swapKvCacheDir], [
    false,
    4 * GiB,
    undefined,
  ]);
  const on =
    parseCli(["--swap-kv-cache", "--swap-kv-cache-max", "512M", "--swap-kv-cache-dir=/fast/kv"], {}).config;
  assertEquals([on.swapKvCache, on.swapKvCacheMaxBytes, on.swapKvCacheDir], [
    true,
    512 * 1024 ** 2,
    "/fast/kv",
  ]);
  // the gateway's own flags: engines never see them
  assertEquals(on.passthrough.size, 0);
});

Deno.test("a bad size or a value given to the switch is an error naming the flag", () => {
  for (
    const argv of [["--swap-kv-cache-max", "lots"], ["--swap-kv-cache-max", "-1G"], ["--swap-kv-cache=yes"], [
      "--swap-kv-cache-max",
    ]]
  ) {
    let message = "";
    try {
      parseCli(argv, {});
    } catch (err) {
      assert(err instanceof CliError, String(err));
      message = err.message;
    }
    assert(/--swap-kv-cache/.test(message), `${argv.join(" ")}: ${message}`);
  }
});

Deno.test("a preset's swap-kv-cache turns the feature off (or on) per model, [*] included", async () => {
  const preset = parsePreset(
    "[*]\nswap-kv-cache = false\n[a]\nmodel = /m/a.gguf\n[b]\nmodel = /m/b.gguf\nswap-kv-cache = on\n",
    "p.ini",
  );
  assertEquals(preset.global?.swapKvCache, false);
  assertEquals(preset.sections.map((s) => s.swapKvCache), [undefined, true]);
  let error: unknown;
  try {
    parsePreset("[a]\nmodel = /m/a.gguf\nswap-kv-cache = maybe\n", "p.ini");
  } catch (err) {
    error = err;
  }
  assert(error instanceof SourceError && /swap-kv-cache.*takes a boolean/.test(error.message), String(error));

  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/p.ini`;
    await Deno.writeTextFile(
      file,
      `[*]\nswap-kv-cache = false\n[a]\nmodel = ${dir}/a.gguf\n[b]\nmodel = ${dir}/b.gguf\nswap-kv-cache = true\n[c]\nmodel = ${dir}/c.gguf\n`,
    );
    const { models } = await loadCatalog({ cacheDir: `${dir}/hf`, presetFile: file });
    const byId = Object.fromEntries(models.map((m) => [m.id, m]));
    assertEquals([byId.a.swapKvCache, byId.b.swapKvCache, byId.c.swapKvCache], [false, true, false]);
    assert(byId.b.presetOnly?.get("swap-kv-cache") === "true", "shown in status.preset as written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

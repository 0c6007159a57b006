/** The flags of observability: `--no-metrics`, `--log-format`, and whether `--metrics` was asked for. */
import { assertEquals } from "../helpers/assert.ts";
import { CliError, parseCli } from "../../router/cli.ts";

const parse = (args: string[], env: Record<string, string> = {}) => parseCli(args, env).config;

Deno.test("--no-metrics turns the gateway's metrics off; on by default", () => {
  assertEquals(parse([]).metrics, true);
  assertEquals(parse(["--no-metrics"]).metrics, false);
  assertEquals(parse(["--no-metrics"]).passthrough.has("--no-metrics"), false, "never given to engines");
});

Deno.test("--metrics (or LLAMA_ARG_ENDPOINT_METRICS) asks for every engine's own page, as llama-server reads it", () => {
  assertEquals(parse([]).engineMetricsAsked, false);
  assertEquals(parse(["--metrics"]).engineMetricsAsked, true);
  assertEquals(parse(["--metrics"]).passthrough.get("--metrics"), true, "and engines still get it");
  assertEquals(parse([], { LLAMA_ARG_ENDPOINT_METRICS: "1" }).engineMetricsAsked, true);
  assertEquals(parse([], { LLAMA_ARG_ENDPOINT_METRICS: "0" }).engineMetricsAsked, false);
});

Deno.test("--log-format text|json; anything else is refused", () => {
  assertEquals(parse([]).logFormat, "text");
  assertEquals(parse(["--log-format", "json"]).logFormat, "json");
  assertEquals(parse(["--log-format=text"]).logFormat, "text");
  for (const args of [["--log-format", "xml"], ["--log-format"], ["--no-metrics=1"]]) {
    let error: unknown;
    try {
      parse(args);
    } catch (err) {
      error = err;
    }
    assertEquals(error instanceof CliError, true, args.join(" "));
  }
});

/**
 * What a memory-aware gateway adds to an engine's options (router/memory/launch_options.ts): the
 * verbosity that shows buffer sizes, the context the projection assumed, a smaller prompt cache, and
 * on GPU hosts the fit target; never over what the user set, by flag or by environment.
 */
import { assertEquals } from "../helpers/assert.ts";
import type { OptionMap } from "../../router/flags/flags.ts";
import {
  fitTargets,
  GATEWAY_CACHE_RAM_MIB,
  gatewayLaunchOptions,
  raisedVerbosity,
} from "../../router/memory/launch_options.ts";
import { GiB } from "../../router/memory/size.ts";

const added = (options: OptionMap, env: Record<string, string> = {}, gpus = NO_GPUS) => {
  const out = gatewayLaunchOptions(options, env, gpus);
  return Object.fromEntries([...out].filter(([flag]) => !options.has(flag)));
};
const NO_GPUS: { name: string; reserve: number }[] = [];
const model = (...pairs: Array<[string, string | boolean]>): OptionMap =>
  new Map<string, string | boolean>([["--model", "/m/a.gguf"], ...pairs]);

Deno.test("launch options: -lv 4, the projected -c and the gateway's prompt cache, when not given", () => {
  assertEquals(added(model()), {
    "--log-verbosity": "4",
    "--ctx-size": "0",
    "--cache-ram": String(GATEWAY_CACHE_RAM_MIB),
  });
  // --kv-unified-per-slot sizes the context when -c is absent: the engine gets that size pinned
  assertEquals(added(model(["--kv-unified-per-slot", "1024"]))["--ctx-size"], "4096");
  assertEquals(added(model(["--parallel", "2"], ["--kv-unified-per-slot", "1024"]))["--ctx-size"], "2048");
});

Deno.test("launch options: what the user set wins, by flag or by environment", () => {
  assertEquals(added(model(["--ctx-size", "512"], ["--cache-ram", "-1"], ["--log-verbosity", "2"])), {});
  assertEquals(added(model(["--log-verbose", true]))["--log-verbosity"], undefined);
  assertEquals(added(model(["--log-disable", true]))["--log-verbosity"], undefined);
  const env = { LLAMA_ARG_CTX_SIZE: "1024", LLAMA_ARG_CACHE_RAM: "0", LLAMA_ARG_LOG_VERBOSITY: "3" };
  assertEquals(added(model(), env), {});
  // an empty variable is unset, as llama.cpp reads it
  assertEquals(added(model(), { LLAMA_ARG_CTX_SIZE: "" })["--ctx-size"], "0");
});

Deno.test("launch options: the verbosity counts as raised only when the gateway raised it", () => {
  const raised = (options: OptionMap, env: Record<string, string> = {}) =>
    raisedVerbosity(options, gatewayLaunchOptions(options, env, NO_GPUS));
  assertEquals(raised(model()), true);
  assertEquals(raised(model(["--log-verbosity", "4"])), false);
  assertEquals(raised(model(["--log-verbose", true])), false);
  assertEquals(raised(model(), { LLAMA_ARG_LOG_VERBOSITY: "4" }), false);
  assertEquals(raisedVerbosity(model(), model()), false);
});

Deno.test("launch options: options the memory reader refuses are launched as given, for the engine to refuse", () => {
  assertEquals(added(model(["--parallel", "many"])), { "--log-verbosity": "4" });
});

Deno.test("launch options: on GPU hosts the fit target is each device's reserve, in the engine's order", () => {
  const gpus = [{ name: "CUDA0", reserve: 2 * GiB }, { name: "CUDA1", reserve: GiB }];
  assertEquals(added(model(), {}, gpus)["--fit-target"], "2048,1024");
  assertEquals(added(model(["--device", "cuda1,CUDA0"]), {}, gpus)["--fit-target"], "1024,2048");
  assertEquals(added(model(["--fit-target", "512"]), {}, gpus)["--fit-target"], undefined);
  assertEquals(added(model(), { LLAMA_ARG_FIT_TARGET: "512" }, gpus)["--fit-target"], undefined);
  assertEquals(fitTargets(gpus, "none"), undefined, "-dev none: nothing to fit on the GPUs");
  assertEquals(fitTargets(gpus, "RPC0"), undefined, "a device the gateway does not know: left to the engine");
  assertEquals(fitTargets([], undefined), undefined);
});

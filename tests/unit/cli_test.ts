/** The command line as llama-server's router reads it: router flags, their env forms, inherited flags. */
import { assert, assertEquals } from "../helpers/assert.ts";
import { CliError, parseCli } from "../../router/cli.ts";
import { renderArgs } from "../../router/flags/flags.ts";

const parse = (argv: string[], env: Record<string, string> = {}) => parseCli(argv, env);

Deno.test("defaults are llama-server's router defaults, bound to loopback", () => {
  const { config } = parse([]);
  assertEquals(config.host, "127.0.0.1");
  assertEquals(config.port, 8080);
  assertEquals(config.modelsMax, 4);
  assertEquals(config.autoload, true);
  assertEquals(config.apiKeys, []);
  assertEquals(config.passthrough.size, 0);
});

Deno.test("router flags configure the gateway; every other flag is inherited by each model", () => {
  const { config } = parse([
    "--models-dir",
    "./models",
    "--models-max=2",
    "--no-models-autoload",
    "-c",
    "8192",
    "-ngl",
    "99",
    "--temp",
    "0.8",
    "--no-jinja",
    "--no-mmap",
  ]);
  assertEquals(config.modelsDir, "./models");
  assertEquals(config.modelsMax, 2);
  assertEquals(config.autoload, false);
  assertEquals(Object.fromEntries(config.passthrough), {
    "--ctx-size": "8192",
    "--n-gpu-layers": "99",
    "--temperature": "0.8",
    "--jinja": false,
    "--mmap": false,
  });
  assert(!config.passthrough.has("--models-dir") && !config.passthrough.has("--models-max"));
});

Deno.test("router flags come from their LLAMA_ARG_* env forms; the command line wins", () => {
  const env = { LLAMA_ARG_MODELS_MAX: "3", LLAMA_ARG_MODELS_AUTOLOAD: "false", LLAMA_ARG_PORT: "9000" };
  assertEquals(parse([], env).config.modelsMax, 3);
  assertEquals(parse([], env).config.autoload, false);
  assertEquals(parse([], env).config.port, 9000);
  assertEquals(parse(["--models-max", "1"], env).config.modelsMax, 1);
  let threw = false;
  try {
    parse([], { LLAMA_ARG_MODELS_AUTOLOAD: "maybe" });
  } catch (err) {
    threw = err instanceof CliError && /invalid boolean/.test(err.message);
  }
  assert(threw, "a bad boolean env value is an error, as in llama.cpp");
});

Deno.test("--models-max 0 means unlimited; host, port, alias and model are not inherited by every model", () => {
  const parsed = parse([
    "--models-max",
    "0",
    "--host",
    "0.0.0.0",
    "--port",
    "1234",
    "-m",
    "x.gguf",
    "-a",
    "x",
  ]);
  assertEquals(parsed.config.modelsMax, 0);
  assertEquals(parsed.config.host, "0.0.0.0");
  assertEquals(parsed.config.port, 1234);
  assertEquals(parsed.config.passthrough.size, 0);
  assertEquals(Object.fromEntries(parsed.config.singleModel ?? []), { "--model": "x.gguf", "--alias": "x" });
  assertEquals(parsed.warnings, []);
});

Deno.test("single-model command lines: -m, -hf with or without --hf-file, -mu, and their env forms", () => {
  const single = (argv: string[], env: Record<string, string> = {}) => {
    const { config } = parse(argv, env);
    return { identity: Object.fromEntries(config.singleModel ?? []), remotePreset: config.remotePreset };
  };
  assertEquals(single(["-m", "a.gguf", "--mmproj", "mm.gguf", "--tags", "t"]), {
    identity: { "--model": "a.gguf", "--mmproj": "mm.gguf", "--tags": "t" },
    remotePreset: undefined,
  });
  // -hf alone is a remote preset when the repo has preset.ini, else the single model (decided at start-up)
  assertEquals(single(["-hf", "o/r:Q8_0", "-a", "x"]), {
    identity: { "--alias": "x" },
    remotePreset: "o/r:Q8_0",
  });
  assertEquals(single(["-hf", "o/r", "-hff", "sub/f.gguf"]), {
    identity: { "--hf-file": "sub/f.gguf", "--hf-repo": "o/r" },
    remotePreset: undefined,
  });
  assertEquals(single(["-mu", "http://127.0.0.1:1/m.gguf"]).identity, {
    "--model-url": "http://127.0.0.1:1/m.gguf",
  });
  assertEquals(single([], { LLAMA_ARG_MODEL: "env.gguf" }).identity, { "--model": "env.gguf" });
  assertEquals(single(["--models-dir", "d"]), { identity: {}, remotePreset: undefined });
  assertEquals(
    parse(["--models-dir", "d"]).config.singleModel,
    undefined,
    "router mode has no default model",
  );

  const { warnings, config } = parse(["-a", "lonely"]);
  assertEquals(config.singleModel, undefined);
  assert(/--alias.*ignored/.test(warnings.join("\n")), warnings.join("\n"));
  let threw = false;
  try {
    parse(["-m", "a.gguf", "-hf", "o/r"]);
  } catch (err) {
    threw = err instanceof CliError;
  }
  assert(threw, "-m and -hf together are an error");
});

Deno.test("AIP_MODE=PREDICTION: Vertex AI's routes and AIP_HTTP_PORT, as llama-server reads them", () => {
  const env = { AIP_MODE: "PREDICTION", AIP_HTTP_PORT: "9123", AIP_HEALTH_ROUTE: "hc" };
  const { config, warnings } = parse(["--port", "8000"], env);
  assertEquals(config.gcp, { predictRoute: "/predict", healthRoute: "/hc", port: 9123 });
  assertEquals(config.port, 9123);
  assertEquals(warnings.length, 1);
  assertEquals(parse([], { AIP_MODE: "other" }).config.gcp, undefined);
});

Deno.test("keys: a comma list, admin keys, and keys never inherited by models", () => {
  const { config } = parse(["--api-key", "a,b", "--admin-api-key", "root"]);
  assertEquals(config.apiKeys.map((k) => [k.key, k.admin]), [["a", false], ["b", false], ["root", true]]);
  assertEquals(config.adminKeysConfigured, true);
  assertEquals(config.passthrough.size, 0);
  const plain = parse(["--api-key", "only"]).config;
  assertEquals(
    plain.apiKeys[0].admin,
    true,
    "without admin keys every key may manage models, as in llama.cpp",
  );
});

Deno.test("unknown flags and missing values are errors", () => {
  for (const argv of [["--no-such-flag"], ["--models-max"], ["--models-max", "many"], ["--port", "70000"]]) {
    let threw = false;
    try {
      parse(argv);
    } catch (err) {
      threw = err instanceof CliError;
    }
    assert(threw, argv.join(" "));
  }
});

Deno.test("two-valued flags are kept (llama.cpp's router fails to start on them)", () => {
  const { config } = parse(["--control-vector-layer-range", "1", "4"]);
  assertEquals(config.passthrough.get("--control-vector-layer-range"), "1 4");
});

Deno.test("rendered args: sorted as llama.cpp does, switches negated, two-valued flags as two arguments", () => {
  const { config } = parse([
    "--temp",
    "0.5",
    "--no-mmap",
    "--control-vector-layer-range",
    "1",
    "4",
    "-c",
    "64",
  ]);
  assertEquals(renderArgs(config.passthrough), [
    "--control-vector-layer-range",
    "1",
    "4",
    "--no-mmap",
    "--temperature",
    "0.5",
    // sorted by first spelling, as strcmp does: "-c" comes after every "--" flag
    "--ctx-size",
    "64",
  ]);
});

Deno.test("--models-memory and --models-ttl: defaults, env forms, the command line winning", () => {
  const defaults = parse([]).config;
  assertEquals([defaults.modelsMemory, defaults.modelsTtlS], ["auto", 0]);
  const given = parse(["--models-memory", "host=12G,CUDA0=22G", "--models-ttl=300"]).config;
  assertEquals([given.modelsMemory, given.modelsTtlS], ["host=12G,CUDA0=22G", 300]);
  const env = { LLAMA_ARG_MODELS_MEMORY: "20G", LLAMA_ARG_MODELS_TTL: "60" };
  assertEquals([parse([], env).config.modelsMemory, parse([], env).config.modelsTtlS], ["20G", 60]);
  const both = parse(["--models-memory", "8G", "--models-ttl", "0"], env).config;
  assertEquals([both.modelsMemory, both.modelsTtlS], ["8G", 0]);
  // router options: never passed to the engines
  assertEquals(given.passthrough.size, 0);
});

Deno.test("--models-memory and --models-ttl: bad values name the flag and the part at fault", () => {
  const rows: Array<[string[], Record<string, string>, RegExp]> = [
    [["--models-memory", "lots"], {}, /--models-memory: 'lots'.*invalid size/],
    [["--models-memory", "host=12G,=3G"], {}, /--models-memory: '=3G' is not DEVICE=SIZE/],
    [["--models-memory", "host=1G,HOST=2G"], {}, /device 'HOST' is given twice/],
    [[], { LLAMA_ARG_MODELS_MEMORY: "host=big" }, /--models-memory: 'host=big'/],
    [["--models-ttl", "-1"], {}, /--models-ttl expects a whole number of seconds \(0 = never\), got '-1'/],
    [["--models-ttl", "1.5"], {}, /--models-ttl expects a whole number of seconds/],
    [[], { LLAMA_ARG_MODELS_TTL: "soon" }, /--models-ttl expects a whole number of seconds.*got 'soon'/],
    [["--models-ttl"], {}, /missing value for argument: --models-ttl/],
  ];
  for (const [argv, env, pattern] of rows) {
    let message = "";
    try {
      parse(argv, env);
    } catch (err) {
      assert(err instanceof CliError, String(err));
      message = err.message;
    }
    assert(pattern.test(message), `${argv.join(" ")} ${JSON.stringify(env)}: '${message}'`);
  }
});

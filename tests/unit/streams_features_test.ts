/**
 * `/tools` and `/cors-proxy` without their flags (403 `feature_disabled`, in process), and how the
 * gateway reads those flags: its own, never an engine's. What they serve when enabled is llama.cpp's
 * code in the tools host, checked on the real engine in tests/e2e/streams_test.ts.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { withInProcess } from "../helpers/in_process.ts";
import { chatBody } from "../helpers/openai.ts";
import { keyed } from "../helpers/requests.ts";
import { parseCli } from "../../router/cli.ts";
import { engineEnvironment } from "../../router/gateway.ts";
import { anyFeature, featureArgs, toolsEnabled } from "../../router/features/settings.ts";

Deno.test("features: /tools and /cors-proxy answer 403 feature_disabled without their flags", async () => {
  await withInProcess(["alpha"], {}, async (gw) => {
    for (const path of ["/tools", "/cors-proxy?url=http://127.0.0.1:9/"]) {
      for (const method of ["GET", "POST"]) {
        const res = await gw.send(
          path,
          keyed({ method, json: method === "POST" ? { tool: "x" } : undefined }),
        );
        assertEquals(res.status, 403, `${method} ${path}`);
        assertEquals(await res.json(), {
          error: { code: 403, message: "this feature is disabled", type: "feature_disabled" },
        });
      }
    }
    const props = await (await gw.send("/props")).json();
    assertEquals(props.cors_proxy_enabled, false);
  });
});

Deno.test("features: the flags and their env forms configure the gateway, never an engine", () => {
  const parse = (args: string[], env: Record<string, string> = {}) => parseCli(args, env).config;
  assert(!anyFeature(parse([]).features), "nothing by default");
  assert(!anyFeature(parse(["--tools", ""]).features), "an empty list is no tools");

  const all = parse(["--tools", "read_file,get_info", "--tools-runtime", "docker:img", "--webui-mcp-proxy"]);
  assertEquals(all.features.tools, "read_file,get_info");
  assertEquals(all.features.toolsRuntime, "docker:img");
  assertEquals(all.features.corsProxy, true);
  assertEquals(featureArgs(all.features), [
    "--tools",
    "read_file,get_info",
    "--tools-runtime",
    "docker:img",
    "--ui-mcp-proxy",
  ]);
  for (const flag of ["--tools", "--tools-runtime", "--webui-mcp-proxy"]) {
    assert(!all.passthrough.has(flag), `${flag} is not passed to engines`);
  }

  const agent = parse(["-ag"]).features;
  assertEquals([agent.tools, agent.corsProxy], ["all", true], "--agent: every tool and the proxy");
  const picked = parse(["--tools", "get_info", "--agent", "--no-ui-mcp-proxy"]).features;
  assertEquals([picked.tools, picked.corsProxy], ["get_info", false], "explicit flags win over --agent");
  assert(!anyFeature(parse(["--agent", "--no-agent"]).features), "--no-agent, the last word");

  const mcp = parse([], { LLAMA_ARG_MCP_SERVERS_JSON: '{"mcpServers":{}}', LLAMA_ARG_UI_MCP_PROXY: "1" });
  assert(toolsEnabled(mcp.features) && mcp.features.corsProxy, "env forms");
  assertEquals(parse([], { LLAMA_ARG_AGENT: "true" }).features.tools, "all");

  const env = engineEnvironment({ LLAMA_ARG_TOOLS: "all", LLAMA_ARG_AGENT: "1", LLAMA_ARG_CTX_SIZE: "512" });
  assertEquals(
    env,
    { LLAMA_ARG_CTX_SIZE: "512" },
    "engines do not inherit the features from the environment",
  );
});

Deno.test("features: an engine's command line never carries them", async () => {
  const args = ["--tools", "all", "--ui-mcp-proxy", "--mcp-servers-json", "{}", "-c", "256"];
  await withInProcess(["alpha"], { args }, async (gw) => {
    const res = await gw.send("/v1/chat/completions", keyed({ method: "POST", json: chatBody("alpha") }));
    assertEquals(res.status, 200);
    await res.body?.cancel();
    const argv = gw.starter.launches[0].args;
    assert(argv.includes("--ctx-size") || argv.includes("-c"), `other flags still reach engines: ${argv}`);
    assert(!argv.some((a) => /tools|mcp/.test(a)), `no feature flag in ${argv.join(" ")}`);
  });
});

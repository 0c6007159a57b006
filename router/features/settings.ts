/**
 * llama-server's agent features: built-in tools and MCP servers behind `/tools`, and the CORS proxy
 * behind `/cors-proxy` that the web UI reaches MCP servers through. llama.cpp's router serves them
 * itself when their flags are given, and answers 403 `feature_disabled` otherwise.
 */

export interface FeatureSettings {
  /** `--tools`: a comma-separated list of built-in tools, or `all` */
  tools?: string;
  /** `--tools-runtime`: where tools run (`docker:<image>`, `ssh:<target>`...) */
  toolsRuntime?: string;
  /** `--mcp-servers-config`: a JSON file of MCP servers */
  mcpServersConfig?: string;
  /** `--mcp-servers-json`: the same, inline */
  mcpServersJson?: string;
  /** `--ui-mcp-proxy` (`--webui-mcp-proxy`): serve `/cors-proxy` */
  corsProxy: boolean;
}

/** The flags as given (`agent` is `-ag/--agent`, which turns on every tool and the CORS proxy). */
export interface FeatureFlags {
  tools?: string;
  toolsRuntime?: string;
  mcpServersConfig?: string;
  mcpServersJson?: string;
  corsProxy?: boolean;
  agent?: boolean;
}

export const NO_FEATURES: FeatureSettings = { corsProxy: false };

/**
 * The settings the flags make. llama.cpp applies `--agent` in command-line order with the others;
 * here an explicit `--tools` or `--ui-mcp-proxy` wins over it wherever it stands, which is what
 * `--agent --tools read_file` means in either order.
 */
export function featureSettings(flags: FeatureFlags): FeatureSettings {
  const nonEmpty = (v: string | undefined) => v === undefined || v.trim() === "" ? undefined : v;
  return {
    tools: nonEmpty(flags.tools) ?? (flags.agent ? "all" : undefined),
    toolsRuntime: nonEmpty(flags.toolsRuntime),
    mcpServersConfig: nonEmpty(flags.mcpServersConfig),
    mcpServersJson: nonEmpty(flags.mcpServersJson),
    corsProxy: flags.corsProxy ?? flags.agent ?? false,
  };
}

/** `/tools` is served: some built-in tool or MCP server was asked for. */
export function toolsEnabled(s: FeatureSettings): boolean {
  return s.tools !== undefined || s.mcpServersConfig !== undefined || s.mcpServersJson !== undefined;
}

export function anyFeature(s: FeatureSettings): boolean {
  return toolsEnabled(s) || s.corsProxy;
}

/** The llama-server flags that give a server these features. */
export function featureArgs(s: FeatureSettings): string[] {
  const args: string[] = [];
  if (s.tools !== undefined) args.push("--tools", s.tools);
  if (s.toolsRuntime !== undefined) args.push("--tools-runtime", s.toolsRuntime);
  if (s.mcpServersConfig !== undefined) args.push("--mcp-servers-config", s.mcpServersConfig);
  if (s.mcpServersJson !== undefined) args.push("--mcp-servers-json", s.mcpServersJson);
  if (s.corsProxy) args.push("--ui-mcp-proxy");
  return args;
}

/** The flags above, as the gateway reads them (never passed to a model's engine). */
export const FEATURE_FLAGS = [
  "--tools",
  "--tools-runtime",
  "--mcp-servers-config",
  "--mcp-servers-json",
  "--webui-mcp-proxy",
  "--agent",
];

/** Their env forms: the gateway's own, so engines must not inherit them. */
export const FEATURE_ENV = [
  "LLAMA_ARG_TOOLS",
  "LLAMA_ARG_TOOLS_RUNTIME",
  "LLAMA_ARG_MCP_SERVERS_CONFIG",
  "LLAMA_ARG_MCP_SERVERS_JSON",
  "LLAMA_ARG_UI_MCP_PROXY",
  "LLAMA_ARG_AGENT",
];

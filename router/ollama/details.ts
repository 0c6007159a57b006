/**
 * What Ollama says about a model (`details`, `model_info`, `capabilities`), read from its GGUF header
 * as Ollama reads it from its own (`server/routes.go` GetModelInfo, `fs/ggml`). Pure functions of
 * the header and of how the model is launched: the reading lives in model_file.ts.
 */
import type { GgufHeader, GgufValue } from "../memory/gguf.ts";

/** `details` of `/api/tags`, `/api/ps` and `/api/show`. */
export interface OllamaDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[] | null;
  parameter_size: string;
  quantization_level: string;
}

/** llama.cpp's `llama_ftype` names (include/llama.h), as Ollama prints them (`FileType.String`). */
const FILE_TYPES: readonly (string | undefined)[] = [
  "F32",
  "F16",
  "Q4_0",
  "Q4_1",
  undefined,
  undefined,
  undefined,
  "Q8_0",
  "Q5_0",
  "Q5_1",
  "Q2_K",
  "Q3_K_S",
  "Q3_K_M",
  "Q3_K_L",
  "Q4_K_S",
  "Q4_K_M",
  "Q5_K_S",
  "Q5_K_M",
  "Q6_K",
  "IQ2_XXS",
  "IQ2_XS",
  "Q2_K_S",
  "IQ3_XS",
  "IQ3_XXS",
  "IQ1_S",
  "IQ4_NL",
  "IQ3_S",
  "IQ3_M",
  "IQ2_S",
  "IQ2_M",
  "IQ4_XS",
  "IQ1_M",
  "BF16",
  undefined,
  undefined,
  undefined,
  "TQ1_0",
  "TQ2_0",
  "MXFP4_MOE",
  "NVFP4",
  "Q1_0",
  "Q2_0",
];

/** `general.file_type` as its name (`Q4_K_M`); "unknown" as Ollama says for a type it does not know. */
export function fileTypeName(fileType: number | undefined): string {
  if (fileType === undefined) return "";
  return FILE_TYPES[fileType] ?? "unknown";
}

/**
 * A parameter count as Ollama prints it (`format.HumanNumber`): `8B`, `1.5B`, `494.03M`, `170K`.
 *
 * @example
 * ```ts
 * humanNumber(8_030_261_248); // "8.0B"
 * humanNumber(170_048); // "170K"
 * ```
 */
export function humanNumber(n: number): string {
  const scaled = (unit: number, digits: number, suffix: string) => {
    const x = n / unit;
    return `${Number.isInteger(x) ? x.toFixed(0) : x.toFixed(digits)}${suffix}`;
  };
  if (n >= 1e9) return scaled(1e9, 1, "B");
  if (n >= 1e6) return scaled(1e6, 2, "M");
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)}K`;
  return String(n);
}

/** Parameters, counted from the tensors' shapes (Ollama's `general.parameter_count`). */
export function parameterCount(header: GgufHeader): number {
  return header.tensors.reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0);
}

function metaString(header: GgufHeader | undefined, key: string): string | undefined {
  const value = header?.metadata.get(key);
  return typeof value === "string" ? value : undefined;
}

function architecture(header: GgufHeader | undefined): string {
  return metaString(header, "general.architecture") ?? "";
}

/** `details`: empty strings where the header could not be read, as Ollama leaves unknown fields. */
export function modelDetails(header: GgufHeader | undefined): OllamaDetails {
  const family = architecture(header);
  const fileType = header?.metadata.get("general.file_type");
  return {
    parent_model: "",
    format: "gguf",
    family,
    families: family ? [family] : null,
    parameter_size: header ? humanNumber(parameterCount(header)) : "",
    quantization_level: fileTypeName(typeof fileType === "number" ? fileType : undefined),
  };
}

/** Ollama leaves arrays longer than this out of `model_info` unless asked to be verbose. */
const SHORT_ARRAY = 5;

/**
 * `model_info`: the header's metadata, as Ollama shows it: without `general.name` and the chat
 * template (shown as `template`), long arrays emptied unless `verbose`, and the parameter count.
 * String arrays (a vocabulary) are kept by the reader as their length only, so they show empty.
 */
export function modelInfo(header: GgufHeader | undefined, verbose = false): Record<string, unknown> {
  if (!header) return {};
  const info: Record<string, unknown> = {};
  for (const [key, value] of header.metadata) {
    if (key === "general.name" || key === "tokenizer.chat_template") continue;
    info[key] = infoValue(value, verbose);
  }
  info["general.parameter_count"] = parameterCount(header);
  return info;
}

function infoValue(value: GgufValue, verbose: boolean): unknown {
  if (!Array.isArray(value)) return typeof value === "object" ? [] : value;
  return verbose || value.length <= SHORT_ARRAY ? value : [];
}

/** `template`: the model's own chat template (what llama.cpp applies), "" when it has none. */
export function chatTemplate(header: GgufHeader | undefined): string {
  return metaString(header, "tokenizer.chat_template") ?? "";
}

/** The model's training context (`<arch>.context_length`). */
export function trainingContext(header: GgufHeader | undefined): number | undefined {
  const value = header?.metadata.get(`${architecture(header)}.context_length`);
  return typeof value === "number" ? value : undefined;
}

/** How the model is launched, as far as its capabilities go. */
export interface LaunchTraits {
  /** `--embeddings` */
  embeddings: boolean;
  /** `--mmproj`: a projector for images */
  vision: boolean;
}

/**
 * Ollama's capabilities: `completion` (not for a pure embedding model), `embedding`, `vision`,
 * `tools` and `thinking` (when the chat template handles them) and `insert` (fill-in-the-middle
 * tokens).
 */
export function capabilitiesOf(header: GgufHeader | undefined, launch: LaunchTraits): string[] {
  const template = chatTemplate(header);
  const pooled = header?.metadata.has(`${architecture(header)}.pooling_type`) ?? false;
  const caps: string[] = [];
  if (!pooled || template) caps.push("completion");
  if (pooled || launch.embeddings) caps.push("embedding");
  if (launch.vision) caps.push("vision");
  if (/\btools\b/.test(template)) caps.push("tools");
  if (/<think>|enable_thinking|reasoning_content/.test(template)) caps.push("thinking");
  if (header?.metadata.has("tokenizer.ggml.fim_pre_token_id")) caps.push("insert");
  return caps;
}

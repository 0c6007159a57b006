/**
 * What a memory-aware gateway adds to an engine's options, so that what the engine does agrees with
 * what the gateway booked for it. Each is added only where neither the options nor the engine's
 * environment set it: what a user asked for always wins.
 *
 * - `-lv 4`: the engine's buffer sizes (`load_tensors: CPU_Mapped model buffer size = ...`) are libllama
 *   INFO lines, which llama-server shows only at `-lv 4` (common/log.cpp maps GGML INFO to verbosity 4);
 *   nothing printed at the default `-lv 3` carries a size. Measured on the tiny model through the
 *   gateway: 27 lines a request instead of 9, +0.06-0.09 ms of CPU on a 1.1 ms request, no change in
 *   latency beyond noise. With a warm prompt cache it is far more (89 lines a 64-token stream, a line
 *   per cached prompt), so once the engine is ready its runner drops the per-request trace that only
 *   this verbosity shows (`raisedVerbosity`, runners/serving_trace.ts). The memory port leaves it out
 *   where the figures are known another way (router/memory/port.ts `launchOptions`).
 * - `-c`: without one the engine's own `--fit` (on by default) shrinks the context when it finds too
 *   little memory (measured: `-fitt 24080` on a 24 GiB host turned 65536 into 15872, logged at `-lv 4`
 *   only), so the model would run on less than it was admitted and listed for. Any explicit `-c`,
 *   `-c 0` included (arg.cpp sets `fit_params_min_ctx = UINT32_MAX`), stops that; the value pinned is
 *   the one the projection assumed.
 * - `--cache-ram`: the prompt cache grows to 8 GiB of host RAM per engine by default, which the claims
 *   must count (`defaultOverheads`): eight tiny models could not share a 64 GiB host. A gateway runs
 *   several engines, so it pins a smaller default (memory.md §6.1).
 * - `-fitt` (GPU hosts only): the engine's `--fit` keeps this much free on each device when it places
 *   layers; the device's reserve makes it leave what the budget leaves. On a host without GPUs the
 *   engine can change nothing once `-c` is pinned, and `-fitt` would only add a warning.
 */
import { lookupCanonical, type OptionMap } from "../flags/flags.ts";
import { type Env, memoryArgs } from "./args.ts";
import type { Device } from "./devices.ts";
import { MiB } from "./size.ts";

/** `--cache-ram` (MiB) an engine gets unless told otherwise; llama-server's own default is 8192. */
export const GATEWAY_CACHE_RAM_MIB = 2048;

/** The verbosity at which the engine logs its buffer sizes. */
export const OBSERVE_VERBOSITY = "4";

/** Options that set the engine's verbosity one way or another. */
const VERBOSITY_FLAGS = ["--log-verbosity", "--log-verbose", "--log-disable"];

/** A GPU of the engine and the reserve its budget leaves free there. */
export interface GpuReserve {
  name: string;
  reserve: number;
}

function given(options: OptionMap, env: Env, flag: string): boolean {
  if (options.has(flag)) return true;
  const name = lookupCanonical(flag)?.def.env;
  return name !== undefined && env[name] !== undefined && env[name] !== "";
}

/**
 * The `-fitt` list, one MiB figure per device in the order the engine uses them: `-dev`'s order when
 * given, else the order it lists its GPUs in.
 */
export function fitTargets(gpus: readonly GpuReserve[], devices: string | undefined): string | undefined {
  const wanted = devices?.split(",").map((d) => d.trim()).filter(Boolean);
  if (wanted?.length === 1 && wanted[0] === "none") return undefined;
  const order = wanted
    ? wanted.map((w) => gpus.find((g) => g.name.toLowerCase() === w.toLowerCase()))
    : [...gpus];
  if (order.length === 0 || order.some((g) => g === undefined)) return undefined;
  return order.map((g) => String(Math.floor(g!.reserve / MiB))).join(",");
}

/**
 * The options to launch with: `options` with what the gateway needs added. Options it cannot read
 * (a malformed `-np`) are launched as they are: the engine refuses them itself, and the projection
 * says why.
 *
 * @example
 * ```ts
 * gatewayLaunchOptions(new Map([["--model", "/m/a.gguf"]]), {}, []);
 * // --model /m/a.gguf --log-verbosity 4 --ctx-size 0 --cache-ram 2048
 * ```
 */
export function gatewayLaunchOptions(options: OptionMap, env: Env, gpus: readonly GpuReserve[]): OptionMap {
  const out: OptionMap = new Map(options);
  if (!VERBOSITY_FLAGS.some((flag) => given(out, env, flag))) out.set("--log-verbosity", OBSERVE_VERBOSITY);
  let ctx: number, devices: string | undefined;
  try {
    ({ ctx, devices } = memoryArgs(out, env));
  } catch {
    return out;
  }
  if (!given(out, env, "--ctx-size")) out.set("--ctx-size", String(ctx));
  if (!given(out, env, "--cache-ram")) out.set("--cache-ram", String(GATEWAY_CACHE_RAM_MIB));
  const targets = fitTargets(gpus, devices);
  if (targets !== undefined && !given(out, env, "--fit-target")) out.set("--fit-target", targets);
  return out;
}

/**
 * `launched` has the verbosity `gatewayLaunchOptions` adds, which `options` (the user's) did not ask
 * for: the engine's per-request trace is then the gateway's doing, and its runner drops it once the load
 * has been read (runners/serving_trace.ts).
 */
export function raisedVerbosity(options: OptionMap, launched: OptionMap): boolean {
  return !options.has("--log-verbosity") && launched.get("--log-verbosity") === OBSERVE_VERBOSITY;
}

/** The GPUs of `devices` with their reserves, for `gatewayLaunchOptions`. */
export function gpuReserves(
  devices: readonly Device[],
  reserves: Readonly<Record<string, { reserve: number }>>,
): GpuReserve[] {
  return devices.filter((d) => d.kind === "gpu").map((d) => ({
    name: d.name,
    reserve: reserves[d.name]?.reserve ?? 0,
  }));
}

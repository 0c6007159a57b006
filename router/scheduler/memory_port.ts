/**
 * What the scheduler asks of the memory knowledge (router/memory/): the budgets per device, and what
 * each model needs there. The scheduler books claims from these and decides with its policies; it
 * never measures memory itself. Without a port (tests, or no memory knowledge) budgets are empty and
 * only `--models-max` counts.
 */
import type { EngineLaunch } from "../../runners/protocol.ts";
import type { OptionMap } from "../flags/flags.ts";
import type { ModelSpec } from "../sources/types.ts";
import type { DeviceBytes, DeviceId } from "./policies/device_bytes.ts";

export type ProjectionSource = "fit-params" | "gguf" | "observed";

/** Bytes per device a model needs (or was seen to use), and who said so. */
export interface ProjectionView {
  readonly bytes: DeviceBytes;
  readonly source: ProjectionSource;
}

export interface MemoryPort {
  /** per device, what models may claim in all (total less the reserve, or `--models-memory`) */
  budgets(): DeviceBytes;
  /** devices where two loads must not overlap (the engine fits itself against live free memory) */
  serialisedDevices(): readonly DeviceId[];
  /** the model's projection for this launch, cached by file identity, memory-relevant args and build */
  project(spec: ModelSpec, launch: EngineLaunch): Promise<ProjectionView>;
  /**
   * After a load, the engine's own figures from the lines it logged while loading; remembered for
   * the same key, so the next projection of this launch is what was observed.
   */
  observe(spec: ModelSpec, launch: EngineLaunch, logLines: readonly string[]): ProjectionView | undefined;
  /**
   * The options an engine is launched with, given the model's and the gateway's: what the port needs
   * of it so that `observe` has figures and the engine's own fit keeps to what was projected.
   * Optional: without it, engines run the options as given.
   */
  launchOptions?(options: OptionMap): OptionMap;
  /**
   * Live free memory of the serialised devices, freshly listed by the engine; undefined where it
   * cannot be had. Asked for a short while after a model on those devices exits, since drivers give
   * memory back late.
   */
  liveFree?(): Promise<DeviceBytes | undefined>;
}

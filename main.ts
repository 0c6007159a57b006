/**
 * Switchyard: one OpenAI-compatible endpoint for many GGUF models, each in its own llama-server.
 * Speaks llama-server's router-mode flags: `deno task serve --models-dir ./models --models-max 2`.
 */
import { CliError, parseCli, USAGE } from "./router/cli.ts";
import type { LogFormat } from "./router/config.ts";
import type { Gateway } from "./router/gateway.ts";
import { formatLog } from "./router/logs/format.ts";
import { RUNNER_FLAG, runRunner } from "./runners/runner.ts";

/** `--log-format`, once the command line is read */
let logFormat: LogFormat = "text";

function log(line: string): void {
  console.error(formatLog(line, logFormat, new Date()));
}

async function main(args: string[]): Promise<number> {
  // a compiled binary is its own runner; the gateway's modules are loaded only below, so a runner stays small
  if (args[0] === RUNNER_FLAG) return await runRunner();
  let parsed;
  try {
    parsed = parseCli(args, Deno.env.toObject());
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    console.error(`${err.message}\n\n${USAGE}`);
    return 1;
  }
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }
  if (parsed.version) {
    console.log("switchyard 0.1.0");
    return 0;
  }
  logFormat = parsed.config.logFormat;
  parsed.warnings.forEach((w) => log(`warning: ${w}`));
  // signals are handled from the first moment: a stop during start-up waits for the gateway, then closes it
  const stopped = Promise.withResolvers<number>();
  let gateway: Gateway | undefined;
  let stopAsked = "";
  const stop = (name: string) => {
    if (stopAsked) {
      log(`${name} again: exiting now`);
      Deno.exit(1);
    }
    stopAsked = name;
    log(`${name}: stopping (in-flight requests may finish; ${name} again to exit at once)`);
    gateway?.close().then(() => stopped.resolve(0), () => stopped.resolve(1));
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  Deno.addSignalListener("SIGHUP", () => {
    gateway?.reload().catch(() => {}); // reload() logs its own failure
  });

  const { startGateway } = await import("./router/gateway.ts");
  try {
    gateway = await startGateway(parsed.config, { env: Deno.env.toObject(), log });
  } catch (err) {
    log(`error: ${(err as Error).message}`);
    return 1;
  }
  if (stopAsked) gateway.close().then(() => stopped.resolve(0), () => stopped.resolve(1));
  return await stopped.promise;
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/**
 * llama.cpp's own web UI (tools/ui of the pinned source, built with npm by router/engine/webui.ts, as
 * the gateway serves it) in a real browser against the real gateway, real llama-server engines and
 * tiny models: pick a model from its dropdown, chat, reload the page while the answer streams and
 * see the answer finish (the resumable-stream routes), with no request failing that the UI does not
 * expect to fail. Then the same UI at /llamacpp/ with Switchyard's page at /. Screenshots go to
 * tests/artifacts/ (git-ignored).
 */
import { join } from "node:path";
import type { Page, Request } from "playwright-core";
import { ensureWebui, WebuiUnavailableError } from "../../router/engine/webui.ts";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { engineAvailable, postJson, waitForStatus } from "../helpers/http.ts";
import { makeModelsDir } from "../helpers/models.ts";
import { engineOf } from "../helpers/processes.ts";
import { delay, HANG_MS } from "../helpers/wait.ts";
import { assert, assertEquals, assertIncludes } from "./ui_assert.ts";
import { artifactPath, browserMissing, launchBrowser } from "./ui_helpers.ts";

const noBrowser = browserMissing("the llama.cpp web UI browser test");
const noEngine = noBrowser ? undefined : await engineAvailable();
const noWebui = noBrowser || noEngine ? undefined : await webuiMissing();

/** Builds the UI where the gateway will look for it (about 80 s, once); the reason when it cannot. */
async function webuiMissing(): Promise<string | undefined> {
  try {
    await ensureWebui({ env: Deno.env.toObject(), log: (line) => console.error(line) });
    return undefined;
  } catch (error) {
    if (!(error instanceof WebuiUnavailableError)) throw error;
    console.error(`skipping the llama.cpp web UI browser test: ${error.message}`);
    return error.message;
  }
}

/**
 * Tokens of every answer (`-n`): at this model's speed (several hundred a second) and with the UI
 * rendering each one, the answer still streams when the reloaded page asks for it again.
 */
const ANSWER_TOKENS = 3000;

/**
 * Requests that failed (a network error, or a status of 400 or more), but those the UI itself means
 * or expects: what leaving a page (a reload) cuts off, its own probe of `/v1/stream` (it reads the status, then
 * aborts), and `/tools`, which llama-server's router too refuses (403 `feature_disabled`) when tools
 * are off; the UI reads that as "no tools".
 */
function watchRequests(page: Page) {
  const failed: string[] = [];
  let leaving = false;
  const responded = new Set<Request>();
  page.on("response", async (res) => {
    const req = res.request();
    responded.add(req);
    if (res.status() < 400) return;
    const body = await res.text().catch(() => "");
    const toolsOff = new URL(req.url()).pathname.endsWith("/tools") && res.status() === 403 &&
      body.includes("feature_disabled");
    if (!toolsOff) failed.push(`${req.method()} ${req.url()}: ${res.status()} ${body.slice(0, 200)}`);
  });
  page.on("requestfailed", (req) => {
    const aborted = req.failure()?.errorText === "net::ERR_ABORTED";
    const probe = aborted && responded.has(req) && new URL(req.url()).pathname.endsWith("/v1/stream");
    if (!(aborted && leaving) && !probe) {
      failed.push(`${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
    }
  });
  return {
    failed,
    /** runs `navigation`: what the page being left had in flight is cut off by the browser, not failed */
    async leave(navigation: () => Promise<unknown>) {
      leaving = true;
      try {
        await navigation();
      } finally {
        leaving = false;
      }
    },
  };
}

// Page-side code is passed as strings: the tests are type-checked without the DOM library.
const LAST_ANSWER = `[...document.querySelectorAll(".chat-message-assistant")].at(-1)`;

/** The model picker of the chat form: a button named by the model it shows. */
const picker = (page: Page, ids: string[]) =>
  page.getByRole("button", { name: new RegExp(`^(${ids.join("|")})$`) }).first();

async function pickModel(page: Page, ids: string[], id: string): Promise<void> {
  await picker(page, ids).click();
  // an option's accessible name also holds its hover buttons' labels: match its text instead
  await page.getByRole("option").filter({ hasText: new RegExp(`^\\s*${id}\\s*$`) }).click();
  await picker(page, ids).filter({ hasText: id }).waitFor();
}

async function send(page: Page, text: string): Promise<void> {
  const input = page.getByRole("textbox").first();
  await input.fill(text);
  await input.press("Enter");
}

/** Page-side: the token count the UI shows under the last answer, live while it streams, final at its end. */
const SHOWN_TOKENS = String
  .raw`Number((/([\d,.\s]+) tokens/.exec(${LAST_ANSWER}?.innerText ?? "")?.[1] ?? "").replace(/\D/g, ""))`;

/**
 * Waits until the last answer counts `tokens` (every answer has exactly `-n` of them: the tiny model
 * never emits EOS), so the whole answer has arrived; returns its text.
 */
async function answered(page: Page, tokens: number, timeout = 90_000): Promise<string> {
  await page.waitForFunction(`${SHOWN_TOKENS} === ${tokens}`, undefined, { timeout });
  return await page.locator(".chat-message-assistant").last().innerText();
}

async function openUi(page: Page, url: string, ids: string[]): Promise<void> {
  await page.goto(url);
  await picker(page, ids).waitFor({ timeout: 30_000 });
}

Deno.test({
  name: "llama.cpp's web UI at / (--webui llamacpp): pick a model, chat, reload mid-answer, it finishes",
  ignore: noBrowser || !!noEngine || !!noWebui,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const models = ["alpha", "beta"];
    const dir = await makeModelsDir(models);
    let gw: TestGateway | undefined;
    let engine: number | undefined;
    const browser = await launchBrowser();
    try {
      gw = await startGateway({
        args: [
          "--models-dir",
          dir,
          "-c",
          "4096",
          "-np",
          "1",
          "-n",
          String(ANSWER_TOKENS),
          "--webui",
          "llamacpp",
        ],
      });
      const page = await browser.context.newPage();
      const requests = watchRequests(page);
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));

      await t.step("the page is llama.cpp's, in router mode, listing every model", async () => {
        await openUi(page, gw!.url + "/", models);
        await picker(page, models).click();
        const options = await page.getByRole("option").allInnerTexts();
        assertEquals(options.map((o) => o.trim()).sort(), models);
        await page.screenshot({ path: await artifactPath("ui-llamacpp-1-models.png") });
        await page.keyboard.press("Escape");
      });

      let before = "";
      let resumed: Promise<unknown> | undefined;
      await t.step("a model picked from the dropdown answers; the page reloads mid-answer", async () => {
        await pickModel(page, models, "beta");
        // The answer must still be under way when the reloaded page looks for it, however fast the
        // engine: beta is loaded and frozen before the question, runs in short steps until the page
        // shows text, and stays frozen from then until the page asks to replay the stream.
        await (await postJson(gw!, "/models/load", { model: "beta" })).body?.cancel();
        await waitForStatus(gw!, "beta", "loaded");
        engine = engineOf(join(dir, "beta.gguf"));
        Deno.kill(engine, "SIGSTOP");
        await send(page, "Tell me a long story.");
        await runInSteps(
          engine,
          () => page.evaluate<boolean>(`(${LAST_ANSWER}?.innerText ?? "").trim().length > 20`),
        );
        before = await page.locator(".chat-message-assistant").last().innerText();
        const shown = await page.evaluate<number>(SHOWN_TOKENS);
        assert(shown < ANSWER_TOKENS, `the answer had ended before the reload (${shown} tokens)`);
        await page.screenshot({ path: await artifactPath("ui-llamacpp-2-streaming.png") });
        await holdEngineUntilReplay(page, engine);
        resumed = page.waitForResponse((r) => new URL(r.url()).pathname === "/v1/stream" && r.ok());
        await requests.leave(() => page.reload());
      });

      await t.step("after the reload the answer comes back and completes, from beta", async () => {
        // the reloaded page finds the stream (/v1/streams/lookup) and replays it (/v1/stream)
        await resumed;
        const text = await answered(page, ANSWER_TOKENS);
        assert(
          text.length > before.length,
          `no more text after the reload (${before.length} → ${text.length})`,
        );
        assertIncludes(text, "beta");
        assertEquals(await page.getByText("Tell me a long story.").count() > 0, true);
        await page.screenshot({ path: await artifactPath("ui-llamacpp-3-resumed.png") });
      });

      await t.step("Switchyard's own page is at /switchyard/, working", async () => {
        const ours = await browser.context.newPage();
        await ours.goto(gw!.url + "/switchyard/");
        await ours.locator("#feed[data-state=live]").waitFor({ timeout: 15_000 });
        assertEquals(await ours.title(), "Switchyard");
        await ours.close();
      });

      assertEquals(requests.failed, []);
      assertEquals(pageErrors, []);
    } finally {
      if (engine) resumeEngine(engine);
      await browser.close();
      await gw?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

/** Lets a frozen engine run again; it may have exited already. */
function resumeEngine(pid: number): void {
  try {
    Deno.kill(pid, "SIGCONT");
  } catch {
    // gone
  }
}

/** How long a frozen engine runs at a time: a few dozen tokens even on a fast machine. */
const STEP_MS = 5;

/**
 * Lets the frozen `engine` run a step at a time until `shows` holds, and leaves it frozen: however
 * fast the engine, the page sees the answer a few steps' tokens in, far from its end.
 */
async function runInSteps(engine: number, shows: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + HANG_MS;
  while (!await shows()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${HANG_MS} ms: no answer shown`);
    resumeEngine(engine);
    await delay(STEP_MS);
    Deno.kill(engine, "SIGSTOP");
  }
}

/**
 * Keeps the frozen `engine` frozen except while the page looks its stream up (the gateway gives an
 * engine 250 ms to answer a lookup), and lets it go for good once the page asks to replay the stream.
 */
async function holdEngineUntilReplay(page: Page, engine: number): Promise<void> {
  let replayed = false;
  await page.route((url) => url.pathname === "/v1/streams/lookup", async (route) => {
    resumeEngine(engine);
    const response = await route.fetch();
    if (!replayed) Deno.kill(engine, "SIGSTOP");
    await route.fulfill({ response });
  });
  await page.route((url) => url.pathname === "/v1/stream", async (route) => {
    replayed = true;
    resumeEngine(engine);
    await route.continue();
  });
}

Deno.test({
  name: "llama.cpp's web UI at /llamacpp/ (default --webui): its API below that path answers as at /",
  ignore: noBrowser || !!noEngine || !!noWebui,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const models = ["alpha", "beta"];
    const dir = await makeModelsDir(models);
    let gw: TestGateway | undefined;
    const browser = await launchBrowser();
    try {
      gw = await startGateway({ args: ["--models-dir", dir, "-c", "2048", "-np", "1", "-n", "64"] });
      const page = await browser.context.newPage();
      const requests = watchRequests(page);
      await page.goto(gw.url + "/");
      assertEquals(await page.title(), "Switchyard");
      await requests.leave(() => openUi(page, gw!.url + "/llamacpp", models));
      assertEquals(new URL(page.url()).pathname, "/llamacpp/");
      await pickModel(page, models, "alpha");
      await send(page, "Hello!");
      const text = await answered(page, 64);
      assert(text.trim().length > 20, text);
      await page.screenshot({ path: await artifactPath("ui-llamacpp-4-subpath.png") });
      assertEquals(requests.failed, []);
    } finally {
      await browser.close();
      await gw?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

/**
 * The web UI in a real browser against the real gateway with real llama-server engines and tiny models:
 * pick a model and watch it load, get a streamed answer, switch models mid-conversation (the next
 * message autoloads the new one), see a model that cannot load explained, read a model's arguments and
 * log, unload it, find the conversation again after a reload, and use the page at phone width.
 * Screenshots go to tests/artifacts/ (git-ignored).
 */
import type { Page } from "playwright-core";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { engineAvailable } from "../helpers/http.ts";
import { makeModelsDir } from "../helpers/models.ts";
import { assert, assertEquals, assertIncludes } from "./ui_assert.ts";
import {
  answer,
  artifactPath,
  browserMissing,
  launchBrowser,
  transitionsDone,
  waitState,
} from "./ui_helpers.ts";

const noBrowser = browserMissing("the UI browser test");
const noEngine = noBrowser ? undefined : await engineAvailable();

/**
 * Records every state a model row takes, from page start. A batch of records can hold several changes
 * of one row (a fast load: loading, then loaded), so the value after each change is the next record's
 * old value, and the row's current value only for its last record: none is lost, however fast.
 */
const RECORDER = `
  window.__states = [];
  new MutationObserver((records) => {
    const rows = records.filter((r) => r.target instanceof Element && r.target.classList.contains("model-row"));
    rows.forEach((r, i) => {
      const later = rows.slice(i + 1).find((n) => n.target === r.target);
      const value = later ? later.oldValue : r.target.dataset.state;
      window.__states.push(r.target.querySelector("input").value + ":" + value);
    });
  }).observe(document, { subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ["data-state"] });
`;

const row = (page: Page, id: string) => page.locator(`.model-row:has(input[value="${id}"])`);

/** Sends `text` and waits until its answer has ended and is drawn; returns the answer's text. */
async function ask(page: Page, text: string): Promise<string> {
  await answer(page, async () => {
    await page.fill("#composer-input", text);
    await page.press("#composer-input", "Enter");
  });
  return await page.locator("article.msg-assistant").last().innerText();
}

Deno.test({
  name: "web UI on the real gateway: pick, load, stream, switch, failure, details, unload, phone",
  ignore: noBrowser || !!noEngine,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = await makeModelsDir(["alpha", "beta"]);
    // a file that is not a model: its load fails, and the page must say why
    await Deno.writeFile(
      `${dir}/broken.gguf`,
      new TextEncoder().encode("this is not a gguf file\n".repeat(64)),
    );
    let gw: TestGateway | undefined;
    const browser = await launchBrowser();
    try {
      // -n bounds answers by tokens, so that the conversation fits the context as it grows
      gw = await startGateway({ args: ["--models-dir", dir, "-c", "4096", "-np", "1", "-n", "256"] });
      const page = await browser.context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));
      await page.addInitScript(RECORDER);
      const chats: { stream: unknown; type: string }[] = [];
      page.on("response", (res) => {
        if (!res.url().endsWith("/v1/chat/completions")) return;
        chats.push({
          stream: res.request().postDataJSON()?.stream,
          type: res.headers()["content-type"] ?? "",
        });
      });

      await t.step("the page lists every model with its state, live", async () => {
        await page.goto(gw!.url);
        await page.locator("#feed[data-state=live]").waitFor();
        for (const id of ["alpha", "beta", "broken"]) await waitState(page, id, "unloaded");
        assertEquals(await page.title(), "Switchyard");
        await page.screenshot({ path: await artifactPath("ui-gateway-1-models.png") });
      });

      await t.step(
        "choosing a model and pressing Load loads it, with the state shown as it goes",
        async () => {
          await row(page, "alpha").locator(".model-repo").click();
          assertEquals(await page.locator("#current-name").innerText(), "alpha");
          await page.getByRole("button", { name: "Load alpha" }).click();
          await waitState(page, "alpha", "loaded");
          const states: string[] = await page.evaluate<string[]>("window.__states");
          const alpha = states.filter((s) => s.startsWith("alpha:"));
          assert(alpha.indexOf("alpha:loading") >= 0, `alpha never showed loading: ${alpha.join(", ")}`);
          assert(alpha.indexOf("alpha:loading") < alpha.indexOf("alpha:loaded"), alpha.join(", "));
          assertEquals(await page.locator("#current-state").innerText(), "Ready");
          await page.screenshot({ path: await artifactPath("ui-gateway-2-loaded.png") });
        },
      );

      await t.step("a message gets a streamed answer labelled with its model", async () => {
        const text = await ask(page, "Hello, who are you?");
        assert(text.length > 10, `answer too short: ${JSON.stringify(text)}`);
        // streamed: whether any text is on screen before the end depends on the engine's speed against
        // the page's frames, so that is checked on the mock API, whose answer waits for the page
        assertEquals(chats[0]?.stream, true);
        assertIncludes(chats[0]?.type ?? "", "text/event-stream");
        const last = page.locator("article.msg-assistant").last();
        assertEquals(await last.locator(".msg-model").innerText(), "alpha");
        assertEquals(await last.locator(".msg-error").count(), 0);
        await page.screenshot({ path: await artifactPath("ui-gateway-3-answer.png") });
      });

      await t.step("switching models mid-conversation: the next message loads the new one", async () => {
        await row(page, "beta").locator(".model-repo").click();
        await ask(page, "And you?");
        await waitState(page, "beta", "loaded");
        const labels = await page.locator("article.msg-assistant .msg-model").allInnerTexts();
        assertEquals(labels, ["alpha", "beta"]);
        assertEquals(await page.locator("article.msg-assistant .msg-error").count(), 0);
      });

      await t.step(
        "a model that cannot load: the answer shows the gateway's error and the reason",
        async () => {
          await row(page, "broken").locator(".model-repo").click();
          await ask(page, "Are you there?");
          const error = page.locator("article.msg-assistant").last().locator(".msg-error");
          await error.waitFor();
          assertIncludes(await error.locator(".msg-error-title").innerText(), "failed to load");
          // the engine's own words, picked out of its log: llama.cpp rejects the file's magic
          assertIncludes(await error.locator(".msg-error-reason").innerText(), "GGUF");
          await waitState(page, "broken", "failed");
          const detail = await row(page, "broken").locator(".model-detail").innerText();
          assert(detail.trim().length > 0, "the failed row shows no reason");
          await page.screenshot({ path: await artifactPath("ui-gateway-4-failed.png") });
        },
      );

      await t.step("the model dialog shows effective arguments and log lines, and unloads", async () => {
        await page.getByRole("button", { name: "Details and logs for alpha" }).click();
        const dialog = page.locator("#model-dialog");
        await dialog.waitFor();
        const args = await dialog.locator("#md-args").innerText();
        assertIncludes(args, "--ctx-size 4096");
        assertIncludes(args, "alpha.gguf");
        // a loaded model shows the port its engine really listens on, not the placeholder 0
        assert(/--port [1-9]\d*/.test(args), `no real port in the arguments:\n${args}`);
        await page.waitForFunction(
          `!["", "Loading…", "No log lines yet."].includes(document.getElementById("md-logs")?.textContent ?? "")`,
        );
        await page.screenshot({ path: await artifactPath("ui-gateway-5-details.png") });
        await dialog.getByRole("button", { name: "Unload" }).click();
        await waitState(page, "alpha", "unloaded");
        assertEquals(await dialog.locator("#md-load").isVisible(), true);
        await page.keyboard.press("Escape");
        await dialog.waitFor({ state: "hidden" });
        await page.screenshot({ path: await artifactPath("ui-gateway-6-unloaded.png") });
      });

      await t.step("the conversation survives a reload", async () => {
        await page.reload();
        await page.locator("#feed[data-state=live]").waitFor();
        // the stored conversation is drawn in one frame, which may come after the feed is live
        await page.locator("article.msg-user").first().waitFor();
        assertEquals(await page.locator("article.msg-user").count(), 3);
        assertEquals(await page.locator("article.msg-assistant .msg-model").allInnerTexts(), [
          "alpha",
          "beta",
          "broken",
        ]);
      });

      await t.step("phone width: the model list is a drawer and the chat fits", async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        await transitionsDone(page); // the drawer slides out of view
        await page.screenshot({ path: await artifactPath("ui-gateway-7-phone.png") });
        const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - innerWidth");
        assert(overflow <= 0, `the page scrolls sideways by ${overflow}px at 390px`);
        await page.click("#open-sidebar");
        await page.locator("#sidebar.is-open").waitFor();
        await transitionsDone(page); // the slide-in
        await page.screenshot({ path: await artifactPath("ui-gateway-8-phone-models.png") });
        await row(page, "alpha").locator(".model-repo").click();
        await page.locator("#sidebar.is-open").waitFor({ state: "detached" });
        assertEquals(await page.locator("#current-name").innerText(), "alpha");
      });

      assertEquals(pageErrors, []);
    } finally {
      await browser.close();
      await gw?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "web UI on the real gateway with --api-key: the page loads, asks for the key, then works",
  ignore: noBrowser || !!noEngine,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await makeModelsDir(["alpha"]);
    let gw: TestGateway | undefined;
    const browser = await launchBrowser();
    try {
      gw = await startGateway({ args: ["--models-dir", dir, "-c", "512", "--api-key", "k-123"] });
      const page = await browser.context.newPage();
      await page.goto(gw.url);
      const dialog = page.locator("#key-dialog");
      await dialog.waitFor();
      await page.fill("#kd-input", "wrong");
      await page.press("#kd-input", "Enter");
      // the wrong key is refused and the dialog comes back with the gateway's reason
      await page.waitForFunction(`document.getElementById("kd-reason").textContent.includes("refused")`);
      await dialog.waitFor();
      await page.fill("#kd-input", "k-123");
      await page.press("#kd-input", "Enter");
      await dialog.waitFor({ state: "hidden" });
      await page.locator("#feed[data-state=live]").waitFor();
      await waitState(page, "alpha", "unloaded");
      await page.screenshot({ path: await artifactPath("ui-gateway-9-api-key.png") });
    } finally {
      await browser.close();
      await gw?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

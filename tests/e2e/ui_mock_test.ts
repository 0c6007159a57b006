/**
 * The web UI in a real browser against the fake API (tests/fixtures/mock_api.ts), for what is hard to
 * stage with real engines: the API key dialog, stopping a slow answer, download progress, deleting with
 * a confirmation, the safety of rendered model output, and keyboard use. Needs Chromium, not llama-server.
 */
import { type MockApi, startMockApi } from "../fixtures/mock_api.ts";
import { assert, assertEquals, assertIncludes } from "./ui_assert.ts";
import { type Page } from "playwright-core";
import {
  answer,
  answersEnded,
  artifactPath,
  browserMissing,
  launchBrowser,
  transitionsDone,
  waitAnswered,
  waitState,
} from "./ui_helpers.ts";

const noBrowser = browserMissing("the UI mock test");

const GEMMA = "ggml-org/gemma-3-1b-it-GGUF:Q4_K_M";
const QWEN = "ggml-org/Qwen3-0.6B-GGUF:Q8_0";

async function send(page: Page, text: string): Promise<void> {
  await page.fill("#composer-input", text);
  await page.press("#composer-input", "Enter");
}

Deno.test({
  name: "web UI on the mock API: key dialog, stop, markdown safety, download, delete, keyboard",
  ignore: noBrowser,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const mock: MockApi = await startMockApi({ apiKey: "s3cret", tick: 100 });
    const browser = await launchBrowser();
    try {
      const page = await browser.context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));

      await t.step("a 401 opens the key dialog; the key is stored and sent from then on", async () => {
        await page.goto(mock.url);
        const dialog = page.locator("#key-dialog");
        await dialog.waitFor();
        await page.screenshot({ path: await artifactPath("ui-mock-1-key.png") });
        await page.fill("#kd-input", "s3cret");
        await page.press("#kd-input", "Enter");
        await dialog.waitFor({ state: "hidden" });
        await page.locator("#feed[data-state=live]").waitFor();
        await waitState(page, GEMMA, "unloaded");
        assertEquals(await page.evaluate<string>(`localStorage.getItem("switchyard.apiKey")`), "s3cret");
      });

      await t.step("every state is shown: ready, sleeping, not loaded", async () => {
        await waitState(page, QWEN, "loaded");
        await waitState(page, "sleepy-llama-3.2-1b", "sleeping");
        // only a loaded model is picked for a first visit
        assertEquals(await page.locator("#current-name").innerText(), "Qwen3-0.6B-GGUF:Q8_0");
      });

      await t.step("a streaming answer is shown as it comes; Esc stops it and keeps what came", async () => {
        // the mock holds the answer after a few words: it is still streaming when Esc is pressed
        const release = mock.hold("answer");
        const since = await answersEnded(page);
        try {
          await send(page, "Tell me about <script>alert(1)</script>");
          await page.waitForFunction(
            `document.querySelector("article.msg-assistant.is-pending .msg-body")?.textContent.length > 0`,
          );
          assertEquals(await page.getAttribute("#send", "aria-label"), "Stop the answer");
          await page.keyboard.press("Escape");
        } finally {
          release();
        }
        await waitAnswered(page, since);
        const last = page.locator("article.msg-assistant").last();
        assertEquals(await last.locator(".msg-flag").innerText(), "stopped");
        assert((await last.locator(".msg-body").innerText()).length > 0, "the partial answer was dropped");
        assertEquals(await page.getAttribute("#send", "aria-label"), "Send");
      });

      await t.step("model output is rendered as markdown, never as HTML", async () => {
        await answer(page, () => page.getByRole("button", { name: "Regenerate" }).click());
        const body = page.locator("article.msg-assistant").last().locator(".msg-body");
        assertEquals(await body.locator("strong").first().innerText(), "streamed");
        assertEquals(await body.locator("pre code.language-ts").count(), 1);
        assertEquals(await body.locator("table td code").innerText(), "loaded");
        assertEquals(await body.locator("a").getAttribute("rel"), "noopener noreferrer");
        assertEquals(await body.locator("b, script").count(), 0);
        assertIncludes(await body.innerText(), "<b>not bold</b>");
        // the question's <script> is text in the user's bubble, and in the echo
        assertIncludes(await page.locator("article.msg-user .bubble").first().innerText(), "<script>");
        assertEquals(await page.locator("article script").count(), 0);
        await page.screenshot({ path: await artifactPath("ui-mock-2-markdown.png") });
      });

      await t.step("Shift+Enter makes a new line; Enter sends", async () => {
        await page.fill("#composer-input", "line one");
        await page.press("#composer-input", "Shift+Enter");
        await page.keyboard.type("line two");
        assertEquals(await page.inputValue("#composer-input"), "line one\nline two");
        assertEquals(await page.locator("article.msg-user").count(), 1);
        await answer(page, () => page.press("#composer-input", "Enter"));
        assertEquals(await page.locator("article.msg-user").last().innerText(), "line one\nline two");
      });

      await t.step("the model list works from the keyboard", async () => {
        await page.getByRole("radio", { name: QWEN }).focus();
        await page.keyboard.press("ArrowUp");
        assertEquals(await page.locator("#current-name").innerText(), "gemma-3-1b-it-GGUF:Q4_K_M");
      });

      await t.step("a model that fails to load shows why, in its row and in the answer", async () => {
        await page.getByRole("radio", { name: "broken-model" }).check({ force: true });
        await answer(page, () => send(page, "hello?"));
        const error = page.locator("article.msg-assistant").last().locator(".msg-error");
        assertEquals(
          await error.locator(".msg-error-title").innerText(),
          "model name=broken-model failed to load",
        );
        await error.locator(".msg-error-reason").waitFor();
        assertIncludes(await error.locator(".msg-error-reason").innerText(), "not within the file bounds");
        await waitState(page, "broken-model", "failed");
        await page.screenshot({ path: await artifactPath("ui-mock-3-failed.png") });
      });

      await t.step(
        "after a failed answer, the next request still alternates user and assistant",
        async () => {
          await page.getByRole("radio", { name: QWEN }).check({ force: true });
          const request = page.waitForRequest((r) => r.url().endsWith("/v1/chat/completions"));
          await answer(page, () => send(page, "and now?"));
          const body = (await request).postDataJSON();
          const roles: string[] = body.messages.map((m: { role: string }) => m.role);
          assertEquals(roles, ["user", "assistant", "user", "assistant", "user"]);
          assertEquals(body.messages.at(-1).content, "hello?\n\nand now?");
          assertEquals(body.stream, true);
        },
      );

      await t.step("a download shows its progress, then the model appears under its cache name", async () => {
        await page.click("#download summary");
        await page.fill("#download-name", "not a repo");
        await page.press("#download-name", "Enter");
        assertEquals(await page.locator("#download-msg").getAttribute("data-kind"), "error");
        // the mock holds the download half-way: its row is there to read, however slow the page is
        const release = mock.hold("download");
        const row = page.locator(`.model-row:has(input[value="unsloth/Qwen3-4B-GGUF:q4_k_m"])`);
        try {
          await page.fill("#download-name", "unsloth/Qwen3-4B-GGUF:q4_k_m");
          await page.press("#download-name", "Enter");
          await waitState(page, "unsloth/Qwen3-4B-GGUF:q4_k_m", "downloading");
          await page.waitForFunction(
            `[...document.querySelectorAll(".model-row progress")].some((p) => p.value > 0.2)`,
          );
          assertIncludes(await row.locator(".model-detail").innerText(), " of 812 MB");
          await page.screenshot({ path: await artifactPath("ui-mock-4-download.png") });
        } finally {
          release();
        }
        await waitState(page, "unsloth/Qwen3-4B-GGUF:Q4_K_M", "unloaded");
        assertEquals(await row.count(), 0);
      });

      await t.step("delete asks first, and is offered only for cache models", async () => {
        await page.getByRole("button", { name: "Details and logs for tiny-stories" }).click();
        await page.locator("#model-dialog").waitFor();
        assertEquals(await page.locator("#md-delete").isVisible(), false);
        assertIncludes(await page.locator("#md-sub").innerText(), "also known as stories");
        await page.keyboard.press("Escape");
        await page.getByRole("button", { name: `Details and logs for ${GEMMA}` }).click();
        await page.locator("#md-delete").click();
        const confirm = page.locator("#confirm-dialog");
        await confirm.waitFor();
        assertIncludes(await confirm.innerText(), GEMMA);
        await confirm.getByRole("button", { name: "Cancel" }).click();
        assertEquals(await page.locator(`.model-row:has(input[value="${GEMMA}"])`).count(), 1);
        await page.locator("#md-delete").click();
        await confirm.getByRole("button", { name: "Delete" }).click();
        await page.locator("#model-dialog").waitFor({ state: "hidden" });
        await page.locator(`.model-row:has(input[value="${GEMMA}"])`).waitFor({ state: "detached" });
        assert(mock.requests.includes("DELETE /models"), "no DELETE was sent");
      });

      await t.step("phone width, light and dark", async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        await transitionsDone(page);
        const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - innerWidth");
        assert(overflow <= 0, `the page scrolls sideways by ${overflow}px at 390px`);
        await page.screenshot({ path: await artifactPath("ui-mock-5-phone.png") });
        await page.emulateMedia({ colorScheme: "dark" });
        await page.click("#open-sidebar");
        await page.locator("#sidebar.is-open").waitFor();
        await transitionsDone(page);
        await page.screenshot({ path: await artifactPath("ui-mock-6-phone-dark-models.png") });
        await page.keyboard.press("Escape");
        await page.locator("#sidebar.is-open").waitFor({ state: "detached" });
      });

      assertEquals(pageErrors, []);
    } finally {
      await browser.close();
      await mock.stop();
    }
  },
});

Deno.test({
  name: "web UI on the mock API: the feed reconnects; without autoload the page loads the model first",
  ignore: noBrowser,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    let mock: MockApi = await startMockApi({ tick: 60, autoload: false });
    const port = Number(new URL(mock.url).port);
    const browser = await launchBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(mock.url);
      await page.locator("#feed[data-state=live]").waitFor();

      await t.step("a message to an unloaded model loads it, then is answered", async () => {
        await page.getByRole("radio", { name: "tiny-stories" }).check({ force: true });
        await answer(page, () => send(page, "once upon a time"));
        await waitState(page, "tiny-stories", "loaded");
        const last = page.locator("article.msg-assistant").last();
        assertEquals(await last.locator(".msg-error").count(), 0);
        assertIncludes(await last.locator(".msg-body").innerText(), "streamed");
        assert(mock.requests.includes("POST /models/load"), "the page did not load the model");
      });

      await t.step(
        "when the gateway goes away and comes back, the feed reconnects with fresh state",
        async () => {
          await mock.stop();
          await page.locator("#feed[data-state=offline]").waitFor();
          mock = await startMockApi({ tick: 60, port });
          await page.locator("#feed[data-state=live]").waitFor();
          // the new gateway starts with tiny-stories unloaded: the snapshot says so
          await waitState(page, "tiny-stories", "unloaded");
        },
      );
    } finally {
      await browser.close();
      await mock.stop();
    }
  },
});

/**
 * The page's activity view and live log tail in a real browser, against the real gateway with real
 * engines: requests the test sends show up in the activity view with their model, status and
 * tokens, per-model speeds are shown, a request sent while the view is open appears without a
 * reload, and a model's log in its dialog grows as the engine writes. Generations are bounded by
 * tokens. Screenshots go to tests/artifacts/ (git-ignored).
 */
import type { Page } from "playwright-core";
import { startGateway, type TestGateway } from "../helpers/gateway.ts";
import { engineAvailable, postJson } from "../helpers/http.ts";
import { makeModelsDir } from "../helpers/models.ts";
import { assert, assertEquals } from "./ui_assert.ts";
import { artifactPath, browserMissing, launchBrowser } from "./ui_helpers.ts";

const noBrowser = browserMissing("the activity browser test");
const noEngine = noBrowser ? undefined : await engineAvailable();

/** A chat bounded by tokens; resolves once its whole answer (streamed or not) has been read. */
async function chat(gw: TestGateway, model: string, stream = false): Promise<number> {
  const res = await postJson(gw, "/v1/chat/completions", {
    model,
    messages: [{ role: "user", content: "say something" }],
    max_tokens: 8,
    stream,
  });
  await res.text();
  return res.status;
}

const rows = (page: Page) => page.locator("#ad-requests tr");

/** The rows of the activity table, as `model endpoint status`, newest first. */
function shownRequests(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(
    `[...document.querySelectorAll("#ad-requests tr")].map((tr) =>
      [1, 2, 3].map((i) => tr.children[i].textContent).join(" "))`,
  );
}

Deno.test({
  name: "web UI: the activity view lists requests live with tokens/s per model; a model's log tail grows",
  ignore: noBrowser || !!noEngine,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = await makeModelsDir(["alpha", "beta"]);
    let gw: TestGateway | undefined;
    const browser = await launchBrowser();
    try {
      gw = await startGateway({ args: ["--models-dir", dir, "-c", "512", "-np", "1"] });
      assertEquals(await chat(gw, "alpha"), 200);
      assertEquals(await chat(gw, "alpha"), 200);
      assertEquals(await chat(gw, "beta", true), 200);
      assertEquals(await chat(gw, "no-such-model"), 400);
      const page = await browser.context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));
      await page.goto(gw.url);
      await page.locator("#feed[data-state=live]").waitFor();

      await t.step(
        "the activity view shows the requests sent, newest first, and speeds per model",
        async () => {
          await page.getByRole("button", { name: "Activity" }).click();
          await page.locator("#activity-dialog").waitFor();
          await page.waitForFunction(`document.querySelectorAll("#ad-requests tr").length === 4`);
          assertEquals(await shownRequests(page), [
            "— /v1/chat/completions 400",
            "beta /v1/chat/completions ⇢ 200",
            "alpha /v1/chat/completions 200",
            "alpha /v1/chat/completions 200",
          ]);
          assertEquals(await rows(page).first().getAttribute("class"), "is-error");
          for (const model of ["alpha", "beta"]) {
            const speed = await page.locator(
              `#ad-models tr[data-model="${model}"] [data-field="tokens-per-s"]`,
            )
              .innerText();
            assert(Number(speed) > 0, `${model}'s tokens/s: ${speed}`);
          }
          assertEquals(
            await page.locator("#ad-models tr").count(),
            2,
            "a request without a model is no model",
          );
          await page.screenshot({ path: await artifactPath("ui-activity-1-requests.png") });
        },
      );

      await t.step("a request sent while the view is open appears without a reload", async () => {
        assertEquals(await chat(gw!, "beta"), 200);
        await page.waitForFunction(`document.querySelectorAll("#ad-requests tr").length === 5`);
        assertEquals((await shownRequests(page))[0], "beta /v1/chat/completions 200");
        assertEquals(await page.locator("#ad-status").innerText(), "Live");
        await page.keyboard.press("Escape");
        await page.locator("#activity-dialog").waitFor({ state: "hidden" });
      });

      await t.step(
        "a model's dialog follows its log: a request's lines appear as the engine writes them",
        async () => {
          await page.getByRole("button", { name: "Details and logs for alpha" }).click();
          await page.locator("#model-dialog").waitFor();
          await page.waitForFunction(`document.getElementById("md-logs-state").textContent === "Live"`);
          const count = `document.getElementById("md-logs").textContent.split("\\n").length`;
          await page.waitForFunction(`${count} > 1`);
          const before = await page.evaluate<number>(count);
          assertEquals(await chat(gw!, "alpha"), 200);
          await page.waitForFunction(`${count} > ${before}`);
          await page.screenshot({ path: await artifactPath("ui-activity-2-live-log.png") });
          await page.keyboard.press("Escape");
        },
      );

      assertEquals(pageErrors, []);
    } finally {
      await browser.close();
      await gw?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

import { test, expect, type APIRequestContext, type Page } from "@playwright/test";
import * as fs from "fs";
import * as path from "path";

// What the browser tests share.

// Clicks before the wasm has hydrated the page are lost: wait for the app's marker.
export async function openHydrated(page: Page, path = "/") {
  await page.goto(path);
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
}

export function conversations(page: Page) {
  return page.getByRole("navigation", { name: "Conversations" });
}

export const STORY = "Write a long story about a lighthouse keeper who finds a message in a bottle.";

/** Starts a conversation from the start page and returns the reply's article. */
export async function ask(page: Page, text: string) {
  await openHydrated(page);
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(text);
  await box.press("Enter");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  return page.getByRole("article", { name: "Assistant" }).last();
}

// A test that leaves its reply running would hold a place at the model for
// the next one, so whatever is still being written is stopped after each.
export function stopRepliesAfterEach() {
  test.afterEach(async ({ page }) => {
    const stop = page.getByRole("button", { name: "Stop" });
    if (await stop.isVisible()) {
      // The reply may end between the look and the click: then the button is
      // gone, there is nothing left to stop, and the wait below still checks.
      await stop.click({ timeout: 3_000 }).catch(() => {});
      // A page without JavaScript only changes when it is loaded again.
      await expect(async () => {
        await page.reload();
        await expect(page.getByRole("button", { name: "Send" })).toBeVisible({ timeout: 1_000 });
      }).toPass({ timeout: 15_000 });
    }
  });
}

const AXE = fs.readFileSync(path.resolve(__dirname, "../../node_modules/axe-core/axe.min.js"), "utf8");

/** axe-core's serious and critical findings on the page as it is now. */
export async function seriousProblems(page: Page): Promise<string[]> {
  // Evaluated through the browser's debugging protocol, not as a <script>:
  // the page's content policy (only Wick's own scripts) stays as it is.
  await page.evaluate(AXE);
  return page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (c: Document) => Promise<any> } }).axe;
    const result = await axe.run(document);
    return result.violations
      .filter((v: any) => v.impact === "serious" || v.impact === "critical")
      .map((v: any) => `${v.id} (${v.impact}): ${v.nodes.map((n: any) => n.target.join(" ")).join(", ")}`);
  });
}

// The scripted OpenAI-compatible model (end2end/scripted_openai.py).
const SCRIPTED = `http://127.0.0.1:${process.env.WICK_E2E_SCRIPTED_PORT ?? "3211"}`;

/** Every request the scripted model received, oldest first. */
export async function scriptedRequests(request: APIRequestContext): Promise<any[]> {
  const answer = await request.get(`${SCRIPTED}/requests`);
  expect(answer.ok()).toBeTruthy();
  return answer.json();
}

/** The chat requests (not titles) the scripted model received, oldest first. */
export async function scriptedChats(request: APIRequestContext): Promise<any[]> {
  return (await scriptedRequests(request)).filter(
    (r) => !r.messages.some((m: any) => m.content.includes("Write a title of at most six words")),
  );
}

/** Starts a conversation with the scripted model; the page is hydrated. */
export async function askScripted(page: Page, text: string) {
  await openHydrated(page);
  await page.getByLabel("Model").selectOption({ label: "Scripted model" });
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(text);
  await box.press("Enter");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  return page.getByRole("article", { name: "Assistant" }).last();
}

/**
 * Waits until the reply being written has ended: Send is back, and the page
 * (loaded again at the reply's end) is interactive again, so that what the
 * test does next with JavaScript (keys, Copy, the model picker) is not lost.
 */
export async function replyEnded(page: Page, timeout = 30_000) {
  await expect(page.getByRole("button", { name: "Send" })).toBeVisible({ timeout });
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
}

/** Sends a message in the conversation shown and waits for its reply to end. */
export async function sendAndWait(page: Page, text: string) {
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(text);
  await box.press("Enter");
  await expect(page.getByRole("article", { name: "You" }).last()).toContainText(text);
  await replyEnded(page, 30_000);
}

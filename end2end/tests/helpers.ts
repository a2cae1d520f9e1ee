import { test, expect, type Page } from "@playwright/test";

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
      await stop.click();
      // A page without JavaScript only changes when it is loaded again.
      await expect(async () => {
        await page.reload();
        await expect(page.getByRole("button", { name: "Send" })).toBeVisible({ timeout: 1_000 });
      }).toPass({ timeout: 15_000 });
    }
  });
}

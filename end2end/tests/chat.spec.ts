import { test, expect, type Page } from "@playwright/test";

// Clicks before the wasm has hydrated the page are lost: wait for the app's marker.
async function openHydrated(page: Page, path = "/") {
  await page.goto(path);
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
}

function conversations(page: Page) {
  return page.getByRole("navigation", { name: "Conversations" });
}

test("the start page loads, titled Wick, with a sidebar and a composer", async ({ page }) => {
  await openHydrated(page);
  await expect(page).toHaveTitle(/Wick/);
  await expect(conversations(page)).toBeVisible();
  await expect(conversations(page).getByRole("link", { name: "New chat" })).toBeVisible();
  await expect(page.getByRole("textbox", { name: "Message" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Send" })).toBeEnabled();
});

test("send a message; after a reload it is still in the sidebar and the chat", async ({ page }) => {
  await openHydrated(page);
  const text = `Where do rivers begin? ${Date.now()}`;
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(text);
  await box.press("Enter");

  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  const mine = page.getByRole("article", { name: "You" });
  await expect(mine).toHaveCount(1);
  await expect(mine).toContainText(text);
  await expect(conversations(page).getByRole("link", { name: text })).toBeVisible();
  await expect(box).toHaveValue("");
  await expect(page).toHaveTitle(new RegExp(`Wick`));

  // A second message in the same conversation lands below the first.
  await box.fill("And where do they end?");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.getByRole("article", { name: "You" })).toHaveCount(2);
  await expect(page.getByRole("article", { name: "You" }).nth(1)).toContainText("And where do they end?");

  await page.reload();
  await expect(page.getByRole("article", { name: "You" })).toHaveCount(2);
  await expect(page.getByRole("article", { name: "You" }).first()).toContainText(text);
  await expect(conversations(page).getByRole("link", { name: text })).toHaveAttribute("aria-current", "page");
  await expect(conversations(page).getByRole("heading", { name: "Today" })).toBeVisible();
});

test("Shift+Enter adds a line instead of sending", async ({ page }) => {
  await openHydrated(page);
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("first line");
  await box.press("Shift+Enter");
  await box.pressSequentially("second line");
  await expect(box).toHaveValue("first line\nsecond line");
  await expect(page).toHaveURL(/\/$/);

  await box.press("Enter");
  await expect(page).toHaveURL(/\/c\//);
  await expect(page.getByRole("article", { name: "You" })).toContainText("first line\nsecond line");
});

test("an empty message is not sent and the composer says why", async ({ page }) => {
  await openHydrated(page);
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("   ");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.getByRole("alert")).toHaveText("Type a message before sending.");
  await expect(page).toHaveURL(/\/$/);
  await expect(box).toHaveValue("   ");
});

test("a message over 32,000 characters is refused, and the draft is kept", async ({ page }) => {
  await openHydrated(page);
  const box = page.getByRole("textbox", { name: "Message" });
  const long = "a".repeat(32_001);
  await box.fill(long);
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.getByRole("alert")).toHaveText(
    "This message is 32001 characters long; the limit is 32000 characters.",
  );
  await expect(page).toHaveURL(/\/$/);
  await expect(box).toHaveValue(long);
});

test.describe("with JavaScript disabled", () => {
  test.use({ javaScriptEnabled: false });

  test("sending works as a plain form post and survives a reload", async ({ page }) => {
    await page.goto("/");
    await expect(page).toHaveTitle(/Wick/);
    const text = `No script here ${Date.now()}`;
    await page.getByRole("textbox", { name: "Message" }).fill(text);
    await page.getByRole("button", { name: "Send" }).click();

    await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
    await expect(page.getByRole("article", { name: "You" })).toContainText(text);
    await page.reload();
    await expect(page.getByRole("article", { name: "You" })).toContainText(text);
    await expect(conversations(page).getByRole("link", { name: text })).toBeVisible();
  });

  test("an empty message comes back with the reason", async ({ page }) => {
    await page.goto("/");
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page.getByRole("alert")).toHaveText("Type a message before sending.");
    await expect(page.getByRole("article")).toHaveCount(0);
  });
});

test("another visitor sees none of the first visitor's conversations", async ({ page, browser }) => {
  await openHydrated(page);
  const secret = `My private note ${Date.now()}`;
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(secret);
  await box.press("Enter");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  const url = page.url();

  const other = await browser.newContext();
  try {
    const stranger = await other.newPage();
    await openHydrated(stranger);
    await expect(conversations(stranger)).toContainText("No conversations yet.");
    await expect(stranger.getByText(secret)).toHaveCount(0);

    const response = await stranger.goto(url);
    expect(response?.status()).toBe(404);
    await expect(stranger.getByRole("heading", { name: "Not found" })).toBeVisible();
    await expect(stranger.getByText(secret)).toHaveCount(0);
  } finally {
    await other.close();
  }
});

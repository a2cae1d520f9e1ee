import { test, expect, type Page } from "@playwright/test";
import { ask, askScripted, conversations, openHydrated, replyEnded, seriousProblems, STORY, stopRepliesAfterEach } from "./helpers";

// What a new user met on the first try (issue 13, "found when the current page
// was tried"): keyboard focus, accessibility, direction of text, example
// questions, and a page that shows the reply without JavaScript.

stopRepliesAfterEach();

test("axe-core finds no serious problem on the start page or a conversation, light or dark", async ({ page }) => {
  test.setTimeout(90_000);
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    await openHydrated(page);
    expect(await seriousProblems(page), `start page, ${colorScheme}`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: "light" });
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("Show a short Python function in a code block, then a list of three tips.");
  await box.press("Enter");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  // The reply written to its end, then checked as it stands, in both schemes.
  await replyEnded(page, 60_000);
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    expect(await seriousProblems(page), `conversation, ${colorScheme}`).toEqual([]);
  }
});

test("the keyboard: a skip link first, the message box focused on load and again after Send and Stop", async ({ page }) => {
  test.setTimeout(60_000);
  await openHydrated(page);
  const box = page.getByRole("textbox", { name: "Message" });
  await expect(box).toBeFocused();

  // The skip link is the first thing Tab reaches from the top of the page,
  // shown when it has focus, and leads to the box.
  const first = await page.evaluate(() => {
    const all = Array.from(document.querySelectorAll<HTMLElement>("a[href], button, input, select, textarea, [tabindex]"));
    return all.find((e) => e.tabIndex >= 0 && !(e as HTMLButtonElement).disabled)?.textContent;
  });
  expect(first).toBe("Skip to the message box");
  const skip = page.getByRole("link", { name: "Skip to the message box" });
  await skip.focus();
  await expect(skip).toBeInViewport();
  await page.keyboard.press("Enter");
  await expect(box).toBeFocused();

  await box.fill("Write a long story about a lighthouse keeper who finds a message in a bottle.");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  await expect(box).toBeFocused();
  await page.getByRole("button", { name: "Stop" }).click();
  await replyEnded(page);
  await expect(box).toBeFocused();
});

test("messages keep their own direction, the page has one heading, sidebar titles show whole on hover", async ({ page }) => {
  test.setTimeout(60_000);
  await openHydrated(page);
  const hebrew = `שלום, מה שלומך היום? ${Date.now()} ואיך עובר עליך השבוע הזה בעבודה ובבית`;
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(hebrew);
  await box.press("Enter");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);

  const mine = page.getByRole("article", { name: "You" });
  await expect(mine.locator(".content")).toHaveAttribute("dir", "auto");
  // The browser reads the text's own direction from it.
  expect(await mine.locator(".content").evaluate((e) => getComputedStyle(e).direction)).toBe("rtl");
  await expect(page.getByRole("article", { name: "Assistant" }).locator(".content")).toHaveAttribute("dir", "auto");

  // One top-level heading: the conversation's title.
  await expect(page.getByRole("heading", { level: 1 })).toHaveCount(1);
  await expect(page.getByRole("heading", { level: 1 })).toContainText("שלום");

  // The sidebar may cut a long title to fit; the whole title is there on hover.
  const link = conversations(page).getByRole("link", { name: /שלום/ });
  const whole = (await link.textContent())!.trim();
  expect(whole.length).toBeGreaterThan(20);
  await expect(link).toHaveAttribute("title", whole);
});

test("Escape stops the reply; its end is said once to screen readers", async ({ page }) => {
  test.setTimeout(60_000);
  await ask(page, STORY);
  const box = page.getByRole("textbox", { name: "Message" });
  await expect(page.getByRole("button", { name: "Stop" })).toBeVisible();
  // Nothing is announced while the reply grows.
  await expect(page.getByRole("status")).toHaveText("");
  await box.press("Escape");
  await expect(page.getByRole("article", { name: "Assistant" }).getByText("Stopped.")).toBeVisible();
  await expect(page.getByRole("status")).toHaveText("The reply was stopped.");
});

test("text typed before the page is interactive is kept, and sent", async ({ page }) => {
  // The WebAssembly arrives late, as on a slow connection.
  await page.route("**/pkg/wick*.wasm", async (route) => {
    await new Promise((r) => setTimeout(r, 2_500));
    await route.continue();
  });
  await page.goto("/");
  const box = page.getByRole("textbox", { name: "Message" });
  const text = `Typed early ${Date.now()}`;
  await box.fill(text);
  await expect(page.locator("body[data-hydrated]")).toBeAttached({ timeout: 20_000 });
  await expect(box).toHaveValue(text);
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  await expect(page.getByRole("article", { name: "You" })).toContainText(text);
});

test("a Send clicked before the page is interactive posts the form", async ({ page }) => {
  await page.route("**/pkg/wick*.wasm", async (route) => {
    await new Promise((r) => setTimeout(r, 2_500));
    await route.continue();
  });
  await page.goto("/");
  const text = `Sent early ${Date.now()}`;
  await page.getByRole("textbox", { name: "Message" }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}/);
  await expect(page.getByRole("article", { name: "You" })).toContainText(text);
});

test("the start page offers example questions; one click starts a chat with it", async ({ page }) => {
  await openHydrated(page);
  const examples = page.getByRole("list", { name: "Examples" }).getByRole("button");
  await expect(examples).toHaveCount(3);
  const question = (await examples.first().innerText()).trim();
  await examples.first().click();
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  await expect(page.getByRole("article", { name: "You" })).toContainText(question);
});

test.describe("in a short window", () => {
  test.use({ viewport: { width: 900, height: 420 } });

  test("scrolled up from the newest text, a button leads back down", async ({ page }) => {
    test.setTimeout(60_000);
    await ask(page, STORY);
    await replyEnded(page, 60_000);
    const button = page.getByRole("button", { name: "Scroll to the newest" });
    const messages = page.locator(".messages");
    await expect(button).toHaveCount(0);
    // The reply is taller than the window: scroll to the top.
    expect(await messages.evaluate((e) => e.scrollHeight - e.clientHeight)).toBeGreaterThan(100);
    await messages.evaluate((e) => e.scrollTo(0, 0));
    await expect(button).toBeVisible();
    await button.click();
    await expect(button).toHaveCount(0);
    expect(await messages.evaluate((e) => e.scrollHeight - e.scrollTop - e.clientHeight)).toBeLessThan(48);
  });
});

test.describe("in a short window, reading", () => {
  test.use({ viewport: { width: 900, height: 420 } });

  test("a reader scrolled up keeps their place when the page is loaded again at the reply's end", async ({ page }) => {
    test.setTimeout(60_000);
    // A reply taller than the window, cut at the length limit; its
    // continuation waits 2 s before its first word: time to scroll up.
    const reply = await askScripted(page, "held: 400");
    await expect(reply.getByRole("button", { name: "Continue" })).toBeVisible({ timeout: 20_000 });
    await reply.getByRole("button", { name: "Continue" }).click();
    await expect(page.getByRole("button", { name: "Stop" })).toBeVisible();
    await expect(page.locator("body[data-hydrated]")).toBeAttached();
    const messages = page.locator(".messages");
    expect(await messages.evaluate((e) => e.scrollHeight - e.clientHeight)).toBeGreaterThan(200);
    await messages.evaluate((e) => e.scrollTo(0, 0));
    // The page was loaded again at the end (Retry is the server's), still at the top, with the way back down.
    await expect(reply).toContainText("and so it continued.", { timeout: 20_000 });
    await expect(page.getByRole("button", { name: "Retry" })).toBeVisible();
    await expect(page.getByRole("button", { name: "Scroll to the newest" })).toBeVisible();
    expect(await messages.evaluate((e) => e.scrollTop)).toBeLessThan(50);
  });
});

test.describe("on a phone", () => {
  test.use({ viewport: { width: 390, height: 844 } });

  test("nothing scrolls sideways, and the conversations fold behind a button", async ({ page }) => {
    test.setTimeout(60_000);
    await openHydrated(page);
    const box = page.getByRole("textbox", { name: "Message" });
    // A long unbroken word and a wide code request: still no sideways scroll.
    await box.fill(`A long word: ${"x".repeat(300)} ${Date.now()}`);
    await box.press("Enter");
    await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
    await replyEnded(page, 60_000);
    const sideways = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(sideways).toBeLessThanOrEqual(0);
    // The composer is in view at the bottom.
    await expect(box).toBeInViewport();

    const menu = page.getByRole("button", { name: "Conversations" });
    const list = page.locator("#conversation-list");
    await expect(menu).toHaveAttribute("aria-expanded", "false");
    await expect(list).toBeHidden();
    await menu.click();
    await expect(menu).toHaveAttribute("aria-expanded", "true");
    // (Its title may be the model's by now: the link to the page shown.)
    await expect(list.locator('a[aria-current="page"]')).toBeVisible();
    // Opening a conversation folds the list again.
    await page.getByRole("link", { name: "New chat" }).click();
    await expect(page).toHaveURL(/\/$/);
    await expect(list).toBeHidden();
  });
});

test.describe("with JavaScript disabled", () => {
  test.use({ javaScriptEnabled: false });

  test("an example question starts a chat as a plain form post", async ({ page }) => {
    await page.goto("/");
    const examples = page.getByRole("list", { name: "Examples" }).getByRole("button");
    const question = (await examples.nth(1).innerText()).trim();
    await examples.nth(1).click();
    await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
    await expect(page.getByRole("article", { name: "You" })).toContainText(question);
  });

  test("the page reloads itself while the reply is written, and stops when it is done", async ({ page }) => {
    test.setTimeout(90_000);
    await page.goto("/");
    await page.getByRole("textbox", { name: "Message" }).fill("Name three colours of the rainbow.");
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
    // No reload by the test: the page's own refresh brings the words, then the end.
    const reply = page.getByRole("article", { name: "Assistant" });
    await expect(reply.locator(".content")).not.toBeEmpty({ timeout: 30_000 });
    await expect(page.getByRole("button", { name: "Send" })).toBeVisible({ timeout: 60_000 });
    // Once written, the page no longer asks to be reloaded.
    await expect(page.locator("meta[http-equiv=refresh]")).toHaveCount(0);
  });
});

import { test, expect, type Page } from "@playwright/test";
import { ask, conversations, openHydrated, STORY, stopRepliesAfterEach, replyEnded } from "./helpers";

stopRepliesAfterEach();

async function replyText(reply: ReturnType<Page["locator"]>) {
  return (await reply.locator(".content").innerText()).trim();
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
  test.setTimeout(90_000);
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

  // A second message in the same conversation, once the reply is written, lands below the first.
  await expect(page.getByRole("article", { name: "Assistant" })).toHaveCount(1);
  await replyEnded(page, 60_000);
  await box.fill("And where do they end?");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.getByRole("article", { name: "You" })).toHaveCount(2);
  await expect(page.getByRole("article", { name: "You" }).nth(1)).toContainText("And where do they end?");

  await page.reload();
  await expect(page.getByRole("article", { name: "You" })).toHaveCount(2);
  await expect(page.getByRole("article", { name: "You" }).first()).toContainText(text);
  // (By now the model may have titled it: the link marked as the page shown.)
  await expect(conversations(page).locator('a[aria-current="page"]')).toBeVisible();
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
    const stamp = `${Date.now()}`;
    const text = `No script ${stamp}: write a long story about a lighthouse keeper.`;
    await page.getByRole("textbox", { name: "Message" }).fill(text);
    await page.getByRole("button", { name: "Send" }).click();

    await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
    await expect(page.getByRole("article", { name: "You" })).toContainText(text);
    // The reply is being written; Stop is a plain form post too, answered once it has stopped.
    await page.getByRole("button", { name: "Stop" }).click();
    // (Leptos sends a form post back to its page with an empty query.)
    await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}\??$/);
    await expect(page.getByRole("button", { name: "Send" })).toBeVisible();
    await expect(page.getByRole("article", { name: "Assistant" }).getByText("Stopped.")).toBeVisible();
    await page.reload();
    await expect(page.getByRole("article", { name: "You" })).toContainText(text);
    // Titles are the first words of the message, cut at about 60 characters.
    await expect(conversations(page).getByRole("link", { name: `No script ${stamp}` })).toBeVisible();
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

// Replies from earlier tests may still hold the model (it serves one reply at a
// time, in order), so the streaming tests allow for a queue.
test("the reply streams in: it grows through several lengths, then Send returns", async ({ page }) => {
  test.setTimeout(120_000);
  const reply = await ask(page, STORY);
  const stop = page.getByRole("button", { name: "Stop" });
  await expect(stop).toBeVisible();
  await expect(page.getByRole("button", { name: "Send" })).toHaveCount(0);
  await expect(reply).toHaveAttribute("aria-busy", "true");

  const lengths: number[] = [];
  const deadline = Date.now() + 100_000;
  while ((await stop.isVisible()) && Date.now() < deadline) {
    const n = (await replyText(reply)).length;
    if (n > 0 && n !== lengths[lengths.length - 1]) lengths.push(n);
    await page.waitForTimeout(50);
  }
  await replyEnded(page);
  await expect(reply).toHaveAttribute("aria-busy", "false");
  // Seen at several lengths on the way, each longer than the one before.
  expect(lengths.length).toBeGreaterThanOrEqual(4);
  for (let i = 1; i < lengths.length; i++) expect(lengths[i]).toBeGreaterThan(lengths[i - 1]);

  // What was streamed is what was stored.
  const streamed = await replyText(reply);
  await page.reload();
  await expect(page.getByRole("article", { name: "Assistant" })).toHaveCount(1);
  expect(await replyText(page.getByRole("article", { name: "Assistant" }))).toBe(streamed);
});

test("reloading mid-reply, or opening a second tab, shows the text so far and keeps streaming", async ({
  page,
  context,
}) => {
  test.setTimeout(120_000);
  const reply = await ask(page, STORY);
  await expect.poll(async () => (await replyText(reply)).length, { timeout: 60_000 }).toBeGreaterThan(40);
  const before = await replyText(reply);

  await page.reload();
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
  const again = page.getByRole("article", { name: "Assistant" });
  // The reply so far is there at once, and it goes on growing.
  expect((await replyText(again)).startsWith(before)).toBe(true);
  await expect(page.getByRole("button", { name: "Stop" })).toBeVisible();
  const atReload = (await replyText(again)).length;
  await expect.poll(async () => (await replyText(again)).length).toBeGreaterThan(atReload);

  // The same conversation in a second tab follows the same reply.
  const second = await context.newPage();
  await second.goto(page.url());
  await expect(second.locator("body[data-hydrated]")).toBeAttached();
  const there = second.getByRole("article", { name: "Assistant" });
  expect((await replyText(there)).startsWith(before)).toBe(true);

  await replyEnded(page, 60_000);
  await expect(second.getByRole("button", { name: "Send" })).toBeVisible({ timeout: 10_000 });
  const final = await replyText(again);
  expect(final.startsWith(before)).toBe(true);
  expect(await replyText(there)).toBe(final);
});

test("Stop ends the reply at once and keeps its text", async ({ page }) => {
  test.setTimeout(120_000);
  const reply = await ask(page, STORY);
  await expect.poll(async () => (await replyText(reply)).length, { timeout: 60_000 }).toBeGreaterThan(20);
  await page.getByRole("button", { name: "Stop" }).click();
  await replyEnded(page, 3_000);
  await expect(reply.getByText("Stopped.")).toBeVisible();
  const kept = await replyText(reply);
  await page.waitForTimeout(1_000);
  expect(await replyText(reply)).toBe(kept);

  await page.reload();
  const stored = page.getByRole("article", { name: "Assistant" });
  expect(await replyText(stored)).toBe(kept);
  await expect(stored.getByText("Stopped.")).toBeVisible();
  await expect(stored.getByRole("button", { name: "Retry" })).toBeVisible();
});

test("markup in a message is shown as text and runs nothing", async ({ page }) => {
  test.setTimeout(120_000);
  let dialogs = 0;
  page.on("dialog", async (d) => {
    dialogs++;
    await d.dismiss();
  });
  const attack = `<img src=x onerror="window.__pwned=1;alert(1)"> <script>window.__pwned=2;alert(2)</script> **bold?**`;
  const reply = await ask(page, attack);
  const mine = page.getByRole("article", { name: "You" });
  await expect(mine).toContainText(attack);
  await replyEnded(page, 100_000);
  // Nothing in either message became an element, and nothing ran.
  await expect(page.locator(".messages img, .messages script")).toHaveCount(0);
  expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  expect(dialogs).toBe(0);
  await expect(reply).toBeVisible();
  await page.reload();
  await expect(page.getByRole("article", { name: "You" })).toContainText(attack);
  await expect(page.locator(".messages img, .messages script")).toHaveCount(0);
  expect(dialogs).toBe(0);
});

test("switch a conversation to a remote model: its reply streams and names the model", async ({ page }) => {
  test.setTimeout(180_000);
  const first = await ask(page, "Name three colors.");
  await replyEnded(page, 120_000);
  await expect(first.locator(".model-tag")).toHaveText("SmolLM2 135M (local)");
  const picker = page.getByLabel("Model");
  await expect(picker).toHaveValue("smollm2");

  // Choosing another model switches the conversation at once (the form is
  // posted to the switch, and the page comes back): a reload shows it chosen.
  const switched = page.waitForResponse((r) => /\/api\/set_conversation_model\d*$/.test(r.url()));
  await picker.selectOption("self-openai");
  await switched;
  await expect(async () => {
    await page.reload();
    await expect(page.locator("body[data-hydrated]")).toBeAttached();
    await expect(page.getByLabel("Model")).toHaveValue("self-openai", { timeout: 1_000 });
  }).toPass({ timeout: 15_000 });

  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("And three animals?");
  await box.press("Enter");
  const second = page.getByRole("article", { name: "Assistant" }).nth(1);
  await expect(second.locator(".model-tag")).toHaveText("SmolLM2 via OpenAI API");
  await expect(page.getByRole("button", { name: "Stop" })).toBeVisible();
  await replyEnded(page, 120_000);
  const written = await replyText(second);
  expect(written.length).toBeGreaterThan(0);
  await expect(second.locator(".status.failed")).toHaveCount(0);

  // After a reload both replies keep their model's name and the text.
  await page.reload();
  const replies = page.getByRole("article", { name: "Assistant" });
  await expect(replies.nth(0).locator(".model-tag")).toHaveText("SmolLM2 135M (local)");
  await expect(replies.nth(1).locator(".model-tag")).toHaveText("SmolLM2 via OpenAI API");
  expect(await replyText(replies.nth(1))).toBe(written);
});

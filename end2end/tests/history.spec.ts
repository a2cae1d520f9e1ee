import { test, expect } from "@playwright/test";
import { askScripted, conversations, openHydrated, seriousProblems, stopRepliesAfterEach, replyEnded } from "./helpers";

// Issue 14 in the browser: search (Ctrl+K, every branch, opened at the
// match), rename, pin and delete, and share links seen by someone else, with
// and without JavaScript.

stopRepliesAfterEach();

// Words no other test writes, so the shared database cannot match them by chance.
const unique = (stem: string) => `${stem}${Date.now().toString(36)}`;

test("search: Ctrl+K, a word of an earlier version found and opened at its message; typed syntax is just words", async ({ page }) => {
  test.setTimeout(60_000);
  const word = unique("zanzibar");
  const reply = await askScripted(page, `say: The keeper polished the ${word} lens`);
  await expect(reply).toContainText(`polished the ${word} lens`);
  await replyEnded(page);
  // An edit makes version 2 of 2, which no longer says the word.
  const question = page.getByRole("article", { name: "You" }).last();
  await question.getByText("Edit", { exact: true }).click();
  await question.getByRole("textbox", { name: "Edited message" }).fill("say: Something else entirely");
  await question.getByRole("button", { name: "Send edit" }).click();
  await expect(page.getByRole("article", { name: "Assistant" }).last()).toContainText("Something else entirely");
  await replyEnded(page);
  const conversationUrl = page.url();

  await page.keyboard.press("Control+k");
  const box = page.getByRole("searchbox", { name: "Search conversations" });
  await expect(box).toBeFocused();
  await box.fill(word);
  await box.press("Enter");
  await expect(page).toHaveURL(new RegExp(`/search\\?q=${word}$`));
  const results = page.getByRole("list", { name: "Results" });
  await expect(results.getByRole("listitem")).toHaveCount(1);
  await expect(results.locator("mark")).toHaveText(word);
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    expect(await seriousProblems(page), `search page, ${colorScheme}`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: "light" });

  // Opened at the match: the first version, with its reply, is shown.
  await results.getByRole("link").click();
  await expect(page).toHaveURL(new RegExp(`^${conversationUrl}\\?at=[0-9a-f]{32}#m-[0-9a-f]{32}$`));
  await expect(page.getByRole("article", { name: "Assistant" }).last()).toContainText(`${word} lens`);
  await expect(page.getByRole("article", { name: "You" }).last().getByRole("navigation", { name: "Versions" })).toContainText("1 / 2");
  // A switch of versions from there comes back to the conversation's plain
  // address, showing the version chosen (not the searched one again).
  await page.getByRole("article", { name: "You" }).last().getByRole("button", { name: "Next version" }).click();
  await expect(page).toHaveURL(conversationUrl);
  await expect(page.getByRole("article", { name: "You" }).last().getByRole("navigation", { name: "Versions" })).toContainText("2 / 2");
  await expect(page.getByRole("article", { name: "Assistant" }).last()).toContainText("Something else entirely");

  // FTS syntax typed by a person is searched as words, never an error page.
  for (const q of ['"', "*", "NEAR(", "AND", `${word} OR`, '"unclosed']) {
    const answer = await page.goto(`/search?q=${encodeURIComponent(q)}`);
    expect(answer?.status(), q).toBe(200);
    await expect(page.getByRole("heading", { name: "Search", level: 1 })).toBeVisible();
    await expect(page.locator(".error")).toHaveCount(0);
  }
  await page.goto(`/search?q=${encodeURIComponent(`${word.slice(0, 6)}*`)}`);
  await expect(page.getByRole("list", { name: "Results" }).getByRole("listitem")).not.toHaveCount(0);
});

test("rename, pin and delete a conversation; search follows the new title", async ({ page }) => {
  const title = unique("Renamed");
  await askScripted(page, "say: Pin me");
  await replyEnded(page);
  const url = page.url();
  const path = new URL(url).pathname;

  await page.getByText("Conversation settings").click();
  await page.locator(".conversation-settings").getByLabel("Title").fill(title);
  await page.getByRole("button", { name: "Rename" }).click();
  await expect(conversations(page).getByRole("link", { name: title })).toBeVisible();

  await page.getByRole("button", { name: "Pin", exact: true }).click();
  const pinned = conversations(page).locator("section", { has: page.getByRole("heading", { name: "Pinned" }) });
  await expect(pinned.getByRole("link", { name: title })).toBeVisible();
  await expect(page.getByRole("button", { name: "Unpin" })).toHaveAttribute("aria-pressed", "true");
  await page.reload();
  await expect(pinned.getByRole("link", { name: title })).toBeVisible();
  await openHydrated(page, path);
  await page.getByRole("button", { name: "Unpin" }).click();
  await expect(pinned).toHaveCount(0);

  await page.goto(`/search?q=${title}`);
  await expect(page.getByRole("list", { name: "Results" }).getByRole("link", { name: title })).toBeVisible();

  await openHydrated(page, path);
  await page.getByText("Delete", { exact: true }).click();
  await page.getByRole("button", { name: "Delete conversation" }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(conversations(page).getByRole("link", { name: title })).toHaveCount(0);
  const gone = await page.goto(url);
  expect(gone?.status()).toBe(404);
  await page.goto(`/search?q=${title}`);
  await expect(page.getByText(`No conversation matches “${title}”.`)).toBeVisible();
});

test("share: someone else opens the link with and without JavaScript, continues in their own chat; revoked, it is a 404", async ({ page, browser }) => {
  test.setTimeout(60_000);
  const word = unique("recipe");
  await askScripted(page, `say: The secret ${word} needs saffron`);
  await replyEnded(page);
  const ownerPath = new URL(page.url()).pathname;
  await page.getByText("Share", { exact: true }).click();
  await page.getByLabel("Link expires after").selectOption({ label: "7 days" });
  // A double click posts the form once: one link.
  await page.getByRole("button", { name: "Create link" }).dblclick();
  const link = page.getByRole("list", { name: "Links to this conversation" }).getByRole("link");
  // The panel is open on the page the form comes back to, with the new link.
  await expect(link).toBeVisible();
  await expect(link).toHaveCount(1);
  const href = await link.getAttribute("href");
  expect(href).toMatch(/^\/s\/[0-9a-f]{32}$/);

  for (const javaScriptEnabled of [true, false]) {
    const other = await browser.newContext({ javaScriptEnabled });
    const viewer = await other.newPage();
    const answer = await viewer.goto(href!);
    expect(answer?.status()).toBe(200);
    expect(answer?.headers()["x-robots-tag"]).toBe("noindex");
    await expect(viewer.locator('meta[name="robots"]')).toHaveAttribute("content", "noindex");
    await expect(viewer.getByRole("article", { name: "Assistant" })).toContainText(`secret ${word} needs saffron`);
    // Nobody's sidebar, and nothing to write with.
    await expect(viewer.getByRole("navigation", { name: "Conversations" })).toHaveCount(0);
    await expect(viewer.getByRole("textbox", { name: "Message" })).toHaveCount(0);
    if (javaScriptEnabled) {
      expect(await seriousProblems(viewer), "shared page").toEqual([]);
    }
    await viewer.getByRole("button", { name: "Continue in my own chat" }).click();
    await expect(viewer).toHaveURL(/\/c\/[0-9a-f]{32}$/);
    await expect(viewer.getByRole("article", { name: "Assistant" })).toContainText(`secret ${word} needs saffron`);
    // The copy is the viewer's alone: the owner cannot open it.
    const copyPath = new URL(viewer.url()).pathname;
    expect(copyPath).not.toBe(ownerPath);
    const forOwner = await page.request.get(copyPath);
    expect(forOwner.status()).toBe(404);
    await other.close();
  }

  await openHydrated(page, ownerPath);
  await page.getByText("Share", { exact: true }).click();
  await page.getByRole("button", { name: "Revoke" }).click();
  await expect(page.getByRole("list", { name: "Links to this conversation" })).toHaveCount(0);
  const stranger = await browser.newContext();
  const revoked = await (await stranger.newPage()).goto(href!);
  expect(revoked?.status()).toBe(404);
  await stranger.close();
});

test("the Settings page lists every share link and deletes all conversations after asking", async ({ page }) => {
  const title = unique("Everything");
  await askScripted(page, "say: Soon gone");
  await replyEnded(page);
  const path = new URL(page.url()).pathname;
  await page.getByText("Conversation settings").click();
  await page.locator(".conversation-settings").getByLabel("Title").fill(title);
  await page.getByRole("button", { name: "Rename" }).click();
  await expect(conversations(page).getByRole("link", { name: title })).toBeVisible();
  await page.getByText("Share", { exact: true }).click();
  await page.getByRole("button", { name: "Create link" }).click();
  const href = await page.getByRole("list", { name: "Links to this conversation" }).getByRole("link").getAttribute("href");

  await openHydrated(page, "/settings");
  const links = page.getByRole("list", { name: "Your share links" });
  await expect(links.getByRole("link", { name: title })).toHaveAttribute("href", href!);
  expect(await seriousProblems(page), "settings page").toEqual([]);
  await page.getByText("Delete all conversations…").click();
  await page.getByRole("button", { name: "Delete all conversations", exact: true }).click();
  await expect(page.getByRole("status").filter({ hasText: /Deleted \d+ conversations?\./ })).toBeVisible();
  await expect(conversations(page).getByText("No conversations yet.")).toBeVisible();
  expect((await page.request.get(path)).status()).toBe(404);
  expect((await page.request.get(href!)).status()).toBe(404);
});

test("the sidebar shows 50 conversations, then more: a link without JavaScript, scrolling with it", async ({ page, browser }) => {
  // Sixty conversations at once, through the import (a ChatGPT-shaped file).
  const now = Date.now() / 1000;
  const node = (id: string, parent: string | null, children: string[], role: string, text: string) => ({
    id, parent, children,
    message: { id, author: { role }, create_time: now, content: { content_type: "text", parts: [text] } },
  });
  const file = Array.from({ length: 60 }, (_, i) => ({
    id: `paged-${i}`,
    title: `Paged ${i}`,
    create_time: now - 3600 + i,
    update_time: now - 3600 + i,
    current_node: "a",
    mapping: {
      root: { id: "root", message: null, parent: null, children: ["u"] },
      u: node("u", "root", ["a"], "user", `Question ${i}`),
      a: node("a", "u", [], "assistant", `Answer ${i}`),
    },
  }));
  const imported = await page.request.post("/import", {
    data: JSON.stringify(file),
    headers: { "Content-Type": "application/json", Accept: "application/json" },
  });
  expect(imported.status(), await imported.text()).toBe(200);

  await openHydrated(page);
  const links = page.locator('#conversation-list a[href^="/c/"]');
  await expect(links).toHaveCount(50);
  await expect(links.first()).toHaveText("Paged 59");
  await conversations(page).evaluate((nav) => nav.scrollTo(0, nav.scrollHeight));
  await expect(links).toHaveCount(60);
  await expect(links.last()).toHaveText("Paged 0");
  await expect(page.getByRole("link", { name: "More conversations" })).toHaveCount(0);

  const noScript = await browser.newContext({ javaScriptEnabled: false, storageState: await page.context().storageState() });
  const plain = await noScript.newPage();
  await plain.goto("/");
  const plainLinks = plain.locator('#conversation-list a[href^="/c/"]');
  await expect(plainLinks).toHaveCount(50);
  await plain.getByRole("link", { name: "More conversations" }).click();
  await expect(plain).toHaveURL(/\/\?shown=100$/);
  await expect(plainLinks).toHaveCount(60);
  await noScript.close();
});

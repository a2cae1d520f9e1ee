import { test, expect } from "@playwright/test";
import {
  askScripted,
  conversations,
  openHydrated,
  scriptedChats,
  seriousProblems,
  replyEnded,
  sendAndWait,
  stopRepliesAfterEach,
} from "./helpers";

// Issue 13: edit and branches, Continue, settings, titles, rendering — with
// the scripted model, whose words the tests choose and which tells what Wick
// sent it.

stopRepliesAfterEach();

const answer = (q: string) => `Scripted answer to: ${q}`;

test("an edit makes a branch: ‹ 2 / 2 ›, switch back, a reload keeps it, and the model reads only it", async ({ page, request }) => {
  test.setTimeout(60_000);
  await askScripted(page, "First question");
  await expect(page.getByRole("article", { name: "Assistant" }).last()).toContainText(answer("First question"));
  await sendAndWait(page, "Second question");

  const second = page.getByRole("article", { name: "You" }).last();
  await second.getByText("Edit", { exact: true }).click();
  const editBox = second.getByRole("textbox", { name: "Edited message" });
  await expect(editBox).toHaveValue("Second question");
  await editBox.fill("Second question, fixed");
  await second.getByRole("button", { name: "Send edit" }).click();

  const assistant = page.getByRole("article", { name: "Assistant" });
  await expect(assistant.last()).toContainText(answer("Second question, fixed"));
  const edited = page.getByRole("article", { name: "You" }).last();
  await expect(edited).toContainText("Second question, fixed");
  await expect(edited.getByRole("navigation", { name: "Versions" })).toContainText("2 / 2");

  // Back to the first version: its own reply comes back with it.
  await edited.getByRole("button", { name: "Previous version" }).click();
  await expect(page.getByRole("article", { name: "You" }).last()).toContainText("Second question");
  await expect(page.getByRole("article", { name: "You" }).last()).not.toContainText("fixed");
  await expect(assistant.last()).toContainText(answer("Second question"));
  await expect(page.getByRole("article", { name: "You" }).last().getByRole("navigation", { name: "Versions" })).toContainText("1 / 2");

  // The branch shown is stored: a reload (or another device) shows it too.
  await page.reload();
  await expect(page.getByRole("article", { name: "You" }).last()).toContainText("1 / 2");
  await expect(page.locator("body[data-hydrated]")).toBeAttached();

  // The next reply is written from the branch shown, and only from it.
  await sendAndWait(page, "Third question");
  const last = (await scriptedChats(request)).at(-1);
  expect(last.messages.map((m: any) => m.content)).toEqual([
    "First question",
    answer("First question"),
    "Second question",
    answer("Second question"),
    "Third question",
  ]);
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("editing and switching versions work as plain forms", async ({ page }) => {
    test.setTimeout(60_000);
    await page.goto("/");
    await page.getByLabel("Model").selectOption({ label: "Scripted model" });
    await page.getByRole("textbox", { name: "Message" }).fill("No script here");
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
    // The page refreshes itself until the reply is written.
    await expect(page.getByRole("article", { name: "Assistant" })).toContainText(answer("No script here"), { timeout: 20_000 });

    const question = page.getByRole("article", { name: "You" });
    await question.getByText("Edit", { exact: true }).click();
    await question.getByRole("textbox", { name: "Edited message" }).fill("No script, edited");
    await question.getByRole("button", { name: "Send edit" }).click();
    await expect(page.getByRole("article", { name: "Assistant" })).toContainText(answer("No script, edited"), { timeout: 20_000 });
    await expect(page.getByRole("article", { name: "You" }).getByRole("navigation", { name: "Versions" })).toContainText("2 / 2");

    await page.getByRole("button", { name: "Previous version" }).click();
    await expect(page.getByRole("article", { name: "You" })).toContainText("No script here");
    await expect(page.getByRole("article", { name: "Assistant" })).toContainText(answer("No script here"));

    // An empty edit is refused with a sentence, and changes nothing.
    const again = page.getByRole("article", { name: "You" });
    await again.getByText("Edit", { exact: true }).click();
    await again.getByRole("textbox", { name: "Edited message" }).fill("   ");
    await again.getByRole("button", { name: "Send edit" }).click();
    await expect(page.getByText("Type a message before sending.").first()).toBeAttached();
    await expect(page.getByRole("article", { name: "You" })).toContainText("1 / 2");
  });
});

test("Continue extends a reply cut at the length limit, in place", async ({ page, request }) => {
  const reply = await askScripted(page, "long: 5");
  await expect(reply).toContainText("word0 word1 word2 word3 word4");
  await expect(reply).toContainText("Stopped at the length limit.");
  // Clicked again only if the first click was lost (the reply re-rendered
  // under it as its end arrived): a continued reply has no Continue button
  // until it ends cut short again, so it is never continued twice.
  await expect(async () => {
    const more = reply.getByRole("button", { name: "Continue" });
    if (await more.isVisible()) await more.click({ timeout: 1_000 });
    await expect(reply).toContainText("word4 and so it continued.", { timeout: 3_000 });
  }).toPass({ timeout: 20_000 });
  await expect(page.getByRole("article", { name: "Assistant" })).toHaveCount(1);
  await expect(reply).not.toContainText("Stopped at the length limit.");
  await expect(reply.getByRole("button", { name: "Continue" })).toHaveCount(0);

  const last = (await scriptedChats(request)).at(-1);
  expect(last.continue_final_message).toBe(true);
  expect(last.messages.at(-1)).toEqual({ role: "assistant", content: "word0 word1 word2 word3 word4" });
  // A reload shows the one, longer reply.
  await page.reload();
  await expect(page.getByRole("article", { name: "Assistant" })).toHaveCount(1);
  await expect(page.getByRole("article", { name: "Assistant" })).toContainText("word4 and so it continued.");
});

test("Continue streams into a reply first read while it still had all its words", async ({ page }) => {
  // The page is read (reloaded) while the reply holds all its words but has
  // not ended; when Continue answers, the continuation has not written a word
  // yet. Read at those two moments the reply looks the same (generating, the
  // same text), yet it is a new stream the page must follow.
  const reply = await askScripted(page, "held: 5");
  await expect(reply).toContainText("word4");
  await page.reload();
  await expect(reply).toContainText("Stopped at the length limit.", { timeout: 10_000 });
  await reply.getByRole("button", { name: "Continue" }).click();
  await expect(reply).toContainText("word4 and so it continued.", { timeout: 10_000 });
  await expect(reply).not.toContainText("Stopped at the length limit.");
});

test("settings in the panel reach the model from the next reply; out-of-bounds values are named", async ({ page, request }) => {
  await askScripted(page, "Settings test");
  await page.getByText("Conversation settings").click();
  const panel = page.locator(".conversation-settings");
  await panel.getByLabel("Temperature").fill("5");
  await panel.getByRole("button", { name: "Save settings" }).click();
  await expect(panel.getByRole("alert").filter({ hasText: "temperature must be a number from 0 to 2 (got 5)" })).toBeVisible();

  await panel.getByLabel("System prompt").fill("You are terse.");
  await panel.getByLabel("Temperature").fill("0.2");
  await panel.getByLabel("Max new tokens").fill("64");
  await panel.getByRole("button", { name: "Save settings" }).click();
  await expect(panel.getByRole("status").filter({ hasText: "Saved" })).toBeVisible();

  await sendAndWait(page, "After settings");
  const last = (await scriptedChats(request)).at(-1);
  expect(last.messages[0]).toEqual({ role: "system", content: "You are terse." });
  expect(last.temperature).toBe(0.2);
  expect(last.max_tokens).toBe(64);
  // Stored with the conversation.
  await page.reload();
  await page.getByText("Conversation settings").click();
  await expect(page.locator(".conversation-settings").getByLabel("System prompt")).toHaveValue("You are terse.");
});

test("the model's title replaces the first words in the sidebar without a reload", async ({ page }) => {
  await askScripted(page, "Sourdough starter keeps dying, what now?");
  await expect(conversations(page).getByRole("link", { name: "Sourdough notes" })).toBeVisible({ timeout: 20_000 });
  await expect(page).toHaveTitle("Sourdough notes · Wick");
});

test("a title typed before the model's is kept", async ({ page }) => {
  test.setTimeout(45_000);
  // 15 words 0.3 s apart: time to rename while the first reply is written.
  const reply = await askScripted(page, "slow: 15");
  await page.getByText("Conversation settings").click();
  const title = page.locator(".conversation-settings").getByLabel("Title");
  await title.fill("My own title");
  await page.getByRole("button", { name: "Rename" }).click();
  await expect(conversations(page).getByRole("link", { name: "My own title" })).toBeVisible();
  await expect(reply).toContainText("word14", { timeout: 20_000 });
  await replyEnded(page);
  // Well after the reply's end, the title is still the typed one.
  await page.waitForTimeout(1_500);
  await page.reload();
  await expect(conversations(page).getByRole("link", { name: "My own title" })).toBeVisible();
  await expect(conversations(page).getByRole("link", { name: "Slow notes" })).toHaveCount(0);
});

test("text typed while a reply is written is still in the box when the reply ends, and gone once sent", async ({ page }) => {
  test.setTimeout(45_000);
  // 8 words 0.3 s apart: time to start the next question.
  const reply = await askScripted(page, "slow: 8");
  await expect(page.getByRole("button", { name: "Stop" })).toBeVisible();
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("A next question, half written");
  await expect(reply).toContainText("word7", { timeout: 20_000 });
  // The page is loaded again at the reply's end: the draft comes back with it.
  await replyEnded(page);
  await expect(page.getByRole("article", { name: "Assistant" }).last().getByRole("button", { name: "Retry" })).toBeVisible();
  await expect(box).toHaveValue("A next question, half written");

  await box.press("Enter");
  await expect(page.getByRole("article", { name: "You" }).last()).toContainText("A next question, half written");
  await expect(box).toHaveValue("");
  // Once that reply has ended too (the page is loaded again then), a reload
  // still shows an empty box.
  await expect(page.getByRole("article", { name: "Assistant" }).last().getByRole("button", { name: "Retry" })).toBeVisible();
  await replyEnded(page);
  await page.reload();
  await expect(page.getByRole("textbox", { name: "Message" })).toHaveValue("");
});

test("a reply that ends while a panel is being filled in leaves the page as it is; Stop becomes Send", async ({ page }) => {
  test.setTimeout(45_000);
  const reply = await askScripted(page, "slow: 8");
  await page.getByText("Conversation settings").click();
  const prompt = page.locator(".conversation-settings").getByLabel("System prompt");
  await prompt.fill("Half a system prompt");
  await expect(reply).toContainText("word7", { timeout: 20_000 });
  await replyEnded(page);
  // Not loaded again: the panel is open with what was typed, and still focused.
  await expect(prompt).toHaveValue("Half a system prompt");
  await expect(prompt).toBeFocused();
  // The composer sends again.
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("say: Next one");
  await box.press("Enter");
  await expect(page.getByRole("article", { name: "Assistant" }).last()).toContainText("Next one");
});

test("a refused edit comes back with the text typed and its box open", async ({ page }) => {
  await askScripted(page, "say: First");
  await replyEnded(page);
  const question = page.getByRole("article", { name: "You" }).last();
  await question.getByText("Edit", { exact: true }).click();
  await question.getByRole("textbox", { name: "Edited message" }).fill("   ");
  await question.getByRole("button", { name: "Send edit" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "The edit was not sent" })).toBeVisible();
  const box = page.getByRole("article", { name: "You" }).last().getByRole("textbox", { name: "Edited message" });
  await expect(box).toBeVisible();
  await expect(box).toHaveValue("   ");
  // The refusal was said once: it is no longer in the address.
  await expect(page).not.toHaveURL(/__err/);
  await page.reload();
  await expect(page.getByRole("alert").filter({ hasText: "The edit was not sent" })).toHaveCount(0);
});

test("reasoning is in a collapsed section apart from the answer", async ({ page, request }) => {
  const reply = await askScripted(page, "say: <think>Pondering the question deeply.</think>The answer is 42.");
  await expect(reply.locator(".content")).toContainText("The answer is 42.");
  await expect(reply.locator(".content")).not.toContainText("Pondering");
  const reasoning = reply.locator("details.reasoning");
  await expect(reasoning.locator("summary")).toHaveText("Reasoning");
  await expect(reasoning).not.toHaveAttribute("open", "");
  await expect(reasoning.getByText("Pondering the question deeply.")).toBeHidden();
  await reasoning.locator("summary").click();
  await expect(reasoning.getByText("Pondering the question deeply.")).toBeVisible();
  // Not sent back on the next turn.
  await sendAndWait(page, "Next");
  const last = (await scriptedChats(request)).at(-1);
  expect(last.messages[1]).toEqual({ role: "assistant", content: "The answer is 42." });
});

test("personal defaults on the Settings page: the model and its prompt for new conversations", async ({ page, request }) => {
  await openHydrated(page, "/settings");
  await expect(page.getByRole("heading", { name: "Settings", level: 1 })).toBeVisible();
  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    expect(await seriousProblems(page), `settings page, ${colorScheme}`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.getByLabel("Model for new conversations").selectOption({ label: "Scripted model" });
  await page.getByLabel("System prompt for Scripted model").fill("Always answer in French.");
  await page.getByRole("button", { name: "Save" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Saved" })).toBeVisible();

  await openHydrated(page);
  await expect(page.getByLabel("Model")).toHaveValue("scripted");
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("Bonjour?");
  await box.press("Enter");
  await expect(page.getByRole("article", { name: "Assistant" })).toContainText(answer("Bonjour?"));
  const last = (await scriptedChats(request)).at(-1);
  expect(last.messages[0]).toEqual({ role: "system", content: "Always answer in French." });
});

const LONG_MARKDOWN = [
  "say: # Notes",
  "",
  "Some **bold**, ~~struck~~ and `inline` text, and a [link](https://example.com).",
  "",
  "```python",
  "def greet(name):",
  "    # say hello",
  "    return f\"Hello, {name}!\"",
  "```",
  "",
  "| a | b |",
  "|---|---|",
  "| 1 | 2 |",
  "",
  "- [x] done",
  "- [ ] to do",
  "",
  "Euler: $e^{i\\pi} + 1 = 0$ and",
  "",
  "$$\\frac{a}{b} = \\sqrt{x^2 + 1}$$",
].join("\n");

test("a long markdown reply: highlighted code copied exactly, math as MathML, tables and task lists, and axe finds nothing serious", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  const reply = await askScripted(page, LONG_MARKDOWN);
  await expect(reply.locator("table")).toBeVisible();
  await expect(reply.locator("input[type=checkbox]")).toHaveCount(2);
  await expect(reply.locator("del")).toHaveText("struck");

  // Code: highlighted, and its Copy button puts the exact code on the clipboard.
  const block = reply.locator(".code-block");
  await expect(block.locator(".code-lang")).toHaveText("python");
  await expect(block.locator(".hl-keyword").first()).toHaveText("def");
  await block.getByRole("button", { name: "Copy" }).click();
  await expect(block.getByRole("button", { name: "Copied" })).toBeVisible();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied).toBe('def greet(name):\n    # say hello\n    return f"Hello, {name}!"\n');

  // Math: MathML the browser draws, inline and as a block.
  const inline = reply.locator("math:not([display=block])");
  await expect(inline).toHaveCount(1);
  await expect(inline.locator("mi").first()).toHaveText("e");
  await expect(reply.locator('math[display="block"] mfrac')).toHaveCount(1);
  await expect(reply.locator('math[display="block"] msqrt')).toHaveCount(1);

  // The whole message's Copy takes its markdown.
  await reply.locator(".copy-message").click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(LONG_MARKDOWN.slice("say: ".length));

  for (const colorScheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme });
    expect(await seriousProblems(page), `long markdown reply, ${colorScheme}`).toEqual([]);
  }
});

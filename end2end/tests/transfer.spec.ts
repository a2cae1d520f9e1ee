import { test, expect } from "@playwright/test";
import * as fs from "fs";
import * as path from "path";
import { openHydrated } from "./helpers";

// Issue 14: import a ChatGPT export through the Settings page's plain form,
// find it in the sidebar, open it, and take it away again as Markdown.

const CHATGPT = path.resolve(__dirname, "../fixtures/chatgpt_conversations.json");

test("a ChatGPT export imported on the Settings page opens from the sidebar and downloads as Markdown", async ({ page }) => {
  test.setTimeout(60_000);
  await openHydrated(page, "/settings");
  const data = page.getByRole("region", { name: "Your data" });
  await expect(data.getByRole("link", { name: "Export all (JSON)" })).toHaveAttribute("href", "/export.json");
  await data.getByLabel(/Import conversations/).setInputFiles(CHATGPT);
  await data.getByRole("button", { name: "Import", exact: true }).click();

  // Back on Settings, which says what was imported and what was left out
  // (told by the address, `?imported=2&…`, which the page then takes out of
  // it: a reload or the next form's answer does not say it again).
  await expect(page.getByRole("status").filter({ hasText: "Imported 2 conversations." })).toContainText(
    "2 parts Wick cannot show",
  );
  await expect(page).toHaveURL(/\/settings$/);
  await page.reload();
  await expect(page.getByRole("status").filter({ hasText: "Imported 2 conversations." })).toHaveCount(0);

  // The imported conversation is in the sidebar; it opens on the branch
  // ChatGPT showed (its current node).
  const link = page.locator("#conversation-list a", { hasText: "Capitals of Europe" });
  await expect(link).toBeVisible();
  await link.click();
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  const assistant = page.getByRole("article", { name: "Assistant" });
  await expect(assistant.last()).toContainText("Rome is the capital of Italy.");
  await expect(page.getByRole("article", { name: "You" }).last()).toContainText("And of Italy, as in this picture?");

  // Its Markdown export: the branch shown, each turn under its role.
  await page.getByText("Conversation settings").click();
  const downloading = page.waitForEvent("download");
  await page.getByRole("link", { name: "Export as Markdown" }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toBe("capitals-of-europe.md");
  const markdown = fs.readFileSync(await download.path(), "utf8");
  expect(markdown.startsWith("# Capitals of Europe\n")).toBe(true);
  expect(markdown).toContain("## User\n\nAnd of Italy, as in this picture?");
  expect(markdown).toContain("## Assistant\n\nRome is the capital of Italy.");
  expect(markdown).not.toContain("Madrid");
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the import form is a plain form post, and a broken file says what is wrong", async ({ page }) => {
    await page.goto("/settings");
    const data = page.getByRole("region", { name: "Your data" });
    await data.getByLabel(/Import conversations/).setInputFiles({
      name: "conversations.json",
      mimeType: "application/json",
      buffer: Buffer.from('[{"title": "Cut off", "mapping": {'),
    });
    await data.getByRole("button", { name: "Import", exact: true }).click();
    await expect(page.getByRole("alert")).toContainText("The file ends too early, at line 1");
    await page.getByRole("link", { name: "Back to Settings" }).click();

    await page.getByRole("region", { name: "Your data" }).getByLabel(/Import conversations/).setInputFiles(CHATGPT);
    await page.getByRole("region", { name: "Your data" }).getByRole("button", { name: "Import", exact: true }).click();
    await expect(page.getByRole("status").filter({ hasText: "Imported 2 conversations." })).toBeVisible();
    await expect(page.locator("#conversation-list a", { hasText: "A haiku about tea" })).toBeVisible();
  });
});

import { test, expect } from "@playwright/test";
import { ask, seriousProblems, stopRepliesAfterEach } from "./helpers";

// Issue 15, first part: a visitor creates an account and keeps their chat,
// signs out, fails once with a wrong password, and signs in again; with
// JavaScript and without (the forms are plain posts either way).

stopRepliesAfterEach();

for (const javaScriptEnabled of [true, false]) {
  test.describe(javaScriptEnabled ? "with JavaScript" : "without JavaScript", () => {
    test.use({ javaScriptEnabled });

    test("sign up keeps the visitor's chat; sign out; a wrong password is refused; sign in brings it back", async ({ page }) => {
      test.setTimeout(90_000);
      const email = `ann-${javaScriptEnabled ? "js" : "nojs"}@example.org`;
      const password = "tea kettle on the hill";
      const title = javaScriptEnabled ? "Roses for the garden" : "Tulips for the garden";
      if (javaScriptEnabled) {
        await ask(page, title);
      } else {
        await page.goto("/");
        await page.getByRole("textbox", { name: "Message" }).fill(title);
        await page.getByRole("button", { name: "Send" }).click();
        await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
      }
      // The model may retitle it: the conversation is known by its address.
      const mine = page.locator(`#conversation-list a[href="${new URL(page.url()).pathname}"]`);

      await page.goto("/settings");
      const account = page.getByRole("region", { name: "Account" });
      await expect(account).toContainText("You are not signed in");
      await account.getByRole("link", { name: "create an account" }).click();
      await expect(page.getByRole("heading", { level: 1, name: "Create an account" })).toBeVisible();
      if (javaScriptEnabled) {
        expect(await seriousProblems(page), "sign-up page").toEqual([]);
      }
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Name (optional)").fill("Ann");
      await page.getByLabel(/^Password/).fill(password);
      await page.getByRole("button", { name: "Create account" }).click();
      await expect(page).toHaveURL(/\/$/);
      await expect(mine).toBeVisible();

      await page.goto("/settings");
      await expect(account).toContainText("Signed in as Ann.");
      await account.getByRole("button", { name: "Sign out" }).click();
      await expect(page).toHaveURL(/\/$/);
      await expect(mine).toHaveCount(0);

      await page.goto("/sign-in");
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill("not my password");
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect(page.getByRole("alert")).toHaveText("That email and password do not match an account.");
      if (javaScriptEnabled) {
        expect(await seriousProblems(page), "sign-in page with its error").toEqual([]);
      }
      await page.getByLabel("Email").fill(email.toUpperCase());
      await page.getByLabel("Password").fill(password);
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect(page).toHaveURL(/\/$/);
      await expect(mine).toBeVisible();
    });
  });
}

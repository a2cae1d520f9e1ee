import { test, expect } from "@playwright/test";
import { execFileSync } from "child_process";
import * as path from "path";
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
      await account.getByRole("button", { name: "Sign out", exact: true }).click();
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

// Issue 15: an access token made on the Settings page works with the real
// `openai` client as its owner, and stops working when revoked there.
test("a token made on the Settings page works with the openai client until it is revoked", async ({ page, baseURL }) => {
  test.setTimeout(90_000);
  const password = "tea kettle on the hill";
  await page.goto("/sign-up");
  await page.getByLabel("Email").fill("tokens@example.org");
  await page.getByLabel(/^Password/).fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/$/);

  await page.goto("/settings");
  const account = page.getByRole("region", { name: "Account" });
  await account.getByLabel("Name").fill("ci script");
  await account.getByLabel("Expires").selectOption("7");
  await account.getByRole("button", { name: "Create token" }).click();
  await expect(page.getByRole("heading", { name: "Your new access token" })).toBeVisible();
  const token = await page.getByLabel(/Token/).inputValue();
  expect(token).toMatch(/^wick_/);
  expect(await seriousProblems(page), "the page showing the new token").toEqual([]);

  // The same program a person would run, with the official client.
  const root = path.resolve(__dirname, "../..");
  const python = path.join(root, ".venv-clients/bin/python");
  const program = [
    "import sys, openai",
    "client = openai.OpenAI(base_url=sys.argv[1] + '/v1', api_key=sys.argv[2], max_retries=0)",
    "try:",
    "    r = client.chat.completions.create(model='smollm2', max_tokens=4, temperature=0,",
    "        messages=[{'role': 'user', 'content': 'Say hi'}])",
    "    print('ok', r.usage.completion_tokens)",
    "except openai.AuthenticationError as e:",
    "    print('refused', e.status_code)",
  ].join("\n");
  const run = () => execFileSync(python, ["-c", program, baseURL!, token], { encoding: "utf8" }).trim();
  expect(run()).toMatch(/^ok [1-4]$/);

  await page.goto("/settings#tokens");
  const listed = account.getByRole("list", { name: "Your access tokens" }).getByRole("listitem");
  await expect(listed).toHaveCount(1);
  await expect(listed).toContainText("ci script");
  await expect(listed).toContainText("last used");
  await expect(page.locator("body")).not.toContainText(token);
  expect(await seriousProblems(page), "settings page with a token").toEqual([]);
  await listed.getByRole("button", { name: "Revoke ci script" }).click();
  await expect(page.getByRole("status").filter({ hasText: "The token is revoked" })).toBeVisible();
  await expect(account.getByText("You have no tokens.")).toBeVisible();
  expect(run()).toBe("refused 401");
});

// Issue 15: repeated wrong passwords for one email are slowed down (429 with
// Retry-After), the same for an account that does not exist.
test("after five wrong passwords for one email the next attempt has to wait", async ({ page }) => {
  const email = "locked-out@example.org";
  for (let i = 0; i < 5; i++) {
    await page.goto("/sign-in");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(`wrong guess ${i}`);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert")).toHaveText("That email and password do not match an account.");
  }
  await page.goto("/sign-in");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("wrong guess 5");
  const answer = page.waitForResponse((r) => r.url().endsWith("/auth/sign-in"));
  await page.getByRole("button", { name: "Sign in" }).click();
  const response = await answer;
  expect(response.status()).toBe(429);
  expect(Number(response.headers()["retry-after"])).toBeGreaterThanOrEqual(1);
  await expect(page.getByRole("heading", { name: "Too many attempts" })).toBeVisible();
  await expect(page.locator("body")).toContainText("Try again in");
  expect(await seriousProblems(page), "the page that says to wait").toEqual([]);
});

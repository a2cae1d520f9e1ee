import { test, expect, Browser, Page } from "@playwright/test";
import { execFileSync } from "child_process";
import * as path from "path";
import { teamPort } from "../playwright.config";
import { seriousProblems } from "./helpers";

// Issue 15: a team's Wick (WICK_AUTH=required, new accounts pending) signing
// people in through a real OpenID provider (npm's oidc-provider) and its own
// login form. Who gets in, and who is admin, is decided by the provider's
// groups and the email's domain at every sign-in.

const team = `http://127.0.0.1:${teamPort}`;
const root = path.resolve(__dirname, "../..");

/// `wick` on the team's database, as its admin would run it.
function wick(...args: string[]): string {
  return execFileSync(path.join(root, process.env.WICK_BIN ?? "target/release/wick"), args, {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, WICK_DATABASE_URL: "sqlite://end2end/.data-team/team.db" },
  });
}

function role(email: string): string | undefined {
  const line = wick("user", "list")
    .split("\n")
    .find((l) => l.includes(email));
  return line?.split("\t").find((field) => ["admin", "user", "pending"].includes(field));
}

/// Signs `login` in at the provider from a fresh browser (no session at the
/// provider yet), starting at Wick's front page; returns the page where the
/// provider sent the person back to.
async function signInAs(browser: Browser, login: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${team}/`);
  await expect(page).toHaveURL(`${team}/sign-in`);
  await page.getByRole("link", { name: "Sign in with Test Provider" }).click();
  // The provider's own login form, on its own origin.
  await expect(page).toHaveURL(/^http:\/\/127\.0\.0\.2:\d+\/interaction\//);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password");
  await page.locator('button[type="submit"]').click();
  await page.waitForURL((url) => url.origin === team);
  return page;
}

test("people sign in through the provider; groups make admins and keep others out; a pending account waits for the admin", async ({ browser }) => {
  test.setTimeout(120_000);
  // Nothing but the sign-in page answers a stranger.
  const stranger = await browser.newPage();
  const answer = await stranger.request.get(`${team}/settings`, { maxRedirects: 0 });
  expect(answer.status()).toBe(303);
  expect(answer.headers()["location"]).toBe("/sign-in?next=/settings");
  await stranger.goto(`${team}/sign-in`);
  expect(await seriousProblems(stranger), "sign-in page with a provider").toEqual([]);

  // Alice is in the admin group: in at once, as an admin.
  const alice = await signInAs(browser, "alice");
  await expect(alice).toHaveURL(`${team}/`);
  await alice.goto(`${team}/settings`);
  await expect(alice.getByRole("region", { name: "Account" })).toContainText("Signed in as Alice Admin.");
  expect(role("alice@example.org")).toBe("admin");
  const cookies = await alice.context().cookies(team);
  const session = cookies.find((c) => c.name === "wick_session")!;
  expect(session.httpOnly).toBe(true);
  expect(session.sameSite).toBe("Lax");
  expect(session.secure, "plain http: not Secure, or the browser would drop it").toBe(false);

  // Bob is staff: his new account waits for an admin.
  let bob = await signInAs(browser, "bob");
  await expect(bob.getByRole("heading", { name: "Waiting for approval" })).toBeVisible();
  await expect(bob.locator("body")).toContainText("waiting for an admin's approval");
  expect(await seriousProblems(bob), "the page of a sign-in that waits").toEqual([]);
  expect(role("bob@example.org")).toBe("pending");
  wick("user", "set-role", "bob@example.org", "user");
  bob = await signInAs(browser, "bob");
  await expect(bob).toHaveURL(`${team}/`);
  await expect(bob.getByRole("textbox", { name: "Message" })).toBeVisible();

  // Carol is a contractor, Mallory is staff at another domain: both kept out.
  for (const login of ["carol", "mallory"]) {
    const page = await signInAs(browser, login);
    await expect(page.getByRole("heading", { name: "Sign-in failed" })).toBeVisible();
    await expect(page.locator("body")).toContainText("is not allowed to use this Wick");
    if (login === "carol") {
      expect(await seriousProblems(page), "the page of a refused sign-in").toEqual([]);
    }
    const back = await page.request.get(`${team}/`, { maxRedirects: 0 });
    expect(back.status(), `${login} has no session`).toBe(303);
  }
  expect(role("carol@example.org")).toBeUndefined();
});

test("a callback that was not started in this browser, or is replayed, signs nobody in", async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${team}/sign-in`);
  let callback = "";
  page.on("request", (r) => {
    if (r.url().startsWith(`${team}/auth/oidc/callback`)) callback = r.url();
  });
  await page.getByRole("link", { name: "Sign in with Test Provider" }).click();
  await page.locator('input[name="login"]').fill("alice");
  await page.locator('input[name="password"]').fill("any password");
  await page.locator('button[type="submit"]').click();
  await page.waitForURL((url) => url.origin === team && !url.pathname.startsWith("/auth/"));
  expect(callback).toContain("code=");

  // The same callback again (its code and state spent), in another browser.
  const other = await (await browser.newContext()).newPage();
  const replayed = await other.goto(callback);
  expect(replayed!.status()).toBe(400);
  await expect(other.locator("body")).toContainText("not started in this browser, has expired or was already used");
  // A made-up state, with the right cookie name even.
  await other.context().addCookies([{ name: "wick_oidc_state", value: "forged", url: `${team}/auth/oidc` }]);
  const forged = await other.goto(`${team}/auth/oidc/callback?code=abc&state=forged`);
  expect(forged!.status()).toBe(400);
  const after = await other.request.get(`${team}/`, { maxRedirects: 0 });
  expect(after.status()).toBe(303);
});

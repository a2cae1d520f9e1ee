import { test, expect, type Page } from "@playwright/test";

// What another site can make a visitor's browser do to Wick: nothing.
// The other site is a page Playwright serves under its own origin; the
// requests it makes go to the real server, as a real Chromium sends them.

const ATTACKER = "http://attacker.test";

/** Serves `html` as the attacker's page and opens it. */
async function visitAttacker(page: Page, html: string) {
  await page.route(`${ATTACKER}/**`, (route) =>
    route.fulfill({ status: 200, contentType: "text/html", body: html }),
  );
  await page.goto(`${ATTACKER}/`);
}

async function sessionCookie(page: Page) {
  const cookies = await page.context().cookies();
  return cookies.find((c) => c.name === "wick_session")?.value;
}

test.describe("without JavaScript on Wick's side", () => {
  test.use({ javaScriptEnabled: false });

  test("a form on another site cannot post as the visitor, nor replace their session", async ({
    page,
    baseURL,
  }) => {
    // The visitor's own history.
    await page.goto("/");
    const mine = `My own history ${Date.now()}`;
    await page.getByRole("textbox", { name: "Message" }).fill(mine);
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
    await page.getByRole("button", { name: "Stop" }).click();
    await expect(page.getByRole("button", { name: "Send" })).toBeVisible();
    const action = await page.locator("form.composer").getAttribute("action");
    expect(action).toBeTruthy();
    const before = await sessionCookie(page);
    expect(before).toBeTruthy();

    // The other site posts Wick's own form, as a visitor clicking there would.
    const posted = page.waitForResponse((r) => r.url() === `${baseURL}${action}`);
    await visitAttacker(
      page,
      `<form method="post" action="${baseURL}${action}">
         <input name="content" value="Sent by another site">
         <button id="win">Win a prize</button>
       </form>`,
    );
    await page.click("#win");
    const response = await posted;
    expect(response.status()).toBe(403);
    expect(response.headers()["set-cookie"]).toBeUndefined();
    await expect(page.getByText("came from another site")).toBeVisible();

    // The visitor's session and history are untouched; nothing was sent.
    expect(await sessionCookie(page)).toBe(before);
    // (The conversation's title may be the model's by now: it is the one listed.)
    await page.goto("/");
    const listed = page.locator("#conversation-list a");
    await expect(listed).toHaveCount(1);
    await listed.click();
    await expect(page.getByRole("article", { name: "You" })).toHaveText(new RegExp(mine));
    await expect(page.getByText("Sent by another site")).toHaveCount(0);
  });

  test("a link from another site cannot make Wick show an error of its choosing", async ({
    page,
    baseURL,
  }) => {
    // Wick's own error, handed back to its page after a failed form post.
    await page.goto("/");
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page.getByRole("alert")).toHaveText("Type a message before sending.");
    const withError = page.url();
    expect(withError).toContain("__err=");

    // The same address, followed from a link on another site, shows no error.
    await visitAttacker(page, `<a id="go" href="${withError}">Open Wick</a>`);
    await page.click("#go");
    await expect(page).toHaveURL(new RegExp(`^${baseURL}/`));
    await expect(page.getByRole("textbox", { name: "Message" })).toBeVisible();
    // (The composer's alert region is always there, empty until there is something to say.)
    await expect(page.getByRole("alert")).toHaveText("");
    await expect(page.getByText("Type a message before sending.")).toHaveCount(0);
  });
});

test("pages carry a content policy that lets only Wick's own scripts run", async ({ page }) => {
  const response = await page.goto("/");
  const policy = response?.headers()["content-security-policy"] ?? "";
  expect(policy).toContain("frame-ancestors 'none'");
  const nonce = /'nonce-([^']+)'/.exec(policy)?.[1];
  expect(nonce).toBeTruthy();
  expect(response?.headers()["x-content-type-options"]).toBe("nosniff");
  // The app still hydrates under the policy, and no violation is reported.
  const violations: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
  });
  await page.reload();
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
  expect(violations).toEqual([]);
});

test("a reply stream the server refuses is retried with growing pauses, never in a loop", async ({ page }) => {
  // Every stream is refused, as for a reply the server can no longer stream.
  await page.route("**/api/messages/*/stream*", (route) =>
    route.fulfill({ status: 404, contentType: "application/json", body: '{"error":"gone"}' }),
  );
  // Each load of the conversation's page (the first, after the send, and the reloads).
  const loads: number[] = [];
  page.on("request", (r) => {
    if (r.resourceType() === "document" && /\/c\/[0-9a-f]{32}$/.test(r.url())) loads.push(Date.now());
  });
  await page.goto("/");
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("Write a long story about a lighthouse keeper.");
  await box.press("Enter");
  await expect(page).toHaveURL(/\/c\/[0-9a-f]{32}$/);
  // Pauses of 0.5, 1 and 2 s: the page is loaded again, but at most four
  // times in three seconds after the first (a reload loop made dozens).
  await page.waitForTimeout(3_000);
  expect(loads.length).toBeGreaterThanOrEqual(2);
  expect(loads.length).toBeLessThanOrEqual(5);
  // Each pause longer than the one before.
  const pauses = loads.slice(1).map((t, i) => t - loads[i]);
  for (let i = 1; i < pauses.length; i++) expect(pauses[i]).toBeGreaterThan(pauses[i - 1]);
});

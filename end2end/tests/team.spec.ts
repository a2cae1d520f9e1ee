import { test, expect, Browser, Page } from "@playwright/test";
import { execFileSync } from "child_process";
import * as path from "path";
import { teamPort } from "../playwright.config";
import { replyEnded, seriousProblems } from "./helpers";

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

// Issue 16: the admin pages. Alice (admin) makes groups A (herself) and B
// (Bob), opens the local model to group A only and gives group B a
// tokens-per-day quota; Bob sees and may use only what they allow, in the
// chat and with the openai client; the usage page and its CSV show the
// tokens of the replies just made; the audit log shows who did what and
// none of the words written.
test("an admin's groups, model access and quotas hold in the chat and on the API; usage and the audit log show them", async ({ browser }) => {
  test.setTimeout(240_000);
  // Bob's account, approved (the first test may not have run).
  await signInAs(browser, "bob");
  wick("user", "set-role", "bob@example.org", "user");
  const bob = await signInAs(browser, "bob");
  await expect(bob).toHaveURL(`${team}/`);
  const alice = await signInAs(browser, "alice");

  for (const route of ["/admin", "/admin/users", "/admin/groups", "/admin/models", "/admin/usage", "/admin/usage.csv", "/admin/audit", "/admin/audit.jsonl"]) {
    const answer = await bob.request.get(`${team}${route}`, { maxRedirects: 0 });
    expect(answer.status(), `${route} for a non-admin`).toBe(404);
  }

  await alice.goto(`${team}/admin/groups`);
  for (const name of ["A", "B"]) {
    await alice.getByLabel("New group").fill(name);
    await alice.getByRole("button", { name: "Create group" }).click();
    await expect(alice.getByRole("status")).toHaveText(`Group ${name} is created.`);
  }
  // A name already taken (case-blind) is refused, and nothing changes.
  await alice.getByLabel("New group").fill("a");
  await alice.getByRole("button", { name: "Create group" }).click();
  await expect(alice.getByRole("alert")).toHaveText('There is already a group named "a".');
  for (const [group, email] of [["A", "alice@example.org"], ["B", "bob@example.org"]]) {
    const section = alice.getByRole("region", { name: group, exact: true });
    await section.getByLabel("Add a person (email or id)").fill(email);
    await section.getByRole("button", { name: "Add", exact: true }).click();
    await expect(alice.getByRole("status")).toContainText("is in the group.");
  }
  expect(await seriousProblems(alice), "the groups page").toEqual([]);

  await alice.goto(`${team}/admin/models`);
  const local = alice.getByRole("region", { name: "SmolLM2 135M (local)" });
  await local.getByRole("checkbox", { name: "A", exact: true }).check();
  await local.getByRole("button", { name: "Save access" }).click();
  await expect(alice.getByRole("status")).toHaveText("Only the chosen groups may use SmolLM2 135M (local).");
  expect(await seriousProblems(alice), "the models page").toEqual([]);

  // Bob: the local model is not in his picker, and asking for it is refused.
  await bob.goto(`${team}/`);
  await expect(bob.locator("body[data-hydrated]")).toBeAttached();
  await expect(bob.getByLabel("Model").locator("option")).toHaveText(["Scripted model"]);
  const sendUrl = bob.waitForRequest((r) => /\/api\/send_message\d*$/.test(r.url()));
  await bob.getByRole("textbox", { name: "Message" }).fill("quota probe");
  await bob.getByRole("textbox", { name: "Message" }).press("Enter");
  await expect(bob.getByRole("article", { name: "Assistant" }).last()).toContainText("Scripted answer to: quota probe");
  // (The page loads itself again at the reply's end: let that happen before going elsewhere.)
  await replyEnded(bob);
  const refused = await bob.request.post((await sendUrl).url(), {
    form: { conversation_id: "", content: "hello", model: "smollm2" },
  });
  expect(refused.status()).toBe(403);
  expect(await refused.text()).toContain("You may not use the model SmolLM2 135M (local)");

  // Bob's token: the openai client neither lists nor uses the local model.
  await bob.goto(`${team}/settings`);
  await bob.getByRole("region", { name: "Account" }).getByLabel("Name").fill("bob script");
  await bob.getByRole("button", { name: "Create token" }).click();
  const token = await bob.getByLabel(/Token/).inputValue();
  const python = path.join(root, ".venv-clients/bin/python");
  const program = [
    "import sys, openai",
    "client = openai.OpenAI(base_url=sys.argv[1] + '/v1', api_key=sys.argv[2], max_retries=0)",
    "print('models', [m.id for m in client.models.list().data])",
    "try:",
    "    client.chat.completions.create(model='smollm2', max_tokens=4,",
    "        messages=[{'role': 'user', 'content': 'Say hi'}])",
    "    print('answered')",
    "except openai.PermissionDeniedError as e:",
    "    print('refused', e.status_code, e.message)",
    "except openai.RateLimitError as e:",
    "    print('limited', e.status_code, e.response.headers.get('retry-after'), e.message)",
  ].join("\n");
  const client = () => execFileSync(python, ["-c", program, team, token], { encoding: "utf8" });
  let said = client();
  expect(said).toContain("models []");
  expect(said).toContain("refused 403");
  expect(said).toContain("You may not use the model SmolLM2 135M (local)");

  // Group B's quota: what two such replies use. The second goes through, the third is refused.
  await alice.goto(`${team}/admin/usage`);
  const perReply = Number((await alice.locator("[data-total=prompt]").innerText()).replace(/,/g, ""))
    + Number((await alice.locator("[data-total=completion]").innerText()).replace(/,/g, ""));
  expect(perReply).toBeGreaterThan(0);
  await alice.goto(`${team}/admin/groups`);
  const groupB = alice.getByRole("region", { name: "B", exact: true });
  await groupB.getByLabel("Tokens per day").fill("-5");
  await groupB.getByRole("button", { name: "Save limits" }).click();
  await expect(alice.getByRole("alert")).toHaveText(
    "Tokens per day must be a whole number from 0 to 1,000,000,000,000, or empty for no limit. Nothing was changed.",
  );
  await groupB.getByLabel("Tokens per day").fill(String(2 * perReply));
  await groupB.getByRole("button", { name: "Save limits" }).click();
  await expect(alice.getByRole("status")).toHaveText("The group's limits are saved.");

  await bob.goto(`${team}/`);
  await expect(bob.locator("body[data-hydrated]")).toBeAttached();
  await bob.getByRole("textbox", { name: "Message" }).fill("quota probe");
  await bob.getByRole("textbox", { name: "Message" }).press("Enter");
  await expect(bob.getByRole("article", { name: "Assistant" }).last()).toContainText("Scripted answer to: quota probe");
  // (The page loads itself again at the reply's end: let that happen first.)
  await replyEnded(bob);
  await bob.goto(`${team}/`);
  await expect(bob.locator("body[data-hydrated]")).toBeAttached();
  await bob.getByRole("textbox", { name: "Message" }).fill("quota probe");
  await bob.getByRole("textbox", { name: "Message" }).press("Enter");
  const quotaSentence = `You have used your ${(2 * perReply).toLocaleString("en-US")} tokens for today; it resets at 00:00 UTC.`;
  await expect(bob.getByRole("alert")).toHaveText(quotaSentence);
  await bob.goto(`${team}/settings`);
  await expect(bob.getByRole("region", { name: "Usage and limits" })).toContainText(
    `${(2 * perReply).toLocaleString("en-US")} of your ${(2 * perReply).toLocaleString("en-US")} tokens for today`,
  );
  await expect(bob.getByRole("region", { name: "Usage and limits" })).toContainText(
    "Conversations not updated for 90 days are deleted.",
  );
  expect(await seriousProblems(bob), "the settings page with usage").toEqual([]);

  // Open to everyone again: the API's answer is now the quota's, a 429 with Retry-After.
  await alice.goto(`${team}/admin/models`);
  await local.getByRole("checkbox", { name: "A", exact: true }).uncheck();
  await local.getByRole("button", { name: "Save access" }).click();
  await expect(alice.getByRole("status")).toHaveText("Everyone may use SmolLM2 135M (local).");
  said = client();
  expect(said).toContain("models ['smollm2']");
  expect(said).toMatch(/limited 429 \d+ .*You have used your/);

  // The usage page, its chart and its CSV: the stored counts of Bob's replies.
  await alice.goto(`${team}/admin/usage`);
  await alice.getByLabel("User").selectOption({ label: "bob@example.org" });
  await alice.getByRole("button", { name: "Show" }).click();
  await expect(alice.getByRole("img", { name: /Tokens per day, last 30 days/ })).toBeVisible();
  const shown = Number((await alice.locator("[data-total=prompt]").innerText()).replace(/,/g, ""))
    + Number((await alice.locator("[data-total=completion]").innerText()).replace(/,/g, ""));
  expect(shown).toBe(2 * perReply);
  // The replies' own stored counts, read from the database file.
  const stored = execFileSync("python3", ["-c", [
    "import sqlite3",
    "db = sqlite3.connect('end2end/.data-team/team.db')",
    "print(db.execute(\"SELECT sum(m.prompt_tokens + m.completion_tokens) FROM messages m JOIN conversations c ON c.id = m.conversation_id JOIN users u ON u.id = c.user_id WHERE u.email = 'bob@example.org' AND m.role = 'assistant'\").fetchone()[0])",
  ].join("\n")], { cwd: root, encoding: "utf8" }).trim();
  expect(Number(stored)).toBe(shown);
  expect(await seriousProblems(alice), "the usage page").toEqual([]);
  const csvHref = await alice.getByRole("link", { name: "Download as CSV" }).getAttribute("href");
  const csv = await (await alice.request.get(`${team}${csvHref}`)).text();
  const lines = csv.trim().split("\n");
  expect(lines[0]).toBe("day,user_id,user,model,requests,prompt_tokens,completion_tokens");
  const bobLine = lines.slice(1).map((l) => l.split(","));
  expect(bobLine).toHaveLength(1);
  expect(bobLine[0][2]).toBe("bob@example.org");
  expect(bobLine[0][3]).toBe("scripted");
  expect(bobLine[0][4]).toBe("2");
  expect(Number(bobLine[0][5]) + Number(bobLine[0][6])).toBe(2 * perReply);

  // A role change and a revoked token, then the audit log.
  await alice.goto(`${team}/admin/users`);
  const bobRow = alice.locator("tr[data-user='bob@example.org']");
  await bobRow.getByLabel("Role of bob@example.org").selectOption("pending");
  await bobRow.getByRole("button", { name: "Save role" }).click();
  await expect(alice.getByRole("status")).toContainText("is now pending.");
  const aliceRow = alice.locator("tr[data-user='alice@example.org']");
  await aliceRow.getByLabel("Role of alice@example.org").selectOption("user");
  await aliceRow.getByRole("button", { name: "Save role" }).click();
  await expect(alice.getByRole("alert")).toHaveText("This is the only admin: make someone else an admin first.");
  expect(await seriousProblems(alice), "the users page").toEqual([]);
  await alice.goto(`${team}/settings`);
  await alice.getByRole("region", { name: "Account" }).getByLabel("Name").fill("alice script");
  await alice.getByRole("button", { name: "Create token" }).click();
  await alice.goto(`${team}/settings#tokens`);
  await alice.getByRole("button", { name: "Revoke alice script" }).click();

  await alice.goto(`${team}/admin/audit`);
  const log = alice.getByRole("table");
  await expect(log).toContainText("sign_in");
  await expect(log).toContainText("role_changed");
  await expect(log).toContainText("role pending");
  await expect(log).toContainText("token_revoked");
  await expect(log).toContainText("model_access_changed");
  expect(await seriousProblems(alice), "the audit page").toEqual([]);
  const jsonl = await (await alice.request.get(`${team}/admin/audit.jsonl`)).text();
  const events = jsonl.trim().split("\n").map((l) => JSON.parse(l));
  expect(events.map((e) => e.action)).toEqual(expect.arrayContaining(["sign_in", "role_changed", "token_revoked", "limits_changed"]));
  expect(jsonl).not.toContain("quota probe");
  expect(jsonl).not.toContain("Scripted answer");
});

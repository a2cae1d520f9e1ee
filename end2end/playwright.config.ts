import { defineConfig } from "@playwright/test";
import * as path from "path";

// The browser tests drive Debian's Chromium against the real release binary,
// started here on its own port with a fresh database (make test builds it first).
const root = path.resolve(__dirname, "..");
const port = process.env.WICK_E2E_PORT ?? "3210";
const baseURL = `http://127.0.0.1:${port}`;
// A scripted OpenAI-compatible server (end2end/scripted_openai.py): a model
// whose words the tests choose, and which tells what Wick sent it.
const scriptedPort = process.env.WICK_E2E_SCRIPTED_PORT ?? "3211";
// A team's Wick (sign-in required, OpenID Connect) and its real provider
// (npm's oidc-provider, end2end/oidc/provider.mjs), for end2end/tests/team.spec.ts.
export const teamPort = process.env.WICK_E2E_TEAM_PORT ?? "3212";
export const oidcPort = process.env.WICK_E2E_OIDC_PORT ?? "3213";

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: true,
  retries: 0,
  reporter: [["list"]],
  outputDir: "./test-results",
  use: {
    baseURL,
    browserName: "chromium",
    // Tracing holds back EventSource bodies in Chromium (the reply never streams
    // while a trace is recorded), so failures keep a screenshot instead.
    trace: "off",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  webServer: [
  {
    command: `exec python3 end2end/scripted_openai.py ${scriptedPort}`,
    cwd: root,
    url: `http://127.0.0.1:${scriptedPort}/health`,
    reuseExistingServer: false,
    timeout: 20_000,
  },
  {
    command:
      `rm -rf end2end/.data && mkdir -p end2end/.data && ` +
      `sed -e "s/SCRIPTED_PORT/${scriptedPort}/" -e "s/PORT/${port}/" end2end/models.toml > end2end/.data/models.toml && ` +
      `exec ${process.env.WICK_BIN ?? "target/release/wick"}`,
    cwd: root,
    url: `${baseURL}/health`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      WICK_ADDR: `127.0.0.1:${port}`,
      WICK_DATABASE_URL: "sqlite://end2end/.data/e2e.db",
      WICK_SITE_ROOT: "target/site",
      WICK_LOG: "warn",
      // Seeded, and short enough that one test's reply never holds up the next for long.
      WICK_SEED: "7",
      WICK_MAX_NEW_TOKENS: "200",
      // A second model: this server's own OpenAI-compatible API, reached over HTTP.
      WICK_MODELS: "end2end/.data/models.toml",
      WICK_API_KEY: "e2e-key",
      WICK_E2E_KEY: "e2e-key",
    },
  },
  {
    command: `exec node end2end/oidc/provider.mjs ${oidcPort} http://127.0.0.1:${teamPort}`,
    cwd: root,
    url: `http://127.0.0.2:${oidcPort}/health`,
    reuseExistingServer: false,
    timeout: 20_000,
  },
  {
    command:
      `rm -rf end2end/.data-team && mkdir -p end2end/.data-team && ` +
      `sed -e "s/SCRIPTED_PORT/${scriptedPort}/" end2end/team-models.toml > end2end/.data-team/models.toml && ` +
      `exec ${process.env.WICK_BIN ?? "target/release/wick"}`,
    cwd: root,
    url: `http://127.0.0.1:${teamPort}/health`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      WICK_ADDR: `127.0.0.1:${teamPort}`,
      WICK_DATABASE_URL: "sqlite://end2end/.data-team/team.db",
      WICK_SITE_ROOT: "target/site",
      WICK_LOG: "warn",
      WICK_MAX_NEW_TOKENS: "50",
      WICK_AUTH: "required",
      WICK_PUBLIC_URL: `http://127.0.0.1:${teamPort}`,
      WICK_DEFAULT_ROLE: "pending",
      WICK_OIDC_ISSUER: `http://127.0.0.2:${oidcPort}`,
      WICK_OIDC_CLIENT_ID: "wick",
      WICK_OIDC_CLIENT_SECRET: "wick-test-secret",
      WICK_OIDC_SCOPES: "openid email profile groups",
      WICK_OIDC_NAME: "Test Provider",
      WICK_OIDC_ADMIN_GROUPS: "wick-admins",
      WICK_OIDC_ALLOWED_GROUPS: "staff",
      WICK_ALLOWED_EMAIL_DOMAINS: "example.org",
      WICK_MODELS: "end2end/.data-team/models.toml",
      WICK_RETENTION_DAYS: "90",
    },
  },
  ],
});

// A real OpenID Connect provider for the tests: npm's `oidc-provider` (a
// certified implementation), on loopback, with one client for Wick and test
// people whose groups decide what Wick lets them do. Its login form is the
// package's own development form (any password; the login is the account).
//
//   node end2end/oidc/provider.mjs PORT WICK_BASE_URL
//
// It listens on 127.0.0.2 so that its cookies and Wick's (on 127.0.0.1) do
// not share a host.
import Provider from "oidc-provider";

const [port, wick] = process.argv.slice(2);
if (!port || !wick) {
  console.error("usage: provider.mjs PORT WICK_BASE_URL");
  process.exit(2);
}

// The people at the provider: login name → claims.
const people = {
  alice: { email: "alice@example.org", name: "Alice Admin", groups: ["staff", "wick-admins"] },
  bob: { email: "bob@example.org", name: "Bob Builder", groups: ["staff"] },
  carol: { email: "carol@example.org", name: "Carol Contractor", groups: ["contractors"] },
  mallory: { email: "mallory@elsewhere.example", name: "Mallory", groups: ["staff"] },
};

const scopes = "openid email profile groups";

const provider = new Provider(`http://127.0.0.2:${port}`, {
  clients: [
    {
      client_id: "wick",
      client_secret: "wick-test-secret",
      redirect_uris: [`${wick}/auth/oidc/callback`],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    groups: ["groups"],
  },
  scopes: scopes.split(" "),
  // The claims of the granted scopes go into the ID token itself (Wick reads
  // them there), not only into the userinfo answer.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  cookies: { keys: ["test-only-cookie-key"] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const person = people[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: person.email, email_verified: true, name: person.name, groups: person.groups };
      },
    };
  },
  // Wick is the provider's own first-party client: no consent screen.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(scopes);
    grant.addOIDCClaims(["email", "email_verified", "name", "groups"]);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

// The tests' health check, and a way to see the provider is up.
provider.use(async (ctx, next) => {
  if (ctx.path === "/health") {
    ctx.body = "ok";
    return;
  }
  await next();
});

provider.listen(Number(port), "127.0.0.2", () => {
  console.log(`oidc-provider for the tests at http://127.0.0.2:${port}`);
});

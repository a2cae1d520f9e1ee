//! Every setting of the `wick` binary: a command-line flag and a `WICK_*`
//! environment variable, each with a default that works out of the box.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "wick",
    version,
    about = "A self-hosted chat app with a local model"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the chat (the default when no command is given).
    Serve,
    /// Generate a reply with the local model and stream it to stdout; speeds go to stderr.
    Generate(GenerateArgs),
    /// Manage access tokens for the inference APIs.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage accounts: create one (the first admin), list, set a role, disable.
    #[command(subcommand)]
    User(UserCommand),
    /// Write a consistent copy of the database to a new file, also while Wick serves.
    Backup {
        /// The file to write (it must not exist yet).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Replace the database by a backup, after checking it (SQLite's
    /// integrity check and the schema version); refused while a Wick server
    /// uses the database. The replaced database is kept beside it.
    Restore {
        /// The backup to restore.
        #[arg(long)]
        from: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Create an account with a password. The password is read from the first
    /// line of standard input; from a terminal, one is made up and printed once.
    Create {
        #[arg(long)]
        email: String,
        /// The name shown for the account.
        #[arg(long)]
        name: Option<String>,
        /// Make the account an admin (the same as `--role admin`).
        #[arg(long, conflicts_with = "role")]
        admin: bool,
        /// admin, user or pending.
        #[arg(long, default_value = "user")]
        role: wick_core::db::users::Role,
    },
    /// List every user (anonymous visitors too), oldest first.
    List,
    /// Give a user (by email or id) a role: admin, user or pending.
    SetRole {
        user: String,
        role: wick_core::db::users::Role,
    },
    /// Disable a user (by email or id): their sessions end and their tokens stop working at once.
    Disable { user: String },
    /// Let a disabled user in again.
    Enable { user: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is shown only this once).
    Create {
        /// A label to recognise the token by, e.g. where it is used.
        #[arg(long)]
        name: String,
        /// The user the token acts for; by default a new user named after the token.
        #[arg(long)]
        user: Option<i64>,
    },
    /// List the tokens (never the tokens themselves).
    List,
    /// Revoke a token by its id (from `wick token list`).
    Revoke { id: i64 },
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// The text to answer (wrapped as one user turn by the chat template unless --raw).
    #[arg(long)]
    pub prompt: String,
    /// A system message placed before the prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Use the prompt as it is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    #[arg(long)]
    pub top_p: Option<f64>,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 299792458)]
    pub seed: u64,
    /// Keep going past the end-of-turn token (for benchmarks).
    #[arg(long)]
    pub ignore_eos: bool,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to serve the chat on.
    #[arg(
        long,
        env = "WICK_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub addr: SocketAddr,

    /// SQLite database URL; the file and its directory are created when missing.
    #[arg(
        long,
        env = "WICK_DATABASE_URL",
        default_value = "sqlite://data/wick.db",
        global = true
    )]
    pub database_url: String,

    /// The local GGUF model.
    #[arg(
        long,
        env = "WICK_MODEL",
        default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        global = true
    )]
    pub model: PathBuf,

    /// A TOML file listing the models to chat with (local GGUF files, OpenAI-compatible
    /// servers, TGI / the Hugging Face Inference API); without it, only --model is offered.
    #[arg(long = "models", env = "WICK_MODELS")]
    pub models_file: Option<PathBuf>,

    /// Log filter, in `tracing`'s env-filter syntax (e.g. `info`, `wick=debug`).
    #[arg(long, env = "WICK_LOG", default_value = "info", global = true)]
    pub log: String,

    /// Where the built site (wasm, CSS, public assets) lies; `make build` writes it to `target/site`.
    #[arg(
        long,
        env = "WICK_SITE_ROOT",
        default_value = "target/site",
        global = true
    )]
    pub site_root: String,

    /// Who may use Wick without signing in: `none` (anonymous visitors chat,
    /// for one person on their own machine) or `required` (only the sign-in
    /// pages, /health and the inference APIs with a token answer).
    #[arg(long, env = "WICK_AUTH", default_value = "none", global = true)]
    pub auth: wick_core::accounts::AuthMode,

    /// The address people reach Wick at, e.g. `https://chat.example.org`
    /// (behind a proxy). An https address makes the session cookie `Secure`;
    /// requests that change something must come from it (or from the host
    /// they name).
    #[arg(long, env = "WICK_PUBLIC_URL", value_parser = parse_public_url, global = true)]
    pub public_url: Option<String>,

    /// Who may make an account: `open` (anyone, on the sign-up page),
    /// `invite` (only an admin, with `wick user create`) or `closed`.
    #[arg(long, env = "WICK_SIGNUP", default_value = "open", global = true)]
    pub signup: wick_core::accounts::Signup,

    /// The role of a new account: `user`, or `pending` to wait for an
    /// admin's approval (`wick user set-role EMAIL user`).
    #[arg(long, env = "WICK_DEFAULT_ROLE", default_value = "user", value_parser = parse_default_role, global = true)]
    pub default_role: wick_core::db::users::Role,

    /// Days after which a conversation nobody updated is deleted, with its
    /// messages and share links (checked every hour; 0: keep forever).
    #[arg(
        long,
        env = "WICK_RETENTION_DAYS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=36500),
        global = true
    )]
    pub retention_days: u32,

    /// Days the audit log keeps an event (0: forever).
    #[arg(
        long,
        env = "WICK_AUDIT_LOG_DAYS",
        default_value_t = 365,
        value_parser = clap::value_parser!(u32).range(0..=36500),
        global = true
    )]
    pub audit_log_days: u32,

    /// Days a signed-in session lasts unused (each day of use extends it).
    #[arg(
        long,
        env = "WICK_SESSION_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=400),
        global = true
    )]
    pub session_days: u32,

    /// Offer signing in with an email and a password (`false` when only an
    /// OpenID provider should let people in).
    #[arg(
        long,
        env = "WICK_PASSWORD_AUTH",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub password_auth: bool,

    /// An OpenID Connect provider to sign in with (its issuer URL, e.g.
    /// `https://login.example.org/realms/team`); needs WICK_PUBLIC_URL, as
    /// the redirect URI is `{WICK_PUBLIC_URL}/auth/oidc/callback`.
    #[arg(long, env = "WICK_OIDC_ISSUER", global = true)]
    pub oidc_issuer: Option<String>,

    /// Wick's client id at the provider.
    #[arg(long, env = "WICK_OIDC_CLIENT_ID", global = true)]
    pub oidc_client_id: Option<String>,

    /// Wick's client secret at the provider (or WICK_OIDC_CLIENT_SECRET_FILE).
    #[arg(
        long,
        env = "WICK_OIDC_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub oidc_client_secret: Option<String>,

    /// A file holding the client secret (its first line).
    #[arg(
        long,
        env = "WICK_OIDC_CLIENT_SECRET_FILE",
        conflicts_with = "oidc_client_secret",
        global = true
    )]
    pub oidc_client_secret_file: Option<PathBuf>,

    /// The scopes asked for (space- or comma-separated; `openid` is always asked).
    #[arg(
        long,
        env = "WICK_OIDC_SCOPES",
        default_value = "openid email profile",
        global = true
    )]
    pub oidc_scopes: String,

    /// The provider's name on the sign-in button ("Sign in with …").
    #[arg(
        long,
        env = "WICK_OIDC_NAME",
        default_value = "single sign-on",
        global = true
    )]
    pub oidc_name: String,

    /// Only people whose email is at one of these domains get in (comma-separated; empty: any).
    #[arg(
        long,
        env = "WICK_ALLOWED_EMAIL_DOMAINS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_email_domains: Vec<String>,

    /// The ID token claim listing a person's groups.
    #[arg(
        long,
        env = "WICK_OIDC_GROUPS_CLAIM",
        default_value = "groups",
        global = true
    )]
    pub oidc_groups_claim: String,

    /// Members of these groups are admins, others not (comma-separated; empty: groups make no admins).
    #[arg(
        long,
        env = "WICK_OIDC_ADMIN_GROUPS",
        value_delimiter = ',',
        global = true
    )]
    pub oidc_admin_groups: Vec<String>,

    /// Only members of these groups (or of an admin group) get in (comma-separated; empty: anyone).
    #[arg(
        long,
        env = "WICK_OIDC_ALLOWED_GROUPS",
        value_delimiter = ',',
        global = true
    )]
    pub oidc_allowed_groups: Vec<String>,

    /// Mark the session cookie `Secure` even without an https WICK_PUBLIC_URL.
    #[arg(
        long,
        env = "WICK_SECURE_COOKIES",
        default_value_t = false,
        global = true
    )]
    pub secure_cookies: bool,

    /// Let people make read-only share links to their conversations
    /// (`--sharing false` turns it off; existing links then answer 404).
    #[arg(
        long,
        env = "WICK_SHARING",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub sharing: bool,

    /// Threads for the local model (0 = one per core).
    #[arg(long, env = "WICK_THREADS", default_value_t = 0, global = true)]
    pub threads: usize,

    // The chat's own settings below are not `global`: `wick generate` has flags
    // of the same names for its one reply.
    /// Replies generating or waiting for the model at once; one more is refused
    /// with "server busy" (HTTP 429) before anything is stored.
    #[arg(
        long,
        env = "WICK_QUEUE_DEPTH",
        default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub queue_depth: u16,

    /// Replies one person (a browser session's user, or an API token's) may
    /// have generating or waiting at once, across all models; one more is
    /// refused (HTTP 429) before the model's own queue is asked.
    #[arg(
        long,
        env = "WICK_REPLIES_PER_USER",
        default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub replies_per_user: u16,

    /// The longest reply, in tokens.
    #[arg(
        long,
        env = "WICK_MAX_NEW_TOKENS",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=8192)
    )]
    pub max_new_tokens: u32,

    /// The longest prompt of one request to a local model, in tokens: a longer
    /// one is refused with a sentence (HTTP 400 on the APIs), and a chat drops
    /// its oldest turns to fit.
    #[arg(
        long,
        env = "WICK_MAX_PROMPT_TOKENS",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_prompt_tokens: u32,

    /// Replies a local model generates at once, in one batch (continuous
    /// batching); more wait in arrival order, within the model's queue.
    #[arg(
        long,
        env = "WICK_PARALLEL",
        default_value_t = inference::engine::DEFAULT_PARALLEL as u32,
        value_parser = clap::value_parser!(u32).range(1..=64)
    )]
    pub parallel: u32,

    /// Memory for the KV caches a local model keeps after replies (the prefix
    /// cache), in MiB; by default room for WICK_PARALLEL prompts of
    /// WICK_MAX_PROMPT_TOKENS tokens. 0 keeps none.
    #[arg(long, env = "WICK_KV_CACHE_MB")]
    pub kv_cache_mb: Option<u32>,

    /// Seconds a kept KV cache may go unused before it is released (and the
    /// memory given back once none is left); 0 keeps caches until a newer one
    /// needs their room.
    #[arg(
        long,
        env = "WICK_KV_CACHE_IDLE_SECS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(0..=86400)
    )]
    pub kv_cache_idle_secs: u64,

    /// Sampling temperature of chat replies (0 = greedy).
    #[arg(long, env = "WICK_TEMPERATURE", default_value_t = 0.6)]
    pub temperature: f64,

    /// A fixed sampling seed makes replies reproducible; by default every reply
    /// draws its own, so "Retry" gives a new answer.
    #[arg(long, env = "WICK_SEED")]
    pub seed: Option<u64>,

    /// Static API keys for the inference APIs (comma-separated), besides the
    /// tokens made with `wick token create`.
    #[arg(
        long = "api-key",
        env = "WICK_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// Serve the inference APIs without a token (only for a private network).
    #[arg(long, env = "WICK_API_ALLOW_ANONYMOUS", default_value_t = false)]
    pub api_allow_anonymous: bool,

    /// Seconds a connection has to send a request's headers, counted from when
    /// it opens or its previous response ends: slower or idle connections are
    /// closed (open streams are not, they are answering), and so is a request
    /// whose body sends nothing for as long.
    #[arg(
        long,
        env = "WICK_HEADER_TIMEOUT",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub header_timeout: u64,

    /// Connections open at once, streams included; more wait to be accepted
    /// until one closes.
    #[arg(
        long,
        env = "WICK_MAX_CONNECTIONS",
        default_value_t = 512,
        value_parser = clap::value_parser!(u32).range(1..=65536)
    )]
    pub max_connections: u32,

    /// Seconds a shutdown (SIGTERM, Ctrl-C) lets running replies finish;
    /// those still running then are saved as interrupted with their text.
    #[arg(
        long,
        env = "WICK_SHUTDOWN_GRACE_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=3600)
    )]
    pub shutdown_grace_secs: u64,

    /// `json`: one JSON object per log line, for log shippers; `text`: for people.
    #[arg(long, env = "WICK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// When set, `/metrics` answers only `Authorization: Bearer <this token>`.
    #[arg(long, env = "WICK_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// The reverse proxies whose `X-Forwarded-For` is believed: addresses or
    /// networks (`127.0.0.1`, `10.0.0.0/8`, `::1`), separated by commas. A
    /// request from any other peer is taken to come from that peer.
    #[arg(
        long,
        env = "WICK_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_proxy
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// One entry of `WICK_TRUSTED_PROXIES`: an address (a network of one) or a
/// network in CIDR notation.
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or a network such as 10.0.0.0/8"))
}

/// `WICK_PUBLIC_URL`: an http or https origin (scheme, host, optional
/// port), kept without a trailing slash.
fn parse_public_url(text: &str) -> Result<String, String> {
    let trimmed = text.trim().trim_end_matches('/');
    let uri: axum::http::Uri = trimmed
        .parse()
        .map_err(|_| format!("{text:?} is not an address like https://chat.example.org"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let bare = uri
        .path_and_query()
        .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/");
    if !scheme_ok || uri.host().is_none() || !bare {
        return Err(format!(
            "{text:?} must be http:// or https:// and a host, with no path (e.g. https://chat.example.org)"
        ));
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// `WICK_DEFAULT_ROLE`: a new account is never an admin by default.
fn parse_default_role(text: &str) -> Result<wick_core::db::users::Role, String> {
    use wick_core::db::users::Role;
    match text.parse::<Role>()? {
        Role::Admin => Err("new accounts cannot be admins by default: use user or pending".into()),
        role => Ok(role),
    }
}

impl Config {
    /// How people are let in (`--auth`, `--signup`, `--default-role`,
    /// `--session-days`, `--password-auth`).
    pub fn account_policy(&self) -> wick_core::accounts::AccountPolicy {
        wick_core::accounts::AccountPolicy {
            mode: self.auth,
            signup: self.signup,
            default_role: self.default_role,
            session_lifetime: std::time::Duration::from_secs(
                u64::from(self.session_days) * 24 * 60 * 60,
            ),
            password_auth: self.password_auth,
            external: self
                .oidc_issuer
                .as_ref()
                .map(|_| self.oidc_name.trim().to_owned()),
        }
    }

    /// The OpenID provider's settings, when `--oidc-issuer` is given; a
    /// sentence saying what is missing otherwise.
    pub fn oidc_settings(&self) -> Result<Option<crate::oidc::OidcSettings>, String> {
        let Some(issuer) = self.oidc_issuer.clone() else {
            return Ok(None);
        };
        let public = self.public_url.as_deref().ok_or(
            "WICK_OIDC_ISSUER needs WICK_PUBLIC_URL: the redirect URI is {WICK_PUBLIC_URL}/auth/oidc/callback",
        )?;
        let client_id = self
            .oidc_client_id
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or("WICK_OIDC_ISSUER needs WICK_OIDC_CLIENT_ID")?;
        let client_secret = match &self.oidc_client_secret_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("WICK_OIDC_CLIENT_SECRET_FILE {}: {e}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            ),
            None => self.oidc_client_secret.clone(),
        }
        .filter(|s| !s.is_empty());
        let list = |items: &[String], lower: bool| -> Vec<String> {
            items
                .iter()
                .map(|i| i.trim())
                .filter(|i| !i.is_empty())
                .map(|i| {
                    if lower {
                        i.to_ascii_lowercase()
                    } else {
                        i.to_owned()
                    }
                })
                .collect()
        };
        Ok(Some(crate::oidc::OidcSettings {
            issuer,
            client_id,
            client_secret,
            scopes: self
                .oidc_scopes
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            name: self.oidc_name.trim().to_owned(),
            redirect_url: format!("{public}/auth/oidc/callback"),
            allowed_email_domains: list(&self.allowed_email_domains, true),
            groups_claim: self.oidc_groups_claim.clone(),
            admin_groups: list(&self.oidc_admin_groups, false),
            allowed_groups: list(&self.oidc_allowed_groups, false),
        }))
    }

    /// Whether the session cookie is `Secure`: whenever the public address
    /// is https (and, for older setups, when `--secure-cookies` says so).
    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }

    /// How the server treats connections (`--header-timeout`, `--max-connections`).
    pub fn connection_limits(&self) -> crate::listen::ConnectionLimits {
        crate::listen::ConnectionLimits {
            header_timeout: std::time::Duration::from_secs(self.header_timeout),
            max_connections: self.max_connections as usize,
            shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace_secs),
        }
    }

    /// The defaults, as a fresh `wick` with no flags and no environment would use them.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args).map(|cli| cli.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_is_an_origin_and_https_makes_cookies_secure() {
        assert_eq!(
            parse_public_url("https://Chat.Example.org/").unwrap(),
            "https://chat.example.org"
        );
        assert_eq!(
            parse_public_url("http://127.0.0.1:3000").unwrap(),
            "http://127.0.0.1:3000"
        );
        for bad in [
            "chat.example.org",
            "ftp://x.org",
            "https://x.org/chat",
            "https://",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
        let secure = |args: &[&str]| {
            Config::from_args(["wick"].iter().chain(args))
                .unwrap()
                .cookies_secure()
        };
        assert!(secure(&["--public-url", "https://chat.example.org"]));
        assert!(!secure(&["--public-url", "http://chat.example.org"]));
        assert!(!secure(&[]));
    }

    #[test]
    fn openid_settings_need_the_public_address_and_read_the_secret_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\nignored\n").unwrap();
        let base = [
            "wick",
            "--oidc-issuer",
            "https://login.example.org",
            "--oidc-client-id",
            "wick",
        ];
        let without_url = Config::from_args(base).unwrap();
        assert!(without_url
            .oidc_settings()
            .unwrap_err()
            .contains("WICK_PUBLIC_URL"));
        let c = Config::from_args(base.iter().copied().chain([
            "--public-url",
            "https://chat.example.org",
            "--oidc-client-secret-file",
            secret.to_str().unwrap(),
            "--oidc-scopes",
            "openid,email groups",
            "--allowed-email-domains",
            "Example.org, example.net",
            "--oidc-admin-groups",
            "wick-admins",
        ]))
        .unwrap();
        let s = c.oidc_settings().unwrap().unwrap();
        assert_eq!(s.client_secret.as_deref(), Some("s3cret"));
        assert_eq!(
            s.redirect_url,
            "https://chat.example.org/auth/oidc/callback"
        );
        assert_eq!(s.scopes, ["openid", "email", "groups"]);
        assert_eq!(s.allowed_email_domains, ["example.org", "example.net"]);
        assert_eq!(s.admin_groups, ["wick-admins"]);
        assert!(s.allowed_groups.is_empty());
        assert_eq!(
            c.account_policy().external.as_deref(),
            Some("single sign-on")
        );
        assert!(Config::from_args(["wick"])
            .unwrap()
            .oidc_settings()
            .unwrap()
            .is_none());
    }

    #[test]
    fn account_settings_parse_and_refuse_an_admin_default() {
        let c = Config::from_args([
            "wick",
            "--auth",
            "required",
            "--signup",
            "invite",
            "--default-role",
            "pending",
            "--session-days",
            "7",
            "--password-auth",
            "false",
        ])
        .unwrap();
        let p = c.account_policy();
        assert_eq!(p.mode, wick_core::accounts::AuthMode::Required);
        assert_eq!(p.signup, wick_core::accounts::Signup::Invite);
        assert_eq!(p.default_role, wick_core::db::users::Role::Pending);
        assert_eq!(p.session_lifetime.as_secs(), 7 * 24 * 3600);
        assert!(!p.password_auth);
        assert!(Config::from_args(["wick", "--default-role", "admin"]).is_err());
        assert!(Config::from_args(["wick", "--auth", "sometimes"]).is_err());
        assert!(Config::from_args(["wick", "--session-days", "0"]).is_err());
        assert_eq!(
            Config::from_args(["wick"]).unwrap().account_policy(),
            wick_core::accounts::AccountPolicy::default()
        );
    }
}

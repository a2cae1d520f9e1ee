//! The `wick` server: configuration, wiring and the routes that are not Leptos pages.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod audit;
pub mod backups;
pub mod config;
pub mod health;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod models_file;
pub mod oidc;
pub mod protect;
pub mod proxy;
pub mod server_fn_errors;
pub mod sse;
pub mod stream;
pub mod tokens;
pub mod transfer;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use app::state::AppState;
use app::{shell, App};
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;
use wick_core::{Chat, ChatSettings, Generations, Model, ModelKind, Models};

pub use config::Config;

/// The one error type of the server layer: why Wick could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Model(#[from] inference::InferenceError),
    #[error(transparent)]
    ModelsFile(#[from] models_file::ModelsFileError),
    #[error("database {url}: {source}")]
    Database {
        url: String,
        source: wick_core::StoreError,
    },
    #[error("invalid generation setting: {0}")]
    Setting(#[from] inference::ValidationError),
    #[error("a model thread failed: {0}")]
    Thread(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Request(#[from] inference::RequestError),
    #[error("{0}")]
    Generation(inference::Failure),
    #[error("--name must be 1 to 100 characters")]
    TokenName,
    #[error("--user: there is no user with id {0}")]
    NoSuchUser(i64),
    #[error("there is no token {0}")]
    NoSuchToken(i64),
    #[error("there is no user {0:?} (give an email or an id from `wick user list`)")]
    NoSuchAccount(String),
    #[error("--email: {0:?} is not an email address")]
    BadEmail(String),
    #[error("an account with the email {0:?} already exists")]
    EmailTaken(String),
    #[error("the password was refused: {0}")]
    Password(#[from] wick_core::password::PasswordProblem),
    #[error("could not read the password from standard input: {0}")]
    Stdin(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Backup(#[from] wick_core::db::backup::BackupError),
    #[error("OpenID Connect: {0}")]
    Oidc(String),
}

/// Axum state: the Leptos options (for file serving) and the app's shared state.
#[derive(Clone, Debug)]
pub struct ServerState {
    pub leptos: LeptosOptions,
    pub app: AppState,
    /// Who may use the inference APIs.
    pub api: api::auth::ApiAccess,
    /// When this server started (Unix seconds), as OpenAI's model listing shows.
    pub started_at: i64,
    /// Failed sign-ins, per account and per address.
    pub throttle: Arc<accounts::Throttle>,
    /// `WICK_PUBLIC_URL`'s origin (`https://chat.example.org`), if set.
    pub public_url: Option<String>,
    /// The OpenID provider to sign in with (`WICK_OIDC_*`), if any.
    pub oidc: Option<Arc<oidc::Oidc>>,
    /// Whose `X-Forwarded-For` is believed (`WICK_TRUSTED_PROXIES`).
    pub proxies: Arc<proxy::Proxies>,
    /// `WICK_METRICS_TOKEN`: what `/metrics` asks for, if set.
    pub metrics_token: Option<Arc<str>>,
}

impl FromRef<ServerState> for LeptosOptions {
    fn from_ref(state: &ServerState) -> Self {
        state.leptos.clone()
    }
}

/// Opens the database (applying migrations), marks replies a previous run left
/// unfinished as interrupted, and loads the models (local ones onto their
/// worker threads).
pub async fn prepare(config: &Config) -> Result<ServerState, ServerError> {
    let defaults = inference::Params {
        temperature: config.temperature,
        top_p: Some(0.9),
        max_new_tokens: config.max_new_tokens as usize,
        ..inference::Params::default()
    };
    defaults.validate()?;
    let oidc = config
        .oidc_settings()
        .map_err(ServerError::Oidc)?
        .map(oidc::Oidc::new)
        .transpose()
        .map_err(ServerError::Oidc)?;
    // Read the models file before the slow parts, so a typo fails at once.
    let file = match &config.models_file {
        Some(path) => Some((path.clone(), models_file::ModelsFile::load(path)?)),
        None => None,
    };
    let database = |source| ServerError::Database {
        url: config.database_url.clone(),
        source,
    };
    let pool = wick_core::db::open(&config.database_url)
        .await
        .map_err(database)?;
    let interrupted = wick_core::db::interrupt_unfinished(&pool)
        .await
        .map_err(database)?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "replies left unfinished by the last run are marked interrupted"
        );
    }
    let retention = wick_core::team::Retention {
        conversation_days: config.retention_days,
        audit_log_days: config.audit_log_days,
    };
    tokio::spawn(housekeeping(pool.clone(), retention));
    let models = match file {
        Some((path, file)) => models_from_file(config, &defaults, &path, file).await?,
        None => {
            // Its id (for the APIs) is the file's name; people see that name
            // written for reading (see `LocalModel::display_name`).
            let id = inference::LocalModel::open(&config.model)?.name;
            vec![local_model(config, &defaults, id, None, &config.model, None).await?]
        }
    };
    let generations = Generations::new(
        Models::new(models),
        pool.clone(),
        ChatSettings {
            seed: config.seed,
            replies_per_user: config.replies_per_user as usize,
        },
    );
    let api = api::auth::ApiAccess::new(&config.api_keys, config.api_allow_anonymous);
    Ok(ServerState::new(
        leptos_options(config),
        Chat::new(pool, generations)
            .with_accounts(config.account_policy())
            .with_retention(retention),
        config.cookies_secure(),
        api,
    )
    .with_sharing(config.sharing)
    .with_public_url(config.public_url.clone())
    .with_oidc(oidc)
    .with_proxies(proxy::Proxies::new(config.trusted_proxies.clone()))
    .with_metrics_token(config.metrics_token.clone()))
}

/// Now and every hour: deletes expired sessions (a session unused for its
/// whole lifetime is dead, and its row would otherwise stay forever), and
/// what `retention` says is too old.
async fn housekeeping(pool: sqlx::SqlitePool, retention: wick_core::team::Retention) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(60 * 60));
    loop {
        every_hour.tick().await;
        match wick_core::db::users::delete_expired_sessions(&pool).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired sessions deleted"),
            Err(e) => tracing::warn!(error = %e, "could not delete expired sessions"),
        }
        match retention.sweep(&pool).await {
            Ok((0, 0)) => {}
            Ok((conversations, events)) => {
                tracing::info!(
                    conversations,
                    events,
                    "old conversations and audit events deleted"
                )
            }
            Err(e) => tracing::warn!(error = %e, "could not delete old conversations"),
        }
    }
}

/// Where the built site is, for the pages and their files.
///
/// A release build (`cargo xtask build`, or `cargo leptos build --release`) names its files with a
/// hash of their content and lists the hashes in `hash.txt` beside the
/// binary; pages then link to those names. A binary without that file (the
/// tests' in-process servers) links to the plain names.
pub fn leptos_options(config: &Config) -> LeptosOptions {
    let hashed = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("hash.txt")))
        .is_some_and(|file| file.exists());
    LeptosOptions::builder()
        .output_name("wick")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .hash_files(hashed)
        .build()
}

impl ServerState {
    /// The state of a server over `chat`; `prepare` builds one from the
    /// configuration, tests build one over scripted models.
    pub fn new(
        leptos: LeptosOptions,
        chat: Chat,
        secure_cookies: bool,
        api: api::auth::ApiAccess,
    ) -> Self {
        Self {
            leptos,
            app: AppState {
                chat,
                secure_cookies,
                sharing: true,
            },
            api,
            started_at: wick_core::db::now_ms() / 1000,
            throttle: Arc::default(),
            public_url: None,
            oidc: None,
            proxies: Arc::default(),
            metrics_token: None,
        }
    }

    /// The reverse proxies whose `X-Forwarded-For` is believed.
    pub fn with_proxies(mut self, proxies: proxy::Proxies) -> Self {
        self.proxies = Arc::new(proxies);
        self
    }

    /// The token `/metrics` asks for (`None`: it answers everyone).
    pub fn with_metrics_token(mut self, token: Option<String>) -> Self {
        self.metrics_token = token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }

    /// Sign-in with an OpenID provider.
    pub fn with_oidc(mut self, oidc: Option<oidc::Oidc>) -> Self {
        self.oidc = oidc.map(Arc::new);
        self
    }

    /// The address people reach Wick at (`WICK_PUBLIC_URL`).
    pub fn with_public_url(mut self, public_url: Option<String>) -> Self {
        self.public_url = public_url;
        self
    }

    pub fn chat(&self) -> &Chat {
        &self.app.chat
    }

    /// Turns share links on or off (`WICK_SHARING`; on by default).
    pub fn with_sharing(mut self, sharing: bool) -> Self {
        self.app.sharing = sharing;
        self
    }
}

/// A local GGUF model, loaded onto its worker thread(s).
async fn local_model(
    config: &Config,
    defaults: &inference::Params,
    id: String,
    // `None`: the file's name written for reading.
    name: Option<String>,
    path: &std::path::Path,
    queue_depth: Option<usize>,
) -> Result<Model, ServerError> {
    inference::LocalModel::open(path)?;
    let path = path.to_owned();
    let engine_config = inference::EngineConfig {
        threads: config.threads,
        max_prompt_tokens: config.max_prompt_tokens as usize,
        parallel: config.parallel as usize,
        kv_cache_bytes: config.kv_cache_mb.map(|mb| mb as usize * 1024 * 1024),
        kv_cache_idle: (config.kv_cache_idle_secs > 0)
            .then(|| std::time::Duration::from_secs(config.kv_cache_idle_secs)),
    };
    let engine =
        tokio::task::spawn_blocking(move || inference::LocalEngine::load(&path, engine_config))
            .await??;
    let context_length = engine.info().context_length;
    let name = name.unwrap_or_else(|| inference::LocalModel::display_name(&id));
    let params = inference::Params {
        // Small models loop without it.
        repetition_penalty: 1.1,
        ..defaults.clone()
    };
    Ok(Model::new(
        id,
        name,
        ModelKind::Local,
        Arc::new(engine),
        params,
        queue_depth.unwrap_or(config.queue_depth as usize),
        Some(context_length),
    ))
}

/// Every model of the models file, in its order.
async fn models_from_file(
    config: &Config,
    defaults: &inference::Params,
    path: &std::path::Path,
    file: models_file::ModelsFile,
) -> Result<Vec<Model>, ServerError> {
    use models_file::{BackendKind, ModelsFileError};
    let mut models = Vec::new();
    for (index, entry) in file.models.into_iter().enumerate() {
        let fail = |detail: String| ModelsFileError::Entry {
            path: path.to_owned(),
            entry: entry.label(index),
            detail,
        };
        let model = match entry.backend {
            BackendKind::Local => {
                let gguf = entry.path.clone().unwrap_or_default();
                let mut model = local_model(
                    config,
                    defaults,
                    entry.id.clone(),
                    entry.name.clone(),
                    &gguf,
                    entry.queue_depth,
                )
                .await
                .map_err(|e| fail(e.to_string()))?;
                model.params = entry.params(&model.params).map_err(fail)?;
                model
            }
            BackendKind::Openai | BackendKind::Tgi => {
                let params = entry.params(defaults).map_err(fail)?;
                let remote = entry
                    .remote_config(|var| std::env::var(var).ok())
                    .map_err(fail)?;
                let backend = if entry.backend == BackendKind::Openai {
                    inference::remote::RemoteBackend::openai(remote)
                } else {
                    let template = inference::template::ChatTemplate::new(
                        entry.chat_template.clone(),
                        entry.bos_token.clone().unwrap_or_default(),
                        entry.eos_token.clone().unwrap_or_default(),
                    )
                    .map_err(|e| fail(format!("field `chat_template`: {e}")))?;
                    inference::remote::RemoteBackend::tgi(remote, template)
                }
                .map_err(|e| fail(e.to_string()))?;
                let mut model = Model::new(
                    entry.id.clone(),
                    entry.display_name(),
                    if entry.backend == BackendKind::Openai {
                        ModelKind::OpenAi
                    } else {
                        ModelKind::Tgi
                    },
                    Arc::new(backend),
                    params,
                    entry.queue_depth.unwrap_or(config.queue_depth as usize),
                    entry.context_length,
                );
                if entry.continue_final_message {
                    model.can_continue = true;
                }
                model
            }
        };
        tracing::info!(id = %model.id, backend = model.kind.as_str(), "model ready");
        models.push(model);
    }
    Ok(models)
}

/// Wick's own routes besides the Leptos pages and server functions, as a
/// table: the router is built from it, and the ownership test walks it, so
/// a route added here without an entry in that test fails the test.
pub fn route_table() -> Vec<(&'static str, axum::routing::MethodRouter<ServerState>)> {
    vec![
        ("/health", get(health::health)),
        ("/metrics", get(metrics::metrics)),
        ("/auth/sign-in", post(accounts::sign_in)),
        ("/auth/sign-up", post(accounts::sign_up)),
        ("/auth/sign-out", post(accounts::sign_out)),
        (
            "/auth/sign-out-everywhere",
            post(accounts::sign_out_everywhere),
        ),
        ("/auth/password", post(accounts::change_password)),
        ("/auth/oidc/start", get(oidc::start)),
        ("/auth/oidc/callback", get(oidc::callback)),
        ("/settings/tokens", post(accounts::create_token)),
        ("/settings/tokens/revoke", post(accounts::revoke_token)),
        ("/api/messages/{id}/stream", get(stream::reply_stream)),
        ("/export.json", get(transfer::export_all)),
        ("/c/{id}/export.md", get(transfer::export_markdown)),
        ("/c/{id}/export.json", get(transfer::export_conversation)),
        (
            "/import",
            post(transfer::import).layer(DefaultBodyLimit::max(transfer::IMPORT_BODY_LIMIT)),
        ),
        ("/v1/models", get(api::openai::models)),
        ("/v1/chat/completions", post(api::openai::chat_completions)),
        ("/models/{*model_id}", post(api::tgi::model)),
        ("/generate", post(api::tgi::generate)),
        ("/generate_stream", post(api::tgi::generate_stream)),
        ("/info", get(api::tgi::info)),
        ("/openapi.json", get(api::openapi::document)),
    ]
    .into_iter()
    .chain(admin::routes())
    .collect()
}

fn own_routes() -> Router<ServerState> {
    route_table()
        .into_iter()
        .fold(Router::new(), |router, (path, route)| {
            router.route(path, route)
        })
}

/// All of Wick's routes: the Leptos pages and server functions, the table
/// above, and the built site's files.
pub fn router(state: ServerState) -> Router {
    metrics::handle();
    let routes = generate_route_list(App);
    let app_state = state.app.clone();
    let fallback_state = state.app.clone();
    let leptos = state.leptos.clone();
    // The built wasm, JS and CSS, with their modification time. A file whose
    // name carries its content's hash (`wick.<hash>.wasm`, a release build)
    // never changes: browsers keep it for a year without asking. Others are
    // checked again on each use (If-Modified-Since, 304 Not Modified while
    // nothing changed). Compressed (brotli or gzip) by the layer below like
    // every answer.
    let pkg = format!("{}/{}", state.leptos.site_root, state.leptos.site_pkg_dir);
    let pkg = Router::new()
        .nest_service("/pkg", tower_http::services::ServeDir::new(pkg))
        .layer(axum::middleware::from_fn(site_file_caching));
    Router::new()
        .merge(pkg)
        .merge(own_routes())
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(app_state.clone());
                app::note_page_nonce();
            },
            move || shell(leptos.clone()),
        )
        // Files of the built site, else the app's own 404 page (which needs the state too).
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            ServerState,
            _,
        >(
            move || {
                provide_context(fallback_state.clone());
                app::note_page_nonce();
            },
            shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            accounts::require_sign_in,
        ))
        .layer(axum::middleware::from_fn(protect::drop_foreign_error_text))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            protect::same_origin_only,
        ))
        .layer(axum::middleware::from_fn(protect::security_headers))
        .layer(axum::middleware::map_response(
            server_fn_errors::bad_arguments_are_400,
        ))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn(metrics::count_requests))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(logging::request_span)
                .on_response(logging::answered)
                .on_failure(logging::failed),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            proxy::client_address,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            logging::request_id,
        ))
        .with_state(state)
}

/// Binds `config.addr` (port 0 picks a free port).
/// The database alone, for the commands that need nothing else (`wick token`, `wick user`).
pub async fn open_database(config: &Config) -> Result<sqlx::SqlitePool, ServerError> {
    wick_core::db::open(&config.database_url)
        .await
        .map_err(|source| config.store_error(source))
}

impl Config {
    /// A store error, with the database it happened in.
    pub fn store_error(&self, source: wick_core::StoreError) -> ServerError {
        ServerError::Database {
            url: self.database_url.clone(),
            source,
        }
    }
}

pub async fn bind(config: &Config) -> Result<TcpListener, ServerError> {
    TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })
}

/// Serves Wick on `listener` under `limits` until `shutdown` resolves, then
/// finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    limits: listen::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let generations = state.chat().generations().clone();
    // At the signal, accepting stops at once; the replies running get
    // `shutdown_grace` to finish, and those still running then are stopped
    // (saved as interrupted, their streams ended with a final event), so
    // the open streams close and the connections can.
    let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
    let grace = limits.shutdown_grace;
    let drained = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_accepting.send(());
        generations.drain(grace).await;
    });
    let stopped = async move {
        let _ = stopped.await;
    };
    // Header timeout and connection cap: see `listen`.
    listen::serve_connections(listener, router(state), limits, stopped)
        .await
        .map_err(ServerError::Serve)?;
    // Replies nobody is reading hold no connection open: they are finished
    // (or stored interrupted) before this returns and the process exits.
    drained.await.map_err(ServerError::Thread)?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing the replies and requests in flight");
}

/// `Cache-Control` of a site file: kept for good under its hashed name,
/// checked again on each use under a plain one.
async fn site_file_caching(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let hashed = is_hashed_name(request.uri().path());
    let mut response = next.run(request).await;
    let value = if hashed && response.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static(value),
    );
    response
}

/// `wick.<hash>.wasm`: the name a release build gives its files (three
/// parts, the middle one a long run of letters, digits, `-` and `_`).
fn is_hashed_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 3
        && parts[1].len() >= 16
        && parts[1]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

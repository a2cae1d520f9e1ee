use std::io::Write;

use clap::Parser;
use inference::{
    Backend, ChatMessage, EngineConfig, Event, GenerationRequest, LocalEngine, Params, Prompt,
};
use server::config::{Cli, Command, GenerateArgs};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    server::logging::init(&config);
    // Before the database opens, so its first statements are timed too.
    server::metrics::handle();

    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Token(command) => server::tokens::run(&config, command).await,
        Command::User(command) => server::users::run(&config, command).await,
        Command::Backup { to } => server::backups::backup(&config, &to).await,
        Command::Restore { from } => server::backups::restore(&config, &from).await,
        Command::Generate(args) => {
            let model = config.model.clone();
            let threads = config.threads;
            tokio::task::spawn_blocking(move || generate(&model, threads, args))
                .await
                .unwrap_or_else(|e| Err(server::ServerError::Thread(e)))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wick: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: server::Config) -> Result<(), server::ServerError> {
    // Held while serving: `wick restore` never swaps the file under a server.
    let _lock = server::backups::lock(&config)?;
    let state = server::prepare(&config).await?;
    let listener = server::bind(&config).await?;
    let addr = listener.local_addr().map_err(server::ServerError::Serve)?;
    tracing::info!(model = %config.model.display(), database = %config.database_url, "Wick is ready");
    println!("Wick is serving the chat at http://{addr}");
    let limits = config.connection_limits();
    server::serve(listener, state, limits, server::shutdown_signal()).await
}

/// `wick generate`: stream one reply to stdout, then the speeds to stderr like
/// llama.cpp's CLI does.
fn generate(
    model: &std::path::Path,
    threads: usize,
    args: GenerateArgs,
) -> Result<(), server::ServerError> {
    let loading = std::time::Instant::now();
    let engine = LocalEngine::load(
        model,
        EngineConfig {
            threads,
            ..EngineConfig::default()
        },
    )?;
    let info = engine.info().clone();
    eprintln!(
        "model: {} ({:?}, context {} tokens, {} threads), loaded in {:.2} s",
        info.name,
        info.architecture,
        info.context_length,
        info.threads,
        loading.elapsed().as_secs_f64()
    );
    let prompt = if args.raw {
        Prompt::Raw(args.prompt)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = args.system {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", args.prompt));
        Prompt::Chat(messages)
    };
    let request = GenerationRequest {
        prompt,
        params: Params {
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: args.top_k,
            max_new_tokens: args.max_new_tokens,
            seed: args.seed,
            ignore_eos: args.ignore_eos,
            ..Params::default()
        },
        drop_old_turns: false,
        continue_final: false,
        priority: inference::Priority::Normal,
    };
    let mut generation = engine.generate(request)?;
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = generation.blocking_next() {
        match event {
            Event::Prefill { .. } | Event::Waiting { .. } => {}
            Event::Token { text, .. } => {
                let _ = stdout.write_all(text.as_bytes());
                let _ = stdout.flush();
            }
            Event::Done { finish, usage } => {
                let _ = writeln!(stdout);
                let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
                eprintln!(
                    "prompt: {} tokens in {:.2} s ({:.1} tok/s); decode: {} tokens in {:.2} s ({:.1} tok/s); finish: {}",
                    usage.prompt_tokens,
                    usage.prompt_seconds,
                    rate(usage.prompt_tokens, usage.prompt_seconds),
                    usage.completion_tokens,
                    usage.decode_seconds,
                    rate(usage.completion_tokens, usage.decode_seconds),
                    finish.as_str()
                );
                return Ok(());
            }
            Event::Error(e) => return Err(server::ServerError::Generation(e)),
        }
    }
    // A generation always ends with `Done` or `Error`; this is only a safe default.
    Err(server::ServerError::Generation(
        inference::Failure::internal("the generation ended without its final event"),
    ))
}

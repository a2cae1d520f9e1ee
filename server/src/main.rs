use clap::Parser;
use server::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        // Logs on stderr; stdout carries only the "serving at" line that scripts can read.
        .with_writer(std::io::stderr)
        .init();

    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
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
    let state = server::prepare(&config).await?;
    let listener = server::bind(&config).await?;
    let addr = listener.local_addr().map_err(server::ServerError::Serve)?;
    tracing::info!(model = %config.model.display(), database = %config.database_url, "Wick is ready");
    println!("Wick is serving the chat at http://{addr}");
    server::serve(listener, state, server::shutdown_signal()).await
}

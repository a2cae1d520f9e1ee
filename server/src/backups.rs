//! `wick backup --to FILE` and `wick restore --from FILE`, and the lock a
//! serving Wick holds on its database file.

use std::path::Path;

use wick_core::db::backup::{self, BackupError, ServerLock};

use crate::{Config, ServerError};

/// The database file of `config`, for the commands that need a file.
fn database_file(config: &Config) -> Result<Option<std::path::PathBuf>, ServerError> {
    backup::database_file(&config.database_url).map_err(|source| config.store_error(source))
}

/// The serving lock on the database file (none for an in-memory database).
pub fn lock(config: &Config) -> Result<Option<ServerLock>, ServerError> {
    match database_file(config)? {
        Some(file) => {
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                // The database (and so its lock) may live in a folder still to be made.
                let _ = std::fs::create_dir_all(dir);
            }
            Ok(Some(backup::lock(&file)?))
        }
        None => Ok(None),
    }
}

pub async fn backup(config: &Config, to: &Path) -> Result<(), ServerError> {
    let pool = crate::open_database(config).await?;
    backup::backup(&pool, to).await?;
    pool.close().await;
    let version = backup::check(to).await?;
    eprintln!(
        "Backed up {} to {} (schema version {version}, integrity check ok).",
        config.database_url,
        to.display()
    );
    Ok(())
}

pub async fn restore(config: &Config, from: &Path) -> Result<(), ServerError> {
    let file = database_file(config)?.ok_or(BackupError::NoFile)?;
    let kept = backup::restore(&file, from).await?;
    eprintln!("Restored {} from {}.", file.display(), from.display());
    if let Some(kept) = kept {
        eprintln!("The database it replaced is kept as {}.", kept.display());
    }
    Ok(())
}

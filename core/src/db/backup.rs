//! Copies of the database: `wick backup` (a consistent copy while Wick
//! serves, by SQLite's `VACUUM INTO`), `wick restore` (after checking the
//! copy, and never under a running server), and the snapshot taken before
//! new migrations are applied at start-up, so an upgrade can be undone.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqlitePool};

use super::{now_ms, StoreError};

/// How many start-up snapshots are kept (the newest).
pub const KEEP_SNAPSHOTS: usize = 3;

/// Why a backup or a restore did nothing.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists; choose a new file name (a backup never overwrites a file)")]
    Exists(PathBuf),
    #[error("{0} does not exist")]
    Missing(PathBuf),
    #[error("{path} is not a usable Wick database: {why}")]
    NotWick { path: PathBuf, why: String },
    #[error("{path} was made by a newer Wick (schema version {found}; this one knows up to {known}); upgrade Wick first")]
    Newer {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("a Wick server is using {0}; stop it before restoring")]
    InUse(PathBuf),
    #[error("the database URL names no file (restoring needs one)")]
    NoFile,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Store(e.into())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The newest schema version this Wick knows (its last migration).
pub fn known_version() -> i64 {
    super::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The database file a URL names (`None` for an in-memory database).
pub fn database_file(url: &str) -> Result<Option<PathBuf>, StoreError> {
    let options = SqliteConnectOptions::from_str(url).map_err(|source| StoreError::BadUrl {
        url: url.to_owned(),
        source,
    })?;
    let file = options.get_filename();
    Ok((!file.as_os_str().is_empty() && file != Path::new(":memory:")).then(|| file.to_owned()))
}

/// Writes a consistent copy of the database to `to` (a new file), while
/// others keep reading and writing it.
pub async fn backup(pool: &SqlitePool, to: &Path) -> Result<(), BackupError> {
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    sqlx::query("VACUUM INTO ?")
        .bind(to.to_string_lossy().as_ref())
        .execute(pool)
        .await?;
    Ok(())
}

/// Checks that `path` is a whole Wick database this Wick can use: SQLite's
/// integrity check passes and its schema is not newer than this Wick's.
/// Returns its schema version.
pub async fn check(path: &Path) -> Result<i64, BackupError> {
    if !path.exists() {
        return Err(BackupError::Missing(path.to_owned()));
    }
    let not_wick = |why: String| BackupError::NotWick {
        path: path.to_owned(),
        why,
    };
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| not_wick(e.to_string()))?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| not_wick(e.to_string()))?;
    if verdict != "ok" {
        return Err(not_wick(format!("the integrity check says {verdict:?}")));
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .map_err(|_| not_wick("it has no Wick schema".to_owned()))?;
    conn.close().await?;
    let version = version.ok_or_else(|| not_wick("it has no Wick schema".to_owned()))?;
    if version > known_version() {
        return Err(BackupError::Newer {
            path: path.to_owned(),
            found: version,
            known: known_version(),
        });
    }
    Ok(version)
}

/// The lock a serving Wick holds on its database (a `.lock` file beside
/// it), so that `wick restore` never swaps the file under it.
pub struct ServerLock {
    _file: File,
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the database's lock for as long as the value lives; `InUse` when
/// another process holds it.
pub fn lock(database: &Path) -> Result<ServerLock, BackupError> {
    let path = lock_path(database);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(ServerLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::InUse(database.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
    }
}

/// Replaces the database at `database` by the checked copy `from`. The
/// database it replaces is kept beside it (`….replaced-<ms>`), and a server
/// using it refuses the restore. Returns where the old one went.
pub async fn restore(database: &Path, from: &Path) -> Result<Option<PathBuf>, BackupError> {
    let _lock = lock(database)?;
    check(from).await?;
    let with_suffix = |suffix: &str| {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    // The copy is written beside the database and renamed over it: the
    // database is at every moment either the old one or the whole new one.
    let incoming = with_suffix(".restoring");
    std::fs::copy(from, &incoming).map_err(io(&incoming))?;
    File::open(&incoming)
        .and_then(|f| f.sync_all())
        .map_err(io(&incoming))?;
    let kept = if database.exists() {
        let kept = with_suffix(&format!(".replaced-{}", now_ms()));
        std::fs::rename(database, &kept).map_err(io(database))?;
        Some(kept)
    } else {
        None
    };
    // The old database's write-ahead log belongs to it, not to the copy.
    for suffix in ["-wal", "-shm"] {
        let side = with_suffix(suffix);
        if side.exists() {
            std::fs::remove_file(&side).map_err(io(&side))?;
        }
    }
    std::fs::rename(&incoming, database).map_err(io(database))?;
    Ok(kept)
}

/// Before migrations that the database has not had yet are applied: a
/// snapshot (`<database>.pre-v<version>-<ms>`), keeping the newest
/// [`KEEP_SNAPSHOTS`]. Nothing for a new or up-to-date database.
pub async fn snapshot_before_migrating(
    pool: &SqlitePool,
    database: &Path,
) -> Result<Option<PathBuf>, BackupError> {
    let applied: Option<i64> =
        match sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
        {
            Ok(v) => v,
            // No migrations table: a new database, nothing to keep.
            Err(_) => return Ok(None),
        };
    let Some(applied) = applied else {
        return Ok(None);
    };
    if applied >= known_version() {
        return Ok(None);
    }
    let mut name = database.as_os_str().to_owned();
    name.push(format!(".pre-v{applied}-{}", now_ms()));
    let snapshot = PathBuf::from(name);
    backup(pool, &snapshot).await?;
    // The newest few stay: names sort by version, then time.
    let dir = database
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = format!(
        "{}.pre-v",
        database
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let mut snapshots: Vec<(i64, i64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix)?;
            let (version, at) = rest.split_once('-')?;
            Some((version.parse().ok()?, at.parse().ok()?, e.path()))
        })
        .collect();
    snapshots.sort();
    let excess = snapshots.len().saturating_sub(KEEP_SNAPSHOTS);
    for (_, _, old) in snapshots.into_iter().take(excess) {
        std::fs::remove_file(&old).map_err(io(&old))?;
    }
    Ok(Some(snapshot))
}

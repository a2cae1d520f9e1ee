//! What the in-process tests share: a chat over a fresh SQLite file with
//! one scripted model, `fake`.

use std::sync::Arc;

use inference::scripted::{ScriptedBackend, Step};
use inference::Params;
use wick_core::{Chat, ChatSettings, Generations, Model, ModelKind, Models};

pub struct Fixture {
    pub chat: Chat,
    pub backend: ScriptedBackend,
    _dir: tempfile::TempDir,
}

/// A chat whose model (queue depth `depth`) answers `script` unless a test
/// pushes another; replies are sampled with seed 7.
pub async fn fixture_with(script: Vec<Step>, depth: usize, settings: ChatSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wick.db", dir.path().display());
    let pool = wick_core::db::open(&url).await.unwrap();
    let backend = ScriptedBackend::new(script);
    let model = Model::new(
        "fake",
        "Fake model",
        ModelKind::Local,
        Arc::new(backend.clone()),
        Params::default(),
        depth,
        Some(4096),
    );
    let generations = Generations::new(
        Models::new(vec![model]),
        pool.clone(),
        ChatSettings {
            seed: Some(7),
            ..settings
        },
    );
    Fixture {
        chat: Chat::new(pool, generations),
        backend,
        _dir: dir,
    }
}

//! Wick's inference APIs through real client libraries (OpenAI's `openai`,
//! Hugging Face's `huggingface_hub`) and the Hugging Face docs' snippets
//! (Python `requests`, JavaScript `fetch`, cURL), run unchanged but for the
//! address and token. `make clients` installs the libraries into
//! `.venv-clients`; `end2end/clients/test_clients.py` holds the calls.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{start_with, wick_cli};

#[tokio::test]
async fn openai_and_hugging_face_clients_work_against_wick() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-clients/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make clients` (make test does) to install the client libraries",
        python.display()
    );
    let s = start_with(&["--max-new-tokens", "64"]).await;
    // A token made the way a user makes one.
    let token = wick_cli(&s, &["token", "create", "--name", "client libraries"])
        .trim()
        .to_owned();

    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(root.join("end2end/clients/test_clients.py"))
            .env("WICK_BASE", base)
            .env("WICK_TOKEN", token)
            .env("WICK_MODEL", "SmolLM2-135M-Instruct.Q4_1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    println!("{report}");
    assert!(out.status.success(), "client tests failed:\n{report}");
    assert!(report.contains("Ran 13 tests"), "{report}");
}

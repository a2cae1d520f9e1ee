//! `wick generate`, the command-line way to the local model.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn generate_streams_a_reply_and_reports_speeds() {
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_wick"))
        .arg("generate")
        .arg("--model")
        .arg(&model)
        .args(["--prompt", "What is the capital of France?"])
        .args([
            "--temperature",
            "0",
            "--max-new-tokens",
            "12",
            "--seed",
            "1",
        ])
        .output()
        .expect("run wick generate");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.trim().len() > 5, "a reply on stdout: {stdout:?}");
    assert!(stderr.contains("loaded in"), "{stderr}");
    assert!(
        stderr.contains("prompt: ") && stderr.contains("decode: ") && stderr.contains("tok/s"),
        "{stderr}"
    );
}

#[test]
fn bad_settings_are_refused_by_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_wick"))
        .args(["--max-new-tokens", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--max-new-tokens"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_wick"))
        .args(["--temperature", "9", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("temperature"), "{stderr}");
}

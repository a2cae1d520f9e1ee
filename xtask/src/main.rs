//! `cargo xtask build`: what `make run` and `make test` build, without
//! cargo-leptos (which takes 20 minutes to install on a small machine).
//!
//! 1. The browser's part: the `app` crate for `wasm32-unknown-unknown` with
//!    the `hydrate` feature and the small `wasm-release` profile; then
//!    wasm-bindgen (its library, here) makes the JS glue; binaryen's
//!    `wasm-opt -Oz` (npm) shrinks the wasm; esbuild (npm) minifies the JS
//!    and the stylesheet.
//! 2. The files are named by their content (`wick.<hash>.wasm`, `.js`,
//!    `.css`) in `target/site/pkg`, the hashes written to
//!    `target/release/hash.txt`, which the server reads to link them, so
//!    browsers may keep them for good. `public/` is copied to `target/site`.
//! 3. The server: `cargo build --release -p server --bin wick`.
//!
//! Every step whose outputs are newer than its inputs is skipped, so a build
//! with nothing changed costs two cargo no-ops. The commands are those
//! cargo-leptos runs (same packages, profiles and target directories), so
//! `cargo leptos watch` still works for development and shares their caches.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime};

use base64::Engine;
use sha2::{Digest, Sha256};

/// The name of the built files, as the server links them (`LEPTOS_OUTPUT_NAME`).
const OUTPUT_NAME: &str = "wick";
/// cargo-leptos's target directory for the browser's build.
const FRONT_TARGET: &str = "target/front";
const SITE: &str = "target/site";

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build(),
        _ => Err("usage: cargo xtask build   (the release server and the browser's files)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository's root (this crate lives in `xtask/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_owned()
}

fn build() -> Result<()> {
    let root = root();
    std::env::set_current_dir(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let started = Instant::now();
    cargo(&[
        "build",
        "--package=app",
        "--lib",
        &format!("--target-dir={FRONT_TARGET}"),
        "--target=wasm32-unknown-unknown",
        "--no-default-features",
        "--features=hydrate",
        "--profile=wasm-release",
    ])?;
    let wasm = PathBuf::from(FRONT_TARGET).join("wasm32-unknown-unknown/wasm-release/app.wasm");
    let pkg = PathBuf::from(SITE).join("pkg");
    let staged = PathBuf::from(FRONT_TARGET).join("site");
    let stamp = staged.join("built");
    let style = PathBuf::from("style/main.css");
    if newer(&[&wasm, &style, Path::new("package-lock.json")], &stamp)? {
        front(&wasm, &style, &staged)?;
        publish(&staged, &pkg)?;
        std::fs::write(&stamp, b"").map_err(|e| format!("{}: {e}", stamp.display()))?;
    } else if !pkg.is_dir() {
        publish(&staged, &pkg)?;
    }
    copy_public()?;
    cargo(&[
        "build",
        "--package=server",
        "--bin=wick",
        "--no-default-features",
        "--release",
    ])?;
    eprintln!(
        "xtask: built in {:.1} s: target/release/wick and {SITE}/",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// wasm-bindgen, wasm-opt and esbuild, into `staged` (unhashed names).
fn front(wasm: &Path, style: &Path, staged: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(staged);
    let bindgen_dir = staged.join("bindgen");
    std::fs::create_dir_all(&bindgen_dir).map_err(|e| e.to_string())?;
    eprintln!("xtask: wasm-bindgen (library) on {}", wasm.display());
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(wasm)
        .out_name(OUTPUT_NAME)
        .web(true)
        .map_err(|e| e.to_string())?
        .typescript(false)
        .generate(&bindgen_dir)
        .map_err(|e| format!("wasm-bindgen: {e:#}"))?;
    let bound = bindgen_dir.join(format!("{OUTPUT_NAME}_bg.wasm"));
    let out_wasm = staged.join(format!("{OUTPUT_NAME}.wasm"));
    eprintln!("xtask: wasm-opt -Oz");
    run(
        Command::new("node_modules/.bin/wasm-opt")
            .args([
                "-Oz",
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
            ])
            .arg(&bound)
            .arg("-o")
            .arg(&out_wasm),
        "node_modules/.bin/wasm-opt (binaryen; `make npm-deps` installs it)",
    )?;
    eprintln!("xtask: esbuild --minify (JS and CSS)");
    let js = bindgen_dir.join(format!("{OUTPUT_NAME}.js"));
    esbuild(
        &js,
        &staged.join(format!("{OUTPUT_NAME}.js")),
        &["--format=esm"],
    )?;
    // Vendor prefixes for the browsers of the last few years (Safari's
    // `-webkit-user-select`, …).
    esbuild(
        style,
        &staged.join(format!("{OUTPUT_NAME}.css")),
        &["--target=chrome109,edge109,firefox115,safari15.6"],
    )?;
    Ok(())
}

fn esbuild(input: &Path, output: &Path, extra: &[&str]) -> Result<()> {
    run(
        Command::new("node_modules/.bin/esbuild")
            .arg(input)
            .arg("--minify")
            .arg("--log-level=warning")
            .args(extra)
            .arg(format!("--outfile={}", output.display())),
        "node_modules/.bin/esbuild (`make npm-deps` installs it)",
    )
}

/// Copies the staged files into `pkg` under names that carry their
/// content's hash, removes the older ones, and writes `hash.txt` beside the
/// server's binary.
fn publish(staged: &Path, pkg: &Path) -> Result<()> {
    std::fs::create_dir_all(pkg).map_err(|e| e.to_string())?;
    let mut hashes = Vec::new();
    let mut keep = Vec::new();
    for ext in ["js", "wasm", "css"] {
        let from = staged.join(format!("{OUTPUT_NAME}.{ext}"));
        let bytes = std::fs::read(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        let digest = Sha256::digest(&bytes);
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
        let name = format!("{OUTPUT_NAME}.{hash}.{ext}");
        std::fs::write(pkg.join(&name), &bytes).map_err(|e| format!("{name}: {e}"))?;
        hashes.push(format!("{ext}: {hash}"));
        keep.push(name);
    }
    // The folder holds this build's files only (older builds' names go).
    for entry in std::fs::read_dir(pkg).map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let hash_file = Path::new("target/release/hash.txt");
    std::fs::create_dir_all("target/release").map_err(|e| e.to_string())?;
    std::fs::write(hash_file, hashes.join("\n") + "\n").map_err(|e| e.to_string())?;
    Ok(())
}

/// `public/*` into the site's root (the favicon), when changed.
fn copy_public() -> Result<()> {
    let Ok(entries) = std::fs::read_dir("public") else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let to = Path::new(SITE).join(entry.file_name());
        if entry.path().is_file() && newer(&[&entry.path()], &to)? {
            std::fs::copy(entry.path(), &to).map_err(|e| format!("{}: {e}", to.display()))?;
        }
    }
    Ok(())
}

/// Whether any of `inputs` is newer than `output` (or `output` is missing).
fn newer(inputs: &[&Path], output: &Path) -> Result<bool> {
    let modified =
        |p: &Path| -> Option<SystemTime> { p.metadata().and_then(|m| m.modified()).ok() };
    let Some(out) = modified(output) else {
        return Ok(true);
    };
    for input in inputs {
        let at = modified(input).ok_or_else(|| format!("{} is missing", input.display()))?;
        if at > out {
            return Ok(true);
        }
    }
    Ok(false)
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo).args(args), "cargo")
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

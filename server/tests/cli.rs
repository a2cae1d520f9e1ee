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

/// `wick user …` against a fresh database file: the first admin, with the
/// password piped in; what is refused and why; list, set-role, disable.
#[test]
fn user_commands_create_the_first_admin_and_manage_accounts() {
    use std::io::Write;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wick.db", dir.path().display());
    let wick = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wick"))
            .env("WICK_DATABASE_URL", &url)
            .arg("user")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };

    let (ok, _, err) = wick(
        &[
            "create",
            "--email",
            "Admin@Example.org",
            "--name",
            "Ada",
            "--admin",
        ],
        "tea kettle on the hill\n",
    );
    assert!(ok, "{err}");
    assert!(err.contains("<admin@example.org>, role admin"), "{err}");

    // Refused, each with its reason, and nothing stored.
    let (ok, _, err) = wick(
        &["create", "--email", "admin@example.org"],
        "another good password\n",
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = wick(&["create", "--email", "bob@example.org"], "short\n");
    assert!(!ok && err.contains("at least 10"), "{err}");
    let (ok, _, err) = wick(&["create", "--email", "bob@example.org"], "qwertyuiop\n");
    assert!(!ok && err.contains("most common"), "{err}");
    let (ok, _, err) = wick(
        &["create", "--email", "not an email"],
        "tea kettle on the hill\n",
    );
    assert!(!ok && err.contains("not an email address"), "{err}");
    let (ok, _, err) = wick(
        &["create", "--email", "bob@example.org", "--role", "root"],
        "",
    );
    assert!(!ok && err.contains("not a role"), "{err}");

    let (ok, _, err) = wick(
        &["create", "--email", "bob@example.org", "--role", "pending"],
        "bob's own long password\n",
    );
    assert!(ok, "{err}");
    let (_, list, _) = wick(&["list"], "");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].contains("admin@example.org\tAda\tadmin\tregistered")
            && lines[0].ends_with("active"),
        "{list}"
    );
    assert!(lines[1].contains("bob@example.org\t-\tpending"), "{list}");

    let (ok, _, err) = wick(&["set-role", "BOB@example.org", "user"], "");
    assert!(ok, "{err}");
    let (ok, _, err) = wick(&["disable", "bob@example.org"], "");
    assert!(ok, "{err}");
    let (_, list, _) = wick(&["list"], "");
    assert!(
        list.lines()
            .nth(1)
            .unwrap()
            .contains("\tuser\tregistered\tcreated ")
            && list.contains("disabled "),
        "{list}"
    );
    let (ok, _, err) = wick(&["disable", "carol@example.org"], "");
    assert!(
        !ok && err.contains("there is no user \"carol@example.org\""),
        "{err}"
    );
}

/// `wick backup` while a real server streams a reply, and `wick restore`,
/// which that server's lock refuses until it stops; the restored database
/// has the conversation that was streaming.
#[tokio::test]
async fn backup_works_while_a_reply_streams_and_restore_waits_for_the_server_to_stop() {
    use app::api::SendMessage;
    use leptos::server_fn::ServerFn;
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wick.db", dir.path().display());
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let wick = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wick"))
            .args(args)
            .env("WICK_DATABASE_URL", &url)
            .env("WICK_MODEL", &model)
            .output()
            .unwrap()
    };
    let mut server = Command::new(env!("CARGO_BIN_EXE_wick"))
        .args(["--addr", "127.0.0.1:0", "--max-new-tokens", "400"])
        .env("WICK_DATABASE_URL", &url)
        .env("WICK_MODEL", &model)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("serving the chat"), "{line}");
    let base = line.trim().rsplit(' ').next().unwrap().to_owned();

    // A reply is streaming (its first token has come) when the backup is made.
    let me = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let sent = me
        .post(format!("{base}{}", SendMessage::url()))
        .form(&[("content", "Tell me a long story about backups.")])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let sent: wick_types::Sent = sent.json().await.unwrap();
    let mut stream = me
        .get(format!(
            "{base}{}",
            wick_types::reply::stream_url(&sent.message_id)
        ))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("event: token") {
        let chunk = stream.chunk().await.unwrap().expect("a first token");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }

    let copy = dir.path().join("backup.db");
    let out = wick(&["backup", "--to", copy.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("integrity check ok"), "{said}");
    let again = wick(&["backup", "--to", copy.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let out = wick(&["restore", "--from", copy.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("a Wick server is using"), "{said}");

    server.kill().unwrap();
    server.wait().unwrap();
    let out = wick(&["restore", "--from", copy.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("The database it replaced is kept as"),
        "{said}"
    );
    // The restored database holds the conversation that was streaming.
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let question: String = sqlx::query_scalar(
        "SELECT content FROM messages WHERE conversation_id = ? AND role = 'user'",
    )
    .bind(&sent.conversation_id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(question, "Tell me a long story about backups.");
    let reply: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE id = ?")
        .bind(&sent.message_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(reply, 1, "the reply's row is in the copy too");
    db.close().await.unwrap();
}

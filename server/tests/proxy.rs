//! Wick behind nginx (Debian's), with TLS, as `deploy/nginx/wick.conf` sets
//! it up: a reply streams through it token by token, the session cookie is
//! `Secure`, and `X-Forwarded-For` is believed from the trusted proxy only
//! (and then only the address nginx appended). Also: the systemd unit in
//! `deploy/systemd/` passes `systemd-analyze verify`.
//!
//! The addresses tell the parties apart on one machine: the client talks to
//! nginx from 127.0.0.3, nginx talks to Wick from 127.0.0.2 (the only
//! trusted proxy), and a client that talks to Wick directly comes from
//! 127.0.0.1.

mod common;

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::api::SendMessage;
use common::start_with_env;
use leptos::server_fn::ServerFn;
use reqwest::StatusCode;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &str, args: &[&str], dir: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test certificate authority and a certificate for 127.0.0.1 signed by
/// it, made with the openssl command; the CA's PEM.
fn certificates(dir: &Path) -> Vec<u8> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Wick test CA",
    ]);
    run("openssl", &ca, dir);
    let mut leaf = vec!["req"];
    leaf.extend(ec);
    leaf.extend([
        "-keyout",
        "privkey.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run("openssl", &leaf, dir);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "fullchain.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
        dir,
    );
    std::fs::read(dir.join("ca.pem")).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shipped server block with its placeholders replaced; each must be
/// there, so a change to the file that the README's steps no longer match
/// fails here.
fn site_config(port: u16, upstream: &str, dir: &Path) -> String {
    let shipped = std::fs::read_to_string(repo().join("deploy/nginx/wick.conf")).unwrap();
    let mut config = shipped.clone();
    for (placeholder, value) in [
        ("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
        (
            "server_name chat.example.org;",
            "server_name 127.0.0.1;".to_owned(),
        ),
        (
            "/etc/ssl/wick/fullchain.pem",
            dir.join("fullchain.pem").display().to_string(),
        ),
        (
            "/etc/ssl/wick/privkey.pem",
            dir.join("privkey.pem").display().to_string(),
        ),
        (
            "proxy_pass http://127.0.0.1:3000;",
            format!("proxy_pass http://{upstream};"),
        ),
    ] {
        assert!(
            config.contains(placeholder),
            "deploy/nginx/wick.conf no longer has {placeholder:?}"
        );
        config = config.replace(placeholder, &value);
    }
    config
}

/// nginx in the foreground, one process, everything under `dir`.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx(dir: &Path, site: &str) -> Nginx {
    let main = format!(
        "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
         fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
         # nginx reaches Wick from its own address, the one Wick trusts.\n  proxy_bind 127.0.0.2;\n\
         {site}\n}}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, main).unwrap();
    let nginx = Command::new("nginx")
        .args([
            "-p",
            &dir.display().to_string(),
            "-c",
            &path.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx runs (Debian's nginx package; `make test` installs it)");
    Nginx(nginx)
}

/// The address a failed sign-in from `client` was recorded with.
async fn failed_sign_in_address(
    client: &reqwest::Client,
    url: &str,
    db_url: &str,
    email: &str,
) -> String {
    let r = client
        .post(url)
        .header("x-forwarded-for", "203.0.113.66")
        .form(&[("email", email), ("password", "not the password")])
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_redirection() || r.status().is_success(),
        "{}",
        r.status()
    );
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(db_url).await.unwrap();
    let address: Option<String> = sqlx::query_scalar(
        "SELECT address FROM audit_log WHERE action = 'sign_in_failed' AND target = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(email)
    .fetch_optional(&mut db)
    .await
    .unwrap()
    .flatten();
    db.close().await.unwrap();
    address.unwrap_or_else(|| panic!("no failed sign-in recorded for {email}"))
}

#[tokio::test]
async fn through_nginx_with_tls_replies_stream_cookies_are_secure_and_only_the_proxy_is_believed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path());
    let port = free_port();
    let public = format!("https://127.0.0.1:{port}");
    let wick = start_with_env(
        &["--max-new-tokens", "48", "--seed", "7"],
        &[
            ("WICK_PUBLIC_URL", &public),
            ("WICK_TRUSTED_PROXIES", "127.0.0.2"),
        ],
    )
    .await;
    let upstream = wick.base.trim_start_matches("http://").to_owned();
    let _nginx = nginx(dir.path(), &site_config(port, &upstream, dir.path()));

    let through_nginx = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .local_address("127.0.0.3".parse::<IpAddr>().unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // nginx is up once it answers.
    let started = Instant::now();
    loop {
        match through_nginx.get(format!("{public}/health")).send().await {
            Ok(r) if r.status() == StatusCode::OK => break,
            _ if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("nginx did not come up: {other:?}"),
        }
    }

    // A message sent over TLS: the session cookie is Secure.
    let sent = through_nginx
        .post(format!("{public}{}", SendMessage::url()))
        .header("origin", &public)
        .form(&[("content", "Write a short poem about the sea.")])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    let cookie = sent
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("wick_session="))
        .expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let request_id = sent.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        request_id.len() == 32 && request_id.chars().all(|c| c.is_ascii_hexdigit()),
        "nginx's $request_id reached Wick and came back: {request_id}"
    );
    let sent: wick_types::Sent = sent.json().await.unwrap();

    // The reply arrives in several pieces over time, not all at the end.
    let mut stream = through_nginx
        .get(format!(
            "{public}{}",
            wick_types::reply::stream_url(&sent.message_id)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let opened = Instant::now();
    let mut arrivals = Vec::new();
    let mut body = String::new();
    while let Some(chunk) = stream.chunk().await.unwrap() {
        let text = String::from_utf8_lossy(&chunk).into_owned();
        if text.contains("event: token") {
            arrivals.push(opened.elapsed());
        }
        body.push_str(&text);
    }
    assert!(body.contains("event: end"), "{body}");
    let tokens = body.matches("event: token").count();
    assert!(tokens >= 10, "{body}");
    assert!(
        arrivals.len() >= tokens / 2,
        "{tokens} tokens came in only {} pieces: nginx held the stream back",
        arrivals.len()
    );
    assert!(
        arrivals.last().unwrap().saturating_sub(arrivals[0]) > Duration::from_millis(50),
        "the pieces came over time: {arrivals:?}"
    );

    // Through nginx: the client's real address, not the one it claimed.
    let via_proxy = failed_sign_in_address(
        &through_nginx,
        &format!("{public}/auth/sign-in"),
        &wick.db_url,
        "first@example.org",
    )
    .await;
    assert_eq!(via_proxy, "127.0.0.3");
    // Straight to Wick, from a peer that is not a trusted proxy: its claim
    // is not believed either.
    let direct = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let claimed = failed_sign_in_address(
        &direct,
        &format!("{}/auth/sign-in", wick.base),
        &wick.db_url,
        "second@example.org",
    )
    .await;
    assert_eq!(claimed, "127.0.0.1");
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/wick.service")).unwrap();
    // `verify` checks that the program exists: this build's stands in for
    // the installed one.
    assert!(unit.contains("ExecStart=/usr/local/bin/wick\n"));
    let unit = unit.replace(
        "ExecStart=/usr/local/bin/wick\n",
        &format!("ExecStart={}\n", env!("CARGO_BIN_EXE_wick")),
    );
    let path = dir.path().join("wick.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", &path.display().to_string()])
        .output()
        .expect("systemd-analyze runs (Debian's systemd package)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // Unknown or misspelt settings are only warned about: none may be.
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify warned: {said}"
    );
}

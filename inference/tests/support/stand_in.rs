//! A stand-in for remote model servers, for behaviours no real server here
//! produces on demand (429, 503 while loading, a stream cut mid-way, vLLM's
//! flat errors). It answers each request with the next scripted reply, written
//! byte for byte as the real servers write them: HTTP/1.1, chunked, one chunk
//! per SSE event. Shared by the inference and server tests.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a reply ends.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// The terminating chunk: a complete response.
    Complete,
    /// The connection closes without the terminating chunk (a cut stream).
    Cut,
    /// Nothing more is sent; the connection stays open (an idle server).
    Hang,
}

/// One scripted response.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: &'static str,
    pub headers: Vec<(String, String)>,
    /// Body pieces, each sent as one chunk, `delay` apart.
    pub chunks: Vec<String>,
    pub delay: Duration,
    pub end: End,
}

impl Reply {
    /// A JSON body with the given status (`"429 Too Many Requests"`).
    pub fn json(status: &'static str, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![body.to_owned()],
            delay: Duration::ZERO,
            end: End::Complete,
        }
    }

    /// An event stream, one chunk per event (each given with its own line endings).
    pub fn events(content_type: &str, events: &[&str]) -> Self {
        Self {
            status: "200 OK",
            headers: vec![
                ("content-type".into(), content_type.to_owned()),
                ("cache-control".into(), "no-cache".into()),
            ],
            chunks: events.iter().map(|e| e.to_string()).collect(),
            delay: Duration::from_millis(5),
            end: End::Complete,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn ending(mut self, end: End) -> Self {
        self.end = end;
        self
    }

    pub fn every(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// What the stand-in saw.
#[derive(Default, Debug)]
pub struct Seen {
    /// Each request: the request line and headers, then the body.
    pub requests: Vec<(String, String)>,
    /// Set when writing to a client failed: it had closed the connection.
    pub client_left: bool,
}

pub struct StandIn {
    pub url: String,
    pub seen: Arc<Mutex<Seen>>,
}

impl StandIn {
    /// Serves `replies` in order on a loopback port (the last one repeats).
    pub async fn start(replies: Vec<Reply>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let reply = replies[n.min(replies.len() - 1)].clone();
                n += 1;
                tokio::spawn(answer(socket, reply, state.clone()));
            }
        });
        StandIn { url, seen }
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().requests.clone()
    }

    pub fn client_left(&self) -> bool {
        self.seen.lock().unwrap().client_left
    }
}

async fn answer(mut socket: TcpStream, reply: Reply, seen: Arc<Mutex<Seen>>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    seen.lock().unwrap().requests.push(request);
    let mut head = format!("HTTP/1.1 {}\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // One request per connection, so a scripted reply never lands on a reused one.
    head.push_str("connection: close\r\ntransfer-encoding: chunked\r\n\r\n");
    let mut ok = socket.write_all(head.as_bytes()).await.is_ok();
    for chunk in &reply.chunks {
        if !ok {
            break;
        }
        tokio::time::sleep(reply.delay).await;
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        ok = socket.write_all(framed.as_bytes()).await.is_ok() && socket.flush().await.is_ok();
    }
    match reply.end {
        End::Complete if ok => {
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
        End::Hang if ok => {
            // Hold the connection; notice when the client closes it.
            let mut buf = [0u8; 64];
            loop {
                match tokio::time::timeout(Duration::from_secs(60), socket.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        ok = false;
                        break;
                    }
                    Ok(Ok(_)) => continue,
                    Err(_) => break,
                }
            }
        }
        _ => {}
    }
    if !ok {
        seen.lock().unwrap().client_left = true;
    }
}

/// Reads one request: head up to the blank line, then `content-length` bytes.
async fn read_request(socket: &mut TcpStream) -> Option<(String, String)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&data[head_end..]).into_owned();
    Some((head, body))
}

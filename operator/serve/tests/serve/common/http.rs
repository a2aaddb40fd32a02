//! A small HTTP/1.1 client over a plain TCP stream: each request on its own connection, so a
//! test can also send a body in parts, or only its headers.

use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// No answer within this is a hang: the test fails instead of waiting.
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The protocol's error body: `{"error": "…"}`, with a JSON content type.
    pub fn error(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {self:?}"))
            .to_string()
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], None).await
}

pub async fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    post_raw(addr, path, body.to_string().as_bytes()).await
}

pub async fn post_raw(addr: SocketAddr, path: &str, body: &[u8]) -> Reply {
    send(addr, "POST", path, body, Some(body.len())).await
}

/// A request of the binary tensor data extension: `json`, then `binary`, with the header that
/// says where the JSON ends, and no `Content-Type` (as `tritonclient` sends it).
pub async fn post_binary(addr: SocketAddr, path: &str, json: &Value, binary: &[u8]) -> Reply {
    let json = json.to_string();
    let mut body = json.clone().into_bytes();
    body.extend_from_slice(binary);
    tokio::time::timeout(TIMEOUT, async {
        let mut stream = connect(addr).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nInference-Header-Content-Length: {}\r\nContent-Length: {}\r\n\r\n",
            json.len(),
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        read_reply(&mut stream).await
    })
    .await
    .unwrap_or_else(|_| panic!("POST {path}: no answer within {TIMEOUT:?}"))
}

/// Sends `body` with a `Content-Length` of `length`, or chunked when `None`.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    length: Option<usize>,
) -> Reply {
    tokio::time::timeout(TIMEOUT, async {
        let mut stream = connect(addr).await;
        stream
            .write_all(head(method, path, length).as_bytes())
            .await
            .unwrap();
        match length {
            Some(_) => stream.write_all(body).await.unwrap(),
            None => {
                let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
                chunked.extend_from_slice(body);
                chunked.extend_from_slice(b"\r\n0\r\n\r\n");
                stream.write_all(&chunked).await.unwrap();
            }
        }
        read_reply(&mut stream).await
    })
    .await
    .unwrap_or_else(|_| panic!("{method} {path}: no answer within {TIMEOUT:?}"))
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
}

/// A request's head; a body of `length` bytes (chunked when `None`) is to follow.
pub fn head(method: &str, path: &str, length: Option<usize>) -> String {
    let framing = match length {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".into(),
    };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    )
}

/// Reads a whole response (the server closes the connection after it).
pub async fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("the response ends in time")
        .expect("reading the response");
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

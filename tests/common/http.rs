//! `GET path` on a local HTTP/1.1 server, for the tests and the examples (`#[path]`-included there): enough HTTP for
//! the twin's own endpoints and `/metrics`, without an HTTP client crate.

/// `GET path` on a local HTTP/1.1 server: the status code and the body.
///
/// # Panics
/// When the server cannot be reached or does not answer HTTP (a failure of the test itself).
pub async fn get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write the request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read the answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, body.to_owned())
}

//! `health`: the container health check of `run` for an image with no shell and no HTTP client: GET /healthz on
//! `--listen`, exit 0 on 200 within two seconds, else exit 1 with one line saying what was seen.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::HealthArgs;

const TIMEOUT: Duration = Duration::from_secs(2);

pub fn run(args: &HealthArgs) -> anyhow::Result<()> {
    let addr = reachable(args.listen);
    let status = healthz(addr).with_context(|| format!("GET http://{addr}/healthz"))?;
    if status != 200 {
        bail!("GET http://{addr}/healthz answered {status}");
    }
    Ok(())
}

/// `run --listen 0.0.0.0:9100` serves every address; ask the loopback one.
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}

/// The status code of `GET /healthz`.
fn healthz(addr: SocketAddr) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let head = String::from_utf8_lossy(&answer);
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("the answer is not HTTP")
}

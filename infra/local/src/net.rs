//! Ports on 127.0.0.1.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

/// A port that was free a moment ago. The OS picks it; it is released at once so that a
/// child process can bind it, which leaves a short window for another process to take
/// it first (callers that start a child on it retry).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Waits until something accepts connections on `port`.
pub async fn wait_for_port(port: u16, timeout: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

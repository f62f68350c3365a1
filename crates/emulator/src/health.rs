//! Readiness probe and port reservation: plain HTTP/1.1 over `std::net`, no client crate.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::EmulatorError;

/// MiniStack's own health route (`/_localstack/health` answers too).
pub(crate) const HEALTH_PATH: &str = "/_ministack/health";

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The health body is about 2.5 KiB; anything beyond this is not read.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Asks the kernel for a free loopback port, then releases it for the emulator to bind.
pub(crate) fn pick_free_port() -> Result<u16, EmulatorError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(EmulatorError::NoFreePort)?;
    let addr = listener.local_addr().map_err(EmulatorError::NoFreePort)?;
    Ok(addr.port())
}

/// True when `GET /_ministack/health` on `127.0.0.1:port` answers 200.
pub(crate) fn is_healthy(port: u16) -> bool {
    is_healthy_at(port, HEALTH_PATH)
}

/// True when `GET path` on `127.0.0.1:port` answers 200.
pub(crate) fn is_healthy_at(port: u16, path: &str) -> bool {
    get_status(port, path) == Some(200)
}

/// Status code of one `GET path`, or `None` if nothing (valid) answered.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    // A read timeout after the status line has arrived still leaves a usable prefix.
    let _ = stream.take(MAX_RESPONSE).read_to_end(&mut response);
    parse_status(&response)
}

/// Status code from the status line of a raw HTTP/1.x response (`HTTP/1.1 200 OK\r\n...`).
pub(crate) fn parse_status(response: &[u8]) -> Option<u16> {
    let end = response.windows(2).position(|pair| pair == b"\r\n")?;
    let line = std::str::from_utf8(&response[..end]).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(response: &str, expected: Option<u16>) {
        assert_eq!(parse_status(response.as_bytes()), expected, "{response:?}");
    }

    #[test]
    fn parse_status_ok_response_gives_200() {
        check(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"services\": {}}",
            Some(200),
        );
    }

    #[test]
    fn parse_status_error_and_reasonless_lines_give_their_code() {
        check("HTTP/1.1 503 Service Unavailable\r\n\r\n", Some(503));
        check("HTTP/1.0 404\r\n\r\n", Some(404));
    }

    #[test]
    fn parse_status_garbage_or_truncated_gives_none() {
        check("", None);
        check("HTTP/1.1 200 OK", None); // status line not finished
        check("SSH-2.0-OpenSSH_9.2\r\n", None);
        check("HTTP/1.1 20 OK\r\n", None);
        check("HTTP/1.1 abc OK\r\n", None);
        check("\r\n", None);
    }

    #[test]
    fn pick_free_port_returns_bindable_loopback_port() {
        let port = pick_free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn is_healthy_nothing_listening_is_false() {
        let port = pick_free_port().unwrap();
        assert!(!is_healthy(port));
    }

    #[test]
    fn is_healthy_server_answering_200_is_true_and_503_is_false() {
        for (answer, expected) in [("200 OK", true), ("503 Service Unavailable", false)] {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let n = conn.read(&mut request).unwrap();
                let request = String::from_utf8_lossy(&request[..n]).into_owned();
                write!(conn, "HTTP/1.1 {answer}\r\nContent-Length: 2\r\n\r\n{{}}").unwrap();
                request
            });
            assert_eq!(is_healthy(port), expected, "{answer}");
            let request = server.join().unwrap();
            assert!(
                request.starts_with("GET /_ministack/health HTTP/1.1\r\n"),
                "{request}"
            );
        }
    }
}

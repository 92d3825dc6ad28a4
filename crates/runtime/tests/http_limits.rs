//! The HTTP server's limits, against a real client on 127.0.0.1: a client that sends its
//! headers too slowly, or keeps a connection idle, is disconnected; connections past the cap
//! wait for a free one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use rthanos_runtime::WebConfig;
use rthanos_runtime::http::{HttpServer, ServerLimits};

/// A server answering `GET /` with "ok", under `limits`; it runs until the test ends.
fn serve(limits: ServerLimits) -> SocketAddr {
    let app = Router::new().route("/", get(|| async { "ok" }));
    let server = HttpServer::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        app,
        &WebConfig::default(),
    )
    .expect("bind")
    .with_limits(limits);
    let addr = server.local_addr().expect("addr");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let _ = runtime.block_on(server.serve(std::future::pending(), Duration::ZERO));
    });
    addr
}

fn limits(header_read_timeout: Duration, max_connections: usize) -> ServerLimits {
    ServerLimits {
        header_read_timeout,
        max_connections,
        ..ServerLimits::default()
    }
}

/// Reads until the server closes the connection (or `limit` passes); how long that took.
fn until_closed(conn: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    conn.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

/// One keep-alive request and its answer (the body is "ok").
fn request(conn: &mut TcpStream) -> String {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"ok") {
        let n = conn.read(&mut buf).expect("answer");
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn headers_sent_too_slowly_close_the_connection() {
    let addr = serve(limits(Duration::from_secs(1), 16));
    let mut conn = TcpStream::connect(addr).expect("connect");
    // Half a request, and then nothing (slowloris).
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let closed = until_closed(&mut conn, Duration::from_secs(30));
    assert!(closed.is_some(), "still open after 30s");
    // A connection that sends nothing at all is closed as well.
    let mut silent = TcpStream::connect(addr).expect("connect");
    assert!(until_closed(&mut silent, Duration::from_secs(30)).is_some());
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let addr = serve(limits(Duration::from_secs(1), 16));
    let mut conn = TcpStream::connect(addr).expect("connect");
    assert!(request(&mut conn).starts_with("HTTP/1.1 200"));
    // Kept alive: a second request on it is answered.
    assert!(request(&mut conn).starts_with("HTTP/1.1 200"));
    let closed = until_closed(&mut conn, Duration::from_secs(30));
    assert!(closed.is_some(), "idle connection still open after 30s");
}

#[test]
fn connections_past_the_cap_wait_for_a_free_one() {
    let addr = serve(limits(Duration::from_secs(20), 2));
    // Two connections take the two places (each has been answered, and is kept alive).
    let mut first = TcpStream::connect(addr).expect("connect");
    assert!(request(&mut first).starts_with("HTTP/1.1 200"));
    let mut second = TcpStream::connect(addr).expect("connect");
    assert!(request(&mut second).starts_with("HTTP/1.1 200"));
    // A third is not served while they are open...
    let mut third = TcpStream::connect(addr).expect("connect");
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    assert!(
        third.read(&mut buf).is_err(),
        "answered past the connection cap"
    );
    // ...and is, once one of them closes.
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let n = third.read(&mut buf).expect("answered once a place is free");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

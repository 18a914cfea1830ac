//! Every bad request gets its status and a problem+json body naming what is wrong, and the daemon
//! keeps serving.

mod common;

use common::{API_KEY, Daemon, Options, Sim};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    key: Option<&'static str>,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    problem: &'static str,
    detail_contains: &'static str,
}

fn case(
    name: &'static str,
    path: &'static str,
    body: &str,
    status: u16,
    problem: &'static str,
    detail: &'static str,
) -> Case {
    Case {
        name,
        method: "POST",
        path,
        key: Some(API_KEY),
        content_type: Some("application/json"),
        body: body.to_owned(),
        status,
        problem,
        detail_contains: detail,
    }
}

fn cases() -> Vec<Case> {
    const SEND: &str = "/v1/otp/send";
    const VERIFY: &str = "/v1/otp/verify";
    vec![
        case(
            "truncated JSON",
            SEND,
            r#"{"phone": "+3161"#,
            400,
            "invalid-json",
            "EOF",
        ),
        case(
            "not an object",
            SEND,
            "[1,2]",
            400,
            "invalid-json",
            "invalid type",
        ),
        case(
            "missing phone",
            SEND,
            "{}",
            400,
            "invalid-json",
            "missing field `phone`",
        ),
        case(
            "phone is a number",
            SEND,
            r#"{"phone": 31612345678}"#,
            400,
            "invalid-json",
            "invalid type",
        ),
        case(
            "no country code",
            SEND,
            r#"{"phone": "0612345678"}"#,
            400,
            "invalid-phone",
            "country code",
        ),
        case(
            "letters",
            SEND,
            r#"{"phone": "+31 6 CALL ME"}"#,
            400,
            "invalid-phone",
            "only digits",
        ),
        case(
            "too short",
            SEND,
            r#"{"phone": "+31 6"}"#,
            400,
            "invalid-phone",
            "at least 7",
        ),
        case(
            "too long",
            SEND,
            r#"{"phone": "+3161234567890123"}"#,
            400,
            "invalid-phone",
            "at most 15",
        ),
        case(
            "verify bad phone",
            VERIFY,
            r#"{"phone": "12", "code": "123456"}"#,
            400,
            "invalid-phone",
            "country code",
        ),
        case(
            "code too short",
            VERIFY,
            r#"{"phone": "+31612345678", "code": "12345"}"#,
            400,
            "invalid-code",
            "exactly 6 digits",
        ),
        case(
            "code with letters",
            VERIFY,
            r#"{"phone": "+31612345678", "code": "12a456"}"#,
            400,
            "invalid-code",
            "exactly 6 digits",
        ),
        case(
            "code as number",
            VERIFY,
            r#"{"phone": "+31612345678", "code": 123456}"#,
            400,
            "invalid-json",
            "invalid type",
        ),
        case(
            "missing code",
            VERIFY,
            r#"{"phone": "+31612345678"}"#,
            400,
            "invalid-json",
            "missing field `code`",
        ),
        Case {
            key: None,
            ..case(
                "no API key",
                SEND,
                r#"{"phone": "+31612345678"}"#,
                401,
                "unauthorized",
                "Bearer",
            )
        },
        Case {
            key: Some("wrong-key-123"),
            ..case("wrong API key", VERIFY, "{}", 401, "unauthorized", "Bearer")
        },
        case(
            "body over 16 KiB",
            SEND,
            &format!(r#"{{"phone": "{}"}}"#, " ".repeat(16 * 1024)),
            413,
            "payload-too-large",
            "16384",
        ),
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text/plain",
                SEND,
                r#"{"phone": "+31612345678"}"#,
                415,
                "unsupported-media-type",
                "application/json",
            )
        },
        Case {
            content_type: None,
            ..case(
                "no content type",
                VERIFY,
                r#"{"phone": "+31612345678"}"#,
                415,
                "unsupported-media-type",
                "application/json",
            )
        },
        Case {
            method: "GET",
            ..case(
                "unknown route",
                "/v1/nothing",
                "",
                404,
                "not-found",
                "no such route",
            )
        },
        Case {
            method: "GET",
            ..case(
                "wrong method",
                SEND,
                "",
                405,
                "method-not-allowed",
                "method",
            )
        },
    ]
}

#[tokio::test]
async fn each_bad_request_gets_its_status_and_problem_and_the_daemon_keeps_serving() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;
    for case in cases() {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).expect("method");
        let mut request = daemon
            .client
            .request(method, format!("{}{}", daemon.url, case.path))
            .body(case.body.clone());
        if let Some(key) = case.key {
            request = request.bearer_auth(key);
        }
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("daemon answers");
        assert_eq!(response.status().as_u16(), case.status, "{}", case.name);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{}",
            case.name
        );
        if case.status == 401 {
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer",
                "{}",
                case.name
            );
        }
        let problem: Value = response.json().await.expect("problem body is JSON");
        assert_eq!(
            problem["type"],
            format!("urn:otpgate:problem:{}", case.problem),
            "{}",
            case.name
        );
        assert_eq!(problem["status"], case.status, "{}", case.name);
        assert!(problem["title"].is_string(), "{}", case.name);
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.contains(case.detail_contains),
            "{}: detail {detail:?}",
            case.name
        );
    }
    // Nothing above hurt the daemon.
    assert_eq!(daemon.send("+31612345678").await.0, StatusCode::ACCEPTED);
    sim.code_for("+31612345678").await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    let sim = Sim::start().await;
    let daemon = Daemon::start_bound(Options::new(sim.smpp)).await;
    let addr = daemon.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    // No Content-Length: the limit must hold while reading. 20 chunks of 1 KiB.
    let mut request = format!(
        "POST /v1/otp/send HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..20 {
        request.push_str(&format!("400\r\n{}\r\n", " ".repeat(1024)));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload-too-large"), "{answer}");
    assert_eq!(daemon.get_text("/healthz").await.0, StatusCode::OK);
    daemon.stop().await;
}

/// A bound daemon with extra `[server]` lines; also returns its HTTP address for raw clients.
async fn with_server_settings(lines: &str) -> (Sim, Daemon, String) {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.server_extra = lines.to_owned();
    let daemon = Daemon::start_bound(options).await;
    let addr = daemon.url.trim_start_matches("http://").to_owned();
    (sim, daemon, addr)
}

/// Opens a raw connection to the daemon and writes `bytes` (which may be no request at all).
async fn raw(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
const HEALTHZ_CLOSE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Reads until the peer closes; returns what arrived.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(common::PATIENCE, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the daemon never closed the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let (_sim, daemon, addr) = with_server_settings("header_read_timeout_seconds = 1").await;

    // One connection says nothing at all, one stops halfway through its headers.
    let mut silent = raw(&addr, b"").await;
    let mut partial = raw(&addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let started = std::time::Instant::now();
    read_until_closed(&mut silent).await;
    read_until_closed(&mut partial).await;
    // Closed by the deadline, not at once.
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));

    // A client that finishes its head in time is served, and the daemon still works.
    let mut prompt = raw(&addr, HEALTHZ_CLOSE).await;
    let answer = read_until_closed(&mut prompt).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(daemon.send("+31612345678").await.0, StatusCode::ACCEPTED);
    daemon.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let (_sim, daemon, addr) =
        with_server_settings("max_connections = 2\nheader_read_timeout_seconds = 60").await;

    // Two idle connections take both places; the first is proven accepted by an answer.
    let mut first = raw(&addr, HEALTHZ).await;
    let mut buf = [0u8; 12];
    tokio::time::timeout(common::PATIENCE, first.read_exact(&mut buf))
        .await
        .expect("first connection answered")
        .expect("read");
    assert_eq!(&buf, b"HTTP/1.1 200");
    let second = raw(&addr, b"").await;

    // The third completes its TCP handshake (the kernel backlog) but is not served.
    let mut third = raw(&addr, HEALTHZ_CLOSE).await;
    let mut byte = [0u8; 1];
    let early =
        tokio::time::timeout(std::time::Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "a third connection was served past max_connections = 2"
    );

    // One place frees up: the waiting request is answered.
    drop(second);
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(first);
    daemon.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let (_sim, daemon, addr) = with_server_settings("body_read_timeout_seconds = 1").await;

    // The head promises 100 bytes; 10 arrive, then nothing.
    let head = format!(
        "POST /v1/otp/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"phone\":"
    );
    let mut slow = raw(&addr, head.as_bytes()).await;
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
    assert!(answer.contains("within 1 s"), "{answer}");
    assert_eq!(daemon.send("+31612345678").await.0, StatusCode::ACCEPTED);
    daemon.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_responses_is_disconnected() {
    // One connection at most: a second client is served only once the first is gone.
    let (_sim, daemon, addr) =
        with_server_settings("write_timeout_seconds = 1\nmax_connections = 1").await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let greedy = socket
        .connect(addr.parse().expect("daemon address"))
        .await
        .expect("connect");
    // Pipelined requests, never read: the answers fill the socket buffers and the daemon's
    // write blocks. The writer stops when the daemon drops the connection (or after 64 MB).
    let (_unread, mut writes) = greedy.into_split();
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let writer = tokio::spawn(async move {
        for _ in 0..2000 {
            if writes.write_all(&request).await.is_err() {
                return true;
            }
        }
        false
    });

    let mut next = raw(&addr, HEALTHZ_CLOSE).await;
    let answer = read_until_closed(&mut next).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let dropped = tokio::time::timeout(common::PATIENCE, writer)
        .await
        .expect("the writer ends")
        .expect("writer task");
    assert!(dropped, "the daemon dropped the connection that never read");
    daemon.stop().await;
}

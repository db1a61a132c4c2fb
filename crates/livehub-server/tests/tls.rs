//! TLS on the listener: real handshakes on 127.0.0.1 with the test certificates in `tests/certs`
//! (see the README there), against the real router.

mod common;

use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::serve::ListenerExt;
use common::WAIT;
use futures_util::StreamExt;
use livehub_core::Node;
use livehub_server::{App, Config, TlsError, TlsListener, TlsReloader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

fn cert_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs").join(name)
}

fn leaf(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("test certificate")
}

/// A configuration with TLS from `cert` and `key`, written as a user would write it.
fn tls_config(cert: &Path, key: &Path) -> Config {
    let text = format!("[tls]\ncert_file = '{}'\nkey_file = '{}'\n", cert.display(), key.display());
    Config::from_toml(&text).expect("tls config")
}

async fn listener(cert: &Path, key: &Path) -> Result<TlsListener, TlsError> {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let config = tls_config(cert, key);
    TlsListener::new(tcp, config.tls.as_ref().expect("tls settings"))
}

/// The real router served over TLS, as `serve_node` is meant to serve it.
struct TlsServer {
    addr: SocketAddr,
    reloader: TlsReloader,
    shutdown: CancellationToken,
    handle: JoinHandle<io::Result<()>>,
}

impl TlsServer {
    async fn start(cert: &Path, key: &Path) -> Self {
        let listener = listener(cert, key).await.expect("tls listener");
        let addr = axum::serve::Listener::local_addr(&listener).expect("local addr");
        let reloader = listener.reloader();
        let shutdown = CancellationToken::new();
        let config = tls_config(cert, key);
        let app = App::new(Node::new(config.node_config()), config, shutdown.clone()).expect("app");
        let service = app.router().into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener.tap_io(|_| {}), service)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let handle = tokio::spawn(server.into_future());
        Self { addr, reloader, shutdown, handle }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = timeout(WAIT, self.handle).await.expect("server stops in time").expect("server task");
        result.expect("server result");
    }
}

fn connector(roots: RootCertStore) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A client that trusts the test CA.
fn trusting() -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(leaf(&cert_path("ca.pem"))).expect("test CA");
    connector(roots)
}

async fn connect_to(
    addr: SocketAddr,
    name: &str,
    connector: &TlsConnector,
) -> io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let handshake = async {
        let tcp = TcpStream::connect(addr).await?;
        connector.connect(name, tcp).await
    };
    timeout(WAIT, handshake).await.expect("handshake ends in time")
}

async fn connect(addr: SocketAddr, connector: &TlsConnector) -> io::Result<TlsStream<TcpStream>> {
    connect_to(addr, "localhost", connector).await
}

/// Sends `GET /health` by hand and returns the status line.
async fn health_status(stream: &mut TlsStream<TcpStream>) -> String {
    let request = b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    stream.write_all(request).await.expect("write request");
    let mut response = Vec::new();
    while !response.windows(2).any(|w| w == b"\r\n") {
        let mut chunk = [0u8; 1024];
        let n = timeout(WAIT, stream.read(&mut chunk)).await.expect("response in time").expect("read");
        assert!(n > 0, "connection closed before the status line: {response:?}");
        response.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    text.lines().next().unwrap_or_default().to_owned()
}

fn served_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let certificates = stream.get_ref().1.peer_certificates().expect("server certificates");
    certificates[0].clone().into_owned()
}

#[tokio::test]
async fn a_client_trusting_the_ca_gets_health_over_http_1_1() {
    let server = TlsServer::start(&cert_path("a.pem"), &cert_path("a.key")).await;

    for name in ["localhost", "127.0.0.1"] {
        let mut stream = connect_to(server.addr, name, &trusting()).await.expect("handshake");
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "h2 is not offered");
        assert_eq!(served_certificate(&stream), leaf(&cert_path("a.pem")));
        assert_eq!(health_status(&mut stream).await, "HTTP/1.1 200 OK", "via {name}");
    }

    server.stop().await;
}

#[tokio::test]
async fn a_websocket_over_tls_gets_connected() {
    let server = TlsServer::start(&cert_path("a.pem"), &cert_path("a.key")).await;

    let stream = connect(server.addr, &trusting()).await.expect("handshake");
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.expect("websocket handshake");
    let hello = timeout(WAIT, ws.next()).await.expect("hello in time").expect("open").expect("frame");
    let Message::Text(text) = hello else { panic!("expected text, got {hello:?}") };
    let hello: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(hello["type"], "connected", "{hello}");

    server.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails_the_handshake() {
    let server = TlsServer::start(&cert_path("a.pem"), &cert_path("a.key")).await;

    let error = connect(server.addr, &connector(RootCertStore::empty())).await.expect_err("untrusted");
    let cause = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(cause, Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))),
        "{error:?}"
    );

    let mut stream = connect(server.addr, &trusting()).await.expect("the next client is served");
    assert_eq!(health_status(&mut stream).await, "HTTP/1.1 200 OK");

    server.stop().await;
}

#[tokio::test]
async fn stalled_handshakes_do_not_hold_up_another_client() {
    let server = TlsServer::start(&cert_path("a.pem"), &cert_path("a.key")).await;

    let silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut partial = TcpStream::connect(server.addr).await.expect("connect");
    // A TLS record header announcing a 512-byte handshake message that never comes.
    partial.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await.expect("write");

    let mut stream = connect(server.addr, &trusting()).await.expect("handshake");
    assert_eq!(health_status(&mut stream).await, "HTTP/1.1 200 OK");

    // Both stalled connections are still open, waiting in their own handshakes. Had the listener
    // handshaken one connection at a time, the client above would have been served only after
    // they had timed out and been closed.
    for (what, stalled) in [("silent", &silent), ("partial", &partial)] {
        let mut byte = [0u8; 1];
        match stalled.try_read(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("the {what} client's connection was closed or answered: {other:?}"),
        }
    }

    server.stop().await;
}

#[tokio::test]
async fn reload_serves_the_new_certificate_and_keeps_it_when_files_are_bad() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let install = |from_cert: &str, from_key: &str| {
        std::fs::copy(cert_path(from_cert), &cert).expect("copy certificate");
        std::fs::copy(cert_path(from_key), &key).expect("copy key");
    };
    install("a.pem", "a.key");
    let server = TlsServer::start(&cert, &key).await;
    let first = connect(server.addr, &trusting()).await.expect("handshake");
    assert_eq!(served_certificate(&first), leaf(&cert_path("a.pem")));

    install("b.pem", "b.key");
    server.reloader.reload().expect("cert B loads");
    let second = connect(server.addr, &trusting()).await.expect("handshake");
    assert_eq!(served_certificate(&second), leaf(&cert_path("b.pem")), "new handshakes get cert B");

    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").expect("write");
    let error = server.reloader.reload().expect_err("a broken certificate");
    assert!(matches!(error, TlsError::Pem { .. }), "{error}");
    let third = connect(server.addr, &trusting()).await.expect("handshake");
    assert_eq!(served_certificate(&third), leaf(&cert_path("b.pem")), "cert B is kept");

    install("a.pem", "b.key");
    let error = server.reloader.reload().expect_err("a key from another certificate");
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
    let mut fourth = connect(server.addr, &trusting()).await.expect("handshake");
    assert_eq!(served_certificate(&fourth), leaf(&cert_path("b.pem")), "cert B is kept");
    assert_eq!(health_status(&mut fourth).await, "HTTP/1.1 200 OK");

    server.stop().await;
}

#[tokio::test]
async fn bad_files_fail_at_start_with_a_clear_error() {
    let error = listener(&cert_path("a.pem"), &cert_path("b.key")).await.expect_err("mismatch");
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");

    let error = listener(&cert_path("none.pem"), &cert_path("a.key")).await.expect_err("missing");
    assert!(error.to_string().contains("none.pem"), "{error}");
}

#[tokio::test]
async fn dropping_the_listener_closes_the_port() {
    let listener = listener(&cert_path("a.pem"), &cert_path("a.key")).await.expect("tls listener");
    let addr = axum::serve::Listener::local_addr(&listener).expect("local addr");
    drop(listener);

    // The accept loop owns the socket and ends on its own task, so poll until it has.
    let refused = async {
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return,
                _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    };
    timeout(WAIT, refused).await.expect("the port closes");
}

/// `livehub_server::serve` with a `[tls]` section, as the binary runs it.
async fn serve_with_tls() -> (SocketAddr, CancellationToken, JoinHandle<io::Result<()>>) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = tcp.local_addr().expect("local addr");
    let mut config = tls_config(&cert_path("a.pem"), &cert_path("a.key"));
    config.sources = livehub_server::SourcesConfig::disabled();
    config.storage.store = livehub_server::StoreKind::Memory;
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(livehub_server::serve(config, tcp, shutdown.clone()));
    (addr, shutdown, handle)
}

#[tokio::test]
async fn serve_with_a_tls_section_answers_over_https_only() {
    let (addr, shutdown, handle) = serve_with_tls().await;

    let mut stream = connect(addr, &trusting()).await.expect("tls handshake");
    assert_eq!(health_status(&mut stream).await, "HTTP/1.1 200 OK");
    // Plain HTTP on the same port gets no answer it could mistake for one.
    let mut plain = TcpStream::connect(addr).await.expect("tcp connect");
    plain.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n").await.expect("write");
    let mut answer = Vec::new();
    let _ = timeout(WAIT, plain.read_to_end(&mut answer)).await.expect("the server drops it");
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "plain HTTP is not served");

    shutdown.cancel();
    timeout(WAIT, handle).await.expect("stops in time").expect("task").expect("serve result");
}

#[tokio::test]
async fn an_sse_stream_over_tls_streams_and_ends_cleanly() {
    let (addr, shutdown, handle) = serve_with_tls().await;

    let mut stream = connect(addr, &trusting()).await.expect("tls handshake");
    stream.write_all(b"GET /sse/secure HTTP/1.1\r\nhost: localhost\r\n\r\n").await.expect("write request");
    let mut text = String::new();
    while !text.contains("event: connected") {
        let mut chunk = [0u8; 4096];
        let n = timeout(WAIT, stream.read(&mut chunk)).await.expect("in time").expect("read");
        assert!(n > 0, "closed early: {text}");
        text.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\ntransfer-encoding: chunked\r\n"), "{text}");

    // Shutdown ends the stream with its last event and chunk, and a TLS close_notify: a clean
    // end of file rather than a truncation error.
    shutdown.cancel();
    let mut rest = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut rest)).await.expect("closed in time").expect("a clean close");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("event: disconnect\n") && rest.ends_with("\r\n0\r\n\r\n"), "{rest:?}");
    timeout(WAIT, handle).await.expect("stops in time").expect("task").expect("serve result");
}

#[tokio::test]
async fn a_flood_of_silent_tls_sockets_sheds_the_oldest_and_real_clients_get_in() {
    // The server as `serve` runs it, so TLS handshakes count in its registry of half-open
    // connections; a small global limit makes a flood of a few sockets.
    let mut config = tls_config(&cert_path("a.pem"), &cert_path("a.key"));
    config.limits.max_half_open = 8;
    let server = common::TestServer::with(config).await;
    let mut flood = Vec::new();
    for _ in 0..8 {
        flood.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // Each real client makes room by shedding the oldest silent socket, however long the flood.
    for _ in 0..3 {
        let mut stream = connect(server.addr, &trusting()).await.expect("handshake under the flood");
        assert_eq!(health_status(&mut stream).await, "HTTP/1.1 200 OK");
    }
    let mut oldest = flood.remove(0);
    let mut rest = Vec::new();
    let read = timeout(WAIT, oldest.read_to_end(&mut rest)).await.expect("the oldest was closed");
    assert!(read.is_ok_and(|n| n == 0) || rest.is_empty(), "closed without an answer");
}

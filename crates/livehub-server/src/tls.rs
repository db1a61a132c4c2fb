//! TLS directly on the listener, for deployments without a reverse proxy: [`TlsListener`] is
//! what `axum::serve` accepts from instead of a `TcpListener`, and it re-reads the certificate
//! and key when their files change, so a renewal needs no restart.
//!
//! Three kinds of task run here. One accept loop takes TCP connections and spawns one task per
//! handshake; finished handshakes wait in a bounded queue for axum's `accept`. A watcher checks
//! the files every `RELOAD_CHECK`. All of them stop when the listener is dropped.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, InconsistentKeys, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::TlsSettings;
use crate::half_open::{HalfOpen, Slot};

/// How long a client has to finish the TLS handshake once its TCP connection is accepted.
///
/// A handshake is two round trips, so this leaves room for a slow mobile link; a client that
/// connects and then stays silent holds a socket and a task (and a half-open slot) for this long
/// at most.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes under way at once for a listener made with [`TlsListener::new`]; past this, the
/// oldest is closed to make room (the server's own listener shares its registry of half-open
/// connections and its limits, `limits.max_half_open`).
///
/// This bounds the sockets and memory that silent clients can pin for [`HANDSHAKE_TIMEOUT`],
/// without ever making a real client wait behind them: accepting never stops.
const MAX_HANDSHAKES: usize = 1024;

/// Handshakes from one address at once, for a listener made with [`TlsListener::new`].
const HANDSHAKES_PER_ADDRESS: usize = 256;

/// Finished handshakes waiting for axum to take them.
///
/// axum takes connections in a tight loop, so this rarely holds more than a few; when it is full,
/// handshake tasks wait rather than streams piling up.
const ACCEPTED_QUEUE: usize = 64;

/// The pause after an accept error other than a reset connection, like axum's own accept loop.
///
/// The usual cause is running out of file descriptors (EMFILE); retrying at once would spin, and a
/// second is long enough for some connections to close and short enough to go unnoticed.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// How often the certificate and key files are checked for a change.
///
/// A check is two `stat` calls, so it is cheap; a renewed certificate is served at most this long
/// after it is written. It runs on a timer rather than lazily in handshakes, so that the handshake
/// path never touches the file system and a broken renewal is reported even when no one connects.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// The only application protocol offered: axum is built here with hyper's HTTP/1.1 support only
/// (axum's `http2` feature is off), and WebSocket upgrades need HTTP/1.1. Clients that send no ALPN
/// are served too.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// A certificate or key that cannot be served.
///
/// Messages name the files and what is wrong with them, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is not well-formed PEM.
    #[error("{} is not valid PEM: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, without quoting the file.
        reason: &'static str,
    },
    /// The certificate file holds no certificate.
    #[error("no PEM certificate in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("no PEM private key (PKCS#8, PKCS#1 or SEC1) in {}", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is not one rustls can sign with (RSA, ECDSA P-256/P-384 or Ed25519).
    #[error("cannot use the private key in {}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The first certificate in the file cannot be parsed.
    #[error("invalid certificate in {}: {source}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The private key does not belong to the first certificate.
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls rejected the server configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[source] rustls::Error),
}

/// A listener that accepts TCP connections and completes their TLS handshake before handing them
/// to `axum::serve`.
///
/// Handshakes run concurrently, each with a timeout, so a slow or silent client never holds up the
/// others; failed handshakes are logged at `debug` and dropped. The certificate and key are
/// re-read when their files change (checked every few seconds), or on [`TlsListener::reload`].
///
/// axum provides `ConnectInfo<SocketAddr>` only for its own listener types, so serve it as
/// `listener.tap_io(|_| {})` (from `axum::serve::ListenerExt`) to keep
/// `into_make_service_with_connect_info::<SocketAddr>()` working.
pub struct TlsListener {
    tcp: Arc<TcpListener>,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    store: Arc<CertificateStore>,
    /// Stops the accept loop, the handshakes and the watcher when the listener is dropped.
    _tasks: DropGuard,
}

impl TlsListener {
    /// Serves TLS on `tcp` with the certificate chain and key `settings` names.
    ///
    /// Fails if either file cannot be read or parsed, or if the key does not match the
    /// certificate.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, since it spawns the accept loop and the file watcher.
    pub fn new(tcp: TcpListener, settings: &TlsSettings) -> Result<Self, TlsError> {
        Self::with_half_open(tcp, settings, HalfOpen::new(HANDSHAKES_PER_ADDRESS, MAX_HANDSHAKES))
    }

    /// Like [`new`](Self::new), counting handshakes in the server's registry of half-open
    /// connections: past its limits, an address's new connections are closed, and the oldest
    /// handshake makes room for a new one.
    pub(crate) fn with_half_open(
        tcp: TcpListener,
        settings: &TlsSettings,
        half_open: Arc<HalfOpen>,
    ) -> Result<Self, TlsError> {
        // The provider is chosen here rather than taken from a process-wide default, so that
        // nothing depends on which rustls features other crates happen to enable.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let store = Arc::new(CertificateStore::open(settings, provider.clone())?);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Rustls)?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];

        let tcp = Arc::new(tcp);
        let (sender, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let stop = CancellationToken::new();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        tokio::spawn(accept_loop(tcp.clone(), acceptor, sender, half_open, stop.clone()));
        tokio::spawn(watch_files(store.clone(), RELOAD_CHECK, stop.clone()));
        Ok(Self { tcp, accepted, store, _tasks: stop.drop_guard() })
    }

    /// Re-reads the certificate and key now, whether or not the files changed.
    ///
    /// On an error the current certificate stays in use. The files are read on the calling
    /// thread.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.store.reload()
    }

    /// A handle for [`TlsReloader::reload`] that outlives the move into `axum::serve`.
    pub fn reloader(&self) -> TlsReloader {
        TlsReloader { store: self.store.clone() }
    }
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.tcp.local_addr().ok())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            None => {
                // The accept loop holds a sender until the listener is dropped, so it can only be
                // gone if it panicked. axum's `accept` cannot fail, so stop accepting loudly.
                tracing::error!("the TLS accept loop ended; no longer accepting connections");
                std::future::pending().await
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Forces a [`TlsListener`]'s certificate and key to be re-read, for example after a renewal or
/// on SIGHUP. Cheap to clone; it keeps working after the listener moves into `axum::serve`.
#[derive(Clone, Debug)]
pub struct TlsReloader {
    store: Arc<CertificateStore>,
}

impl TlsReloader {
    /// Re-reads the certificate and key now, whether or not the files changed.
    ///
    /// On an error the current certificate stays in use. The files are read on the calling
    /// thread.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.store.reload()
    }
}

/// Takes TCP connections and starts a handshake task for each, until `stop` is cancelled.
async fn accept_loop(
    tcp: Arc<TcpListener>,
    acceptor: TlsAcceptor,
    accepted: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    half_open: Arc<HalfOpen>,
    stop: CancellationToken,
) {
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            result = tcp.accept() => match result {
                Ok(connection) => connection,
                Err(error) => {
                    backoff_after(error, &stop).await;
                    continue;
                }
            },
        };
        // Never waits: a full registry sheds its oldest handshake rather than stop accepting,
        // which is what let silent sockets starve every real client.
        let Some(slot) = half_open.admit(peer.ip()) else {
            tracing::debug!(%peer, "too many half-open connections from this address");
            continue;
        };
        crate::listen::no_delay(&mut stream);
        let task = handshake(acceptor.clone(), stream, peer, accepted.clone(), stop.clone(), slot);
        tokio::spawn(task);
    }
}

/// Waits after an accept error, as axum's own loop does: not at all for a connection that was
/// reset before it was taken, [`ACCEPT_ERROR_BACKOFF`] for anything else (such as EMFILE).
async fn backoff_after(error: io::Error, stop: &CancellationToken) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        tracing::debug!(%error, "connection reset before it was accepted");
        return;
    }
    tracing::warn!(%error, "accept failed; pausing before the next accept");
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
    }
}

/// Completes one handshake within [`HANDSHAKE_TIMEOUT`] and queues the stream for axum. The
/// permit is held until then.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    accepted: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
    slot: Slot,
) {
    let stream = tokio::select! {
        _ = stop.cancelled() => return,
        () = slot.shed() => {
            tracing::debug!(%peer, "TLS handshake shed to make room");
            return;
        }
        result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    // Handshake done: the request head's own half-open slot starts when axum's loop takes it.
    drop(slot);
    tokio::select! {
        _ = stop.cancelled() => {}
        // An error means the listener is gone; the stream is dropped with it.
        _ = accepted.send((stream, peer)) => {}
    }
}

/// Reloads the certificate whenever its files change, every `every`, until `stop` is cancelled.
async fn watch_files(store: Arc<CertificateStore>, every: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and the files were just read.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let store = store.clone();
        // `stat` and reading the files block; a slow disk must not stall a runtime worker.
        if let Err(error) = tokio::task::spawn_blocking(move || store.reload_if_changed()).await {
            tracing::warn!(%error, "the TLS certificate check failed");
        }
    }
}

/// The certificate being served, and the files it comes from. rustls asks it for the certificate
/// at every handshake.
struct CertificateStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    /// A std lock: it is held only to clone or swap the `Arc`, never across an `.await`.
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when they were last read, successfully or not, so that a broken file is
    /// reported once rather than at every check.
    seen: Mutex<Stamps>,
}

/// What a file looked like: its modification time and length, or `None` when it could not be
/// read. The length catches a rewrite within the file system's timestamp granularity.
type Stamps = [Option<(SystemTime, u64)>; 2];

impl CertificateStore {
    fn open(settings: &TlsSettings, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let (cert_file, key_file) = (settings.cert_file.clone(), settings.key_file.clone());
        let seen = stamps(&cert_file, &key_file);
        let current = load(&cert_file, &key_file, &provider)?;
        Ok(Self {
            cert_file,
            key_file,
            provider,
            current: RwLock::new(Arc::new(current)),
            seen: Mutex::new(seen),
        })
    }

    /// Reads the files and swaps the certificate in, or keeps the current one and says why.
    fn reload(&self) -> Result<(), TlsError> {
        // The stamps are taken before reading, so a write racing the read triggers another reload
        // at the next check rather than being missed.
        let seen = stamps(&self.cert_file, &self.key_file);
        let result = self.swap_in();
        *self.seen.lock() = seen;
        result
    }

    /// Reloads when either file's stamp changed since it was last read; a failure keeps the current
    /// certificate and is logged.
    fn reload_if_changed(&self) {
        let now = stamps(&self.cert_file, &self.key_file);
        {
            let mut seen = self.seen.lock();
            if *seen == now {
                return;
            }
            *seen = now;
        }
        if let Err(error) = self.swap_in() {
            tracing::warn!(%error, "kept the current TLS certificate");
        }
    }

    fn swap_in(&self) -> Result<(), TlsError> {
        let key = Arc::new(load(&self.cert_file, &self.key_file, &self.provider)?);
        *self.current.write() = key;
        tracing::info!(cert_file = %self.cert_file.display(), "loaded the TLS certificate");
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().clone()
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl fmt::Debug for CertificateStore {
    // By hand, so that no key (even redacted by rustls) can reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateStore")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

fn stamps(cert_file: &Path, key_file: &Path) -> Stamps {
    let stamp = |path: &Path| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    };
    [stamp(cert_file), stamp(key_file)]
}

/// Reads a PEM certificate chain (leaf first) and a PEM private key, and checks that they belong
/// together.
fn load(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(cert_file)?;
    let key = read_key(key_file)?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::Key { path: key_file.to_owned(), source })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        // ring's keys can all give their public key, so `Unknown` is not expected; it would mean
        // "cannot tell", which rustls itself accepts too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err(TlsError::KeyMismatch { cert: cert_file.to_owned(), key: key_file.to_owned() })
        }
        Err(source) => Err(TlsError::Certificate { path: cert_file.to_owned(), source }),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, &error))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsError::NoKey { path: path.to_owned() },
        other => pem_error(path, &other),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

/// A PEM error described without quoting the file, which for a key file would leak it.
fn pem_error(path: &Path, error: &pem::Error) -> TlsError {
    let reason = match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "it cannot be parsed",
    };
    TlsError::Pem { path: path.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs").join(name)
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn load_pair(cert: &str, key: &str) -> Result<CertifiedKey, TlsError> {
        load(&cert_path(cert), &cert_path(key), &provider())
    }

    fn leaf(path: &Path) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(path).expect("test certificate")
    }

    #[test]
    fn pkcs8_sec1_and_pkcs1_keys_load() {
        for (cert, key) in [("a.pem", "a.key"), ("a.pem", "a-sec1.key"), ("b.pem", "b.key")] {
            let certified = load_pair(cert, key).unwrap_or_else(|e| panic!("{cert} with {key}: {e}"));
            assert_eq!(certified.cert[0], leaf(&cert_path(cert)));
        }
    }

    #[test]
    fn a_key_from_another_certificate_is_a_mismatch() {
        let error = load_pair("a.pem", "b.key").expect_err("mismatch");
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
        assert!(error.to_string().contains("b.key") && error.to_string().contains("a.pem"), "{error}");
    }

    #[test]
    fn missing_and_empty_files_name_the_file() {
        let error = load_pair("missing.pem", "a.key").expect_err("missing");
        assert!(matches!(error, TlsError::Read { .. }), "{error}");
        assert!(error.to_string().contains("missing.pem"), "{error}");

        let error = load_pair("a.key", "a.key").expect_err("a key is not a certificate");
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");

        let error = load_pair("a.pem", "a.pem").expect_err("a certificate is not a key");
        assert!(matches!(error, TlsError::NoKey { .. }), "{error}");
    }

    #[test]
    fn a_broken_key_is_reported_without_its_contents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = std::fs::read_to_string(cert_path("a.key")).expect("key");
        let body = key.lines().nth(1).expect("a base64 line").to_owned();
        let broken = dir.path().join("broken.key");
        std::fs::write(&broken, key.replace("-----END PRIVATE KEY-----", "")).expect("write");

        let error = load(&cert_path("a.pem"), &broken, &provider()).expect_err("broken");
        assert!(matches!(error, TlsError::Pem { .. }), "{error}");
        assert!(!error.to_string().contains(&body), "{error}");
        assert!(!format!("{error:?}").contains(&body), "{error:?}");
    }

    /// Copies `cert` and `key` over the files `settings` names, with a distinct modification time.
    fn install(settings: &TlsSettings, cert: &str, key: &str, seconds: u64) {
        for (from, to) in [(cert, &settings.cert_file), (key, &settings.key_file)] {
            std::fs::copy(cert_path(from), to).expect("copy");
            let file = std::fs::File::options().write(true).open(to).expect("open");
            file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)).expect("mtime");
        }
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_current_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings =
            TlsSettings { cert_file: dir.path().join("cert.pem"), key_file: dir.path().join("key.pem") };
        install(&settings, "a.pem", "a.key", 1_000);
        let store = CertificateStore::open(&settings, provider()).expect("cert A");
        assert_eq!(store.current().cert[0], leaf(&cert_path("a.pem")));

        store.reload_if_changed();
        assert_eq!(store.current().cert[0], leaf(&cert_path("a.pem")), "nothing changed");

        install(&settings, "b.pem", "b.key", 2_000);
        store.reload_if_changed();
        assert_eq!(store.current().cert[0], leaf(&cert_path("b.pem")), "cert B after the change");

        std::fs::write(&settings.cert_file, "not a certificate").expect("write");
        store.reload_if_changed();
        assert_eq!(store.current().cert[0], leaf(&cert_path("b.pem")), "a broken file keeps cert B");
        assert!(matches!(store.reload(), Err(TlsError::NoCertificate { .. })));

        install(&settings, "a.pem", "b.key", 3_000);
        store.reload_if_changed();
        assert_eq!(store.current().cert[0], leaf(&cert_path("b.pem")), "a mismatch keeps cert B");
        assert!(matches!(store.reload(), Err(TlsError::KeyMismatch { .. })));

        install(&settings, "a.pem", "a.key", 4_000);
        store.reload_if_changed();
        assert_eq!(store.current().cert[0], leaf(&cert_path("a.pem")), "fixed files are read again");
    }

    #[test]
    fn a_missing_file_keeps_the_current_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings =
            TlsSettings { cert_file: dir.path().join("cert.pem"), key_file: dir.path().join("key.pem") };
        install(&settings, "a.pem", "a.key", 1_000);
        let store = CertificateStore::open(&settings, provider()).expect("cert A");
        std::fs::remove_file(&settings.key_file).expect("remove");
        store.reload_if_changed();
        assert_eq!(store.current().cert[0], leaf(&cert_path("a.pem")));
        assert!(matches!(store.reload(), Err(TlsError::Read { .. })));
    }
}

//! A real PostgreSQL for the tests: `DATABASE_URL` when set, else a throwaway cluster started by
//! `tests/postgres/cluster.sh` (removed when the test process exits). Each test gets a fresh
//! database of its own, so schema checks and restarts do not see each other's rows.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use livehub_postgres::{PgSettings, PgStore};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tests/postgres/cluster.sh` with `args`; returns its output.
pub fn cluster(args: &[&str]) -> String {
    let output = Command::new(root().join("tests/postgres/cluster.sh"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run tests/postgres/cluster.sh");
    assert!(
        output.status.success(),
        "cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Starts a cluster of this test process in `target/postgres/<name>-<pid>`, stopped and removed
/// when the process exits; returns its folder and URL.
pub fn own_cluster(name: &str) -> (String, String) {
    let pid = std::process::id().to_string();
    let dir = format!("target/postgres/{name}-{pid}");
    let url = cluster(&["start", &dir, "--until-exit-of", &pid]);
    (dir, url)
}

/// The server the tests use.
pub fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => own_cluster("tests").1,
    })
    .clone()
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split_once('/').map_or(rest, |(authority, _)| authority);
    format!("{scheme}://{authority}/{database}{query}")
}

/// A fresh database on the test server.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("livehub_test_{:08x}", rand::random::<u32>());
        admin(&format!("CREATE DATABASE {name}")).await;
        Self { url: with_database(&server_url(), &name), name }
    }

    pub fn settings(&self) -> PgSettings {
        PgSettings::new(self.url.clone())
    }

    pub async fn open(&self) -> PgStore {
        PgStore::open(self.settings()).await.expect("open the PostgreSQL store")
    }

    /// Runs `sql` on this database.
    pub async fn execute(&self, sql: &str) {
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        client.batch_execute(sql).await.expect(sql);
    }

    /// Drops the database (its connections too).
    pub async fn drop_db(self) {
        admin(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).await;
    }
}

async fn admin(sql: &str) {
    let (client, connection) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    let task = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

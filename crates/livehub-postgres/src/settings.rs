//! What a [`PgStore`](crate::PgStore) is opened with.

use std::str::FromStr;
use std::time::Duration;

use crate::PgStoreError;

/// Connections in the pool. Each durable channel writes one batch at a time, so this bounds how
/// many channels commit at once; PostgreSQL shares one WAL flush between the commits that arrive
/// together, so a few more connections buy throughput until the disk is the limit, and each one
/// costs a server process.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// Tasks that commit appends. Each takes every append waiting (of any channel) and writes them
/// as one transaction, so publishers on many channels share a commit; with several, groups are
/// gathered while others commit, and PostgreSQL shares a WAL flush between the commits that
/// arrive together. On the two-core test machine 16 gave the most acknowledgements per second
/// for 64 and 256 publishers (`docs/storage-postgres.md`); each holds a pooled connection only
/// while it writes.
pub const DEFAULT_COMMITTERS: usize = 16;

/// How long opening a connection may take: long enough for a TLS-less handshake across a data
/// centre, short enough that a publish to an unreachable database fails while its client waits.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one statement may run, enforced by the server (`statement_timeout`) and, with a
/// little slack, by the client (a silent network cannot hold a publish longer).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a [`PgStore`](crate::PgStore) is opened with.
#[derive(Clone, Debug)]
pub struct PgSettings {
    /// A libpq connection string or `postgres://user:password@host:port/database` URL.
    pub url: String,
    /// Most connections in the pool.
    pub pool_size: usize,
    /// Tasks committing appends, each with a connection of the pool while it writes.
    pub committers: usize,
    /// Limit of opening one connection (and of waiting for a free one from the pool).
    pub connect_timeout: Duration,
    /// Limit of one statement.
    pub statement_timeout: Duration,
}

impl PgSettings {
    /// Settings for `url` with the default pool and timeouts.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: DEFAULT_POOL_SIZE,
            committers: DEFAULT_COMMITTERS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }

    /// The client configuration: the URL's, with the connect timeout (unless the URL sets one),
    /// the statement timeout and an application name added.
    pub(crate) fn client_config(&self) -> Result<tokio_postgres::Config, PgStoreError> {
        let mut config = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| PgStoreError::InvalidUrl(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        let statement_timeout = format!("-c statement_timeout={}", self.statement_timeout.as_millis());
        let options = match config.get_options() {
            Some(options) if !options.is_empty() => format!("{options} {statement_timeout}"),
            _ => statement_timeout,
        };
        config.options(&options);
        if config.get_application_name().is_none() {
            config.application_name("livehub");
        }
        // A peer that vanished without closing is noticed by the keep-alive rather than only
        // by the next statement's timeout.
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));
        Ok(config)
    }

    /// How long the client waits for one operation before it gives the connection up: the
    /// server's statement timeout plus a connect's worth of slack.
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.statement_timeout + self.connect_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_keeps_its_options_and_gains_the_timeouts() {
        let settings = PgSettings::new("postgres://u@127.0.0.1:5/db?options=-c%20search_path%3Dx");
        let config = settings.client_config().expect("valid URL");
        assert_eq!(config.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));
        assert_eq!(config.get_options(), Some("-c search_path=x -c statement_timeout=10000"));
        assert_eq!(config.get_application_name(), Some("livehub"));

        let own = PgSettings::new("host=/tmp dbname=db connect_timeout=7 application_name=me");
        let config = own.client_config().expect("valid connection string");
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(config.get_application_name(), Some("me"));
    }

    #[test]
    fn a_malformed_url_is_refused() {
        let error = PgSettings::new("postgres://u@host:notaport/db").client_config().expect_err("bad port");
        assert!(matches!(error, PgStoreError::InvalidUrl(_)), "{error}");
    }
}

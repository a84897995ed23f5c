//! Connections: the pool, its settings on every new session, and running one statement with a
//! timeout, a resend where that is safe, and no connection left behind mid-statement.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use kv_trait::KvError;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::config::{Host, PostgresBackendBuilder, SslMode};
use crate::error::{connection_lost, from_pg, rolled_back_by_conflict, session_ended};

/// How many times a statement is sent again after a serialization failure or deadlock (which
/// rolled it back). Single-key statements under `READ COMMITTED` never meet one; this is for a
/// server whose configuration makes them appear anyway.
const CONFLICT_RESENDS: u32 = 8;

/// How many times a statement is sent again after the server ended the session instead of
/// running it. A server shutting down ends every pooled session at once; the pool notices each
/// dead connection when it is next taken, so a few attempts reach a live one or the truth
/// (`Unavailable`).
const ENDED_SESSION_RESENDS: u32 = 3;

/// Whether a statement may be sent again on another connection after the connection was lost
/// with the statement possibly applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Reads: sending again is harmless.
    Safe,
    /// Writes: a lost reply may hide a write that happened; the caller gets `Unavailable`
    /// (a resent increment would count twice).
    Never,
}

/// The tokio-postgres settings for every connection of the pool.
pub(crate) fn connection_config(builder: &PostgresBackendBuilder) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    for host in &builder.hosts {
        match host {
            Host::Tcp { host, port } => config.host(host).port(*port),
            Host::Socket { dir, port } => config.host_path(dir).port(*port),
        };
    }
    config
        .user(&builder.user)
        .dbname(&builder.dbname)
        .application_name(&builder.application_name)
        .connect_timeout(builder.connect_timeout)
        .keepalives(true)
        // With several hosts, only the primary: a standby's reads may be stale.
        .target_session_attrs(TargetSessionAttrs::ReadWrite)
        .ssl_mode(match builder.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require => tokio_postgres::config::SslMode::Require,
        })
        // Every session: single statements in READ COMMITTED whatever the server's default
        // (the statements' atomicity rests on it), the server giving up on a statement when
        // the client does, and UTC for anyone reading `expires_at` through this session.
        .options(format!(
            "-c default_transaction_isolation=read\\ committed -c statement_timeout={} \
             -c lock_timeout={} -c TimeZone=UTC",
            builder.request_timeout.as_millis(),
            builder.request_timeout.as_millis()
        ));
    if let Some(password) = &builder.password {
        config.password(password.expose().as_bytes());
    }
    config
}

/// The pool: at most `pool_size` connections, each made within the connect timeout; a
/// connection the server closed is noticed when it is taken and replaced.
pub(crate) fn pool(builder: &PostgresBackendBuilder) -> Result<Pool, KvError> {
    let config = connection_config(builder);
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    // `prefer` is opportunistic: TLS when the application chose a crypto provider for
    // rustls, else plain TCP, as without the `tls` feature. `require` insists (tls.rs).
    #[cfg(feature = "tls")]
    let tls = builder.ssl_mode == SslMode::Require
        || (builder.ssl_mode == SslMode::Prefer
            && rustls::crypto::CryptoProvider::get_default().is_some());
    #[cfg(not(feature = "tls"))]
    let tls = false;
    let manager = match tls {
        #[cfg(feature = "tls")]
        true => Manager::from_config(
            config,
            crate::tls::connector(builder.ssl_root_cert.as_deref())?,
            manager_config,
        ),
        _ => {
            let mut config = config;
            if builder.ssl_mode == SslMode::Prefer {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            }
            Manager::from_config(config, NoTls, manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(builder.pool_size)
        .create_timeout(Some(builder.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|err| KvError::InvalidConfig(format!("PostgreSQL connection pool: {err}")))
}

/// A session of its own, outside the pool, whose notifications (`LISTEN`) arrive on the
/// returned channel until the session ends (the channel then closes). Made with the pool's
/// settings and the same TLS decision.
pub(crate) async fn notifications(
    builder: &PostgresBackendBuilder,
) -> Result<
    (
        tokio_postgres::Client,
        tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    ),
    KvError,
> {
    let mut config = connection_config(builder);
    #[cfg(feature = "tls")]
    if builder.ssl_mode == SslMode::Require
        || (builder.ssl_mode == SslMode::Prefer
            && rustls::crypto::CryptoProvider::get_default().is_some())
    {
        let tls = crate::tls::connector(builder.ssl_root_cert.as_deref())?;
        let (client, connection) = config.connect(tls).await.map_err(from_pg)?;
        return Ok((client, forward_notifications(connection)));
    }
    if builder.ssl_mode == SslMode::Prefer {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
    let (client, connection) = config.connect(NoTls).await.map_err(from_pg)?;
    Ok((client, forward_notifications(connection)))
}

/// Drives `connection` in a task of its own, sending its notifications on; the channel closes
/// when the session ends.
fn forward_notifications<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
) -> tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures::StreamExt::next(&mut messages).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(notification)) => {
                    if sender.send(notification).is_err() {
                        return; // the watcher is gone
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(error = %err, "the watch session failed");
                    return;
                }
            }
        }
    });
    receiver
}

/// A pooled connection that is not returned to the pool if a statement was in flight when it
/// was dropped (a timeout cancelled the call): its reply would otherwise arrive for the next
/// caller to wait behind. Dropping it closes the connection, and the server ends the session.
struct Lease {
    object: Option<Object>,
    in_flight: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.in_flight {
            if let Some(object) = self.object.take() {
                drop(Object::take(object));
            }
        }
    }
}

/// Runs one statement on a pooled connection and returns its rows, within `timeout` (waiting
/// for a connection included).
pub(crate) async fn rows(
    pool: &Pool,
    timeout: Duration,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    resend: Resend,
) -> Result<Vec<Row>, KvError> {
    match tokio::time::timeout(timeout, attempts(pool, sql, params, resend)).await {
        Ok(result) => result,
        Err(_) => Err(KvError::unavailable(format!(
            "PostgreSQL did not answer within {timeout:?}"
        ))),
    }
}

async fn attempts(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    resend: Resend,
) -> Result<Vec<Row>, KvError> {
    let (mut conflicts, mut ended, mut lost) = (0, 0, 0);
    loop {
        let mut lease = Lease {
            object: Some(pool.get().await.map_err(from_pool)?),
            in_flight: false,
        };
        let Some(client) = lease.object.as_ref() else {
            unreachable!("the lease was just filled")
        };
        lease.in_flight = true;
        let result = match client.prepare_cached(sql).await {
            Ok(statement) => client.query(&statement, params).await,
            Err(err) => Err(err),
        };
        lease.in_flight = false;
        match result {
            Ok(rows) => return Ok(rows),
            Err(err) if rolled_back_by_conflict(&err) && conflicts < CONFLICT_RESENDS => {
                conflicts += 1;
                tracing::debug!(attempt = conflicts, error = %err, "statement rolled back by a conflict; sending it again");
            }
            Err(err) if session_ended(&err) && ended < ENDED_SESSION_RESENDS => {
                ended += 1;
                tracing::debug!(attempt = ended, error = %err, "the server ended the session before running the statement; sending it on another");
            }
            Err(err) if connection_lost(&err) && resend == Resend::Safe && lost == 0 => {
                lost += 1;
                tracing::debug!(error = %err, "connection lost during a read; reading again on another");
            }
            Err(err) => {
                if connection_lost(&err) {
                    tracing::debug!(error = %err, "connection lost; not resent (it may have been applied)");
                }
                return Err(from_pg(err));
            }
        }
    }
}

/// Waiting for or making a connection failed.
///
/// Every such failure happened before a statement was sent (no connection could be had), so an
/// `Unavailable` is marked as not sent ([`KvError::not_sent`]): a retry layer may send even a
/// write again.
pub(crate) fn from_pool(err: deadpool_postgres::PoolError) -> KvError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => match from_pg(err) {
            KvError::Unavailable(source) => KvError::not_sent(source),
            other => other,
        },
        other => KvError::not_sent(format!("PostgreSQL connection pool: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_to_get_a_connection_is_not_sent() {
        let waited = from_pool(deadpool_postgres::PoolError::Timeout(
            deadpool_postgres::TimeoutType::Wait,
        ));
        assert!(waited.is_retryable() && waited.is_not_sent(), "{waited}");
    }
}

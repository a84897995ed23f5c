//! `watch` (with `watch=true`): a trigger on the table notifies every change through
//! PostgreSQL's `LISTEN`/`NOTIFY`, and each watcher listens on a connection of its own.
//!
//! The trigger runs inside the writing transaction, so its notification is sent when that
//! transaction commits and never when it rolls back, and PostgreSQL delivers notifications in
//! commit order: each key's changes arrive in the order they took effect, from every writer of
//! the table (kvkit or not; `WatchScope::Store`). A notification carries the change kind, the
//! namespace, the key and, when they fit in its 8,000-byte payload, the value; a larger value
//! is read when the event arrives, and may then already be a later one. A watcher whose
//! connection drops yields `Lagged` (notifications sent meanwhile are lost: PostgreSQL keeps
//! none for a session that is gone) and listens again.

use std::time::Duration;

use kv_trait::{KvBackend, KvError, WatchEvent, WatchStream};
use tokio::sync::mpsc;
use tokio_postgres::{Client, Notification};

use crate::backend::PostgresBackend;
use crate::config::PostgresBackendBuilder;
use crate::error::from_pg;
use crate::pool;
use crate::schema::TableName;

/// Namespace, key and value together at most this long are sent in the notification (hex
/// doubles them; the payload holds 8,000 bytes with the rest of the message).
const INLINE_BYTES: usize = 3_900;

/// The pause before listening again after the connection dropped or could not be made.
const RELISTEN_PAUSE: Duration = Duration::from_millis(200);

/// Installs (or replaces) the table's notifying trigger and returns its channel. Two
/// processes opening at once take turns (an advisory lock on the table's oid).
pub(crate) async fn install(client: &mut Client, table: &TableName) -> Result<String, KvError> {
    let quoted = table.quoted();
    let transaction = client.transaction().await.map_err(from_pg)?;
    let oid: u32 = transaction
        .query_one(&format!("SELECT '{quoted}'::regclass::oid"), &[])
        .await
        .map_err(from_pg)?
        .get(0);
    let channel = format!("kvkit_watch_{oid}");
    let function = format!("kvkit_watch_{oid}");
    let sql = format!(
        "SELECT pg_advisory_xact_lock({oid});
         CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $body$
         DECLARE
           kind text;
           value_hex text := '';
           changed record;
         BEGIN
           IF TG_OP = 'DELETE' THEN
             changed := OLD;
             kind := CASE WHEN OLD.expires_at IS NOT NULL AND OLD.expires_at <= clock_timestamp()
                          THEN 'x' ELSE 'd' END;
           ELSE
             changed := NEW;
             IF octet_length(NEW.namespace) + octet_length(NEW.key) + octet_length(NEW.value)
                <= {INLINE_BYTES} THEN
               kind := 's';
               value_hex := encode(NEW.value, 'hex');
             ELSE
               kind := 'S';
             END IF;
           END IF;
           PERFORM pg_notify('{channel}', kind || ' '
             || encode(convert_to(changed.namespace, 'UTF8'), 'hex') || ' '
             || encode(changed.key, 'hex') || ' ' || value_hex);
           RETURN NULL;
         END
         $body$;
         CREATE OR REPLACE TRIGGER kvkit_watch AFTER INSERT OR UPDATE OR DELETE ON {quoted}
           FOR EACH ROW EXECUTE FUNCTION {function}();"
    );
    transaction.batch_execute(&sql).await.map_err(|err| {
        let err = from_pg(err);
        match err {
            KvError::Backend(source) => KvError::InvalidConfig(format!(
                "watch=true: cannot install the notifying trigger on {table} ({source}); it \
                 needs the rights to create a function and a trigger on the table"
            )),
            other => other,
        }
    })?;
    transaction.commit().await.map_err(from_pg)?;
    Ok(channel)
}

/// What a watcher needs to listen again.
#[derive(Clone)]
pub(crate) struct Setup {
    pub(crate) config: PostgresBackendBuilder,
    pub(crate) channel: String,
}

/// A watcher: its connection, if it has one, and where it stands.
struct Listening {
    setup: Setup,
    /// Reads values too large for their notification.
    backend: PostgresBackend,
    namespace: String,
    prefix: String,
    /// Kept so the session stays open; dropped to end it.
    client: Option<Client>,
    notifications: Option<mpsc::UnboundedReceiver<Notification>>,
}

/// The changes of the keys under `prefix` in `backend`'s namespace, from now on: listening
/// before this returns.
pub(crate) async fn watch(
    setup: Setup,
    backend: PostgresBackend,
    prefix: &str,
) -> Result<WatchStream, KvError> {
    let (client, notifications) = listen(&setup).await?;
    let listening = Listening {
        namespace: backend.namespace().to_owned(),
        setup,
        backend,
        prefix: prefix.to_owned(),
        client: Some(client),
        notifications: Some(notifications),
    };
    Ok(Box::pin(futures::stream::unfold(
        listening,
        Listening::next,
    )))
}

/// A session of its own that listens on the channel.
async fn listen(setup: &Setup) -> Result<(Client, mpsc::UnboundedReceiver<Notification>), KvError> {
    let timeout = setup.config.connect_timeout + setup.config.request_timeout;
    let listening = async {
        let (client, notifications) = pool::notifications(&setup.config).await?;
        client
            .batch_execute(&format!("LISTEN \"{}\"", setup.channel))
            .await
            .map_err(from_pg)?;
        Ok((client, notifications))
    };
    tokio::time::timeout(timeout, listening)
        .await
        .unwrap_or_else(|_| {
            Err(KvError::unavailable(format!(
                "PostgreSQL did not start listening within {timeout:?}"
            )))
        })
}

impl Listening {
    async fn next(mut self) -> Option<(WatchEvent, Self)> {
        loop {
            let Some(notifications) = self.notifications.as_mut() else {
                match listen(&self.setup).await {
                    Ok((client, notifications)) => {
                        self.client = Some(client);
                        self.notifications = Some(notifications);
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "cannot listen again; trying later");
                        tokio::time::sleep(RELISTEN_PAUSE).await;
                    }
                }
                continue;
            };
            match notifications.recv().await {
                Some(notification) => {
                    if let Some(event) = self.decode(notification.payload()).await {
                        return Some((event, self));
                    }
                }
                None => {
                    tracing::debug!("the watch session ended; notifications may be lost");
                    self.notifications = None;
                    self.client = None;
                    return Some((WatchEvent::Lagged, self));
                }
            }
        }
    }

    /// The event of a notification about this watcher's namespace and prefix; `None` for
    /// any other (or a payload this crate did not write).
    async fn decode(&self, payload: &str) -> Option<WatchEvent> {
        let mut parts = payload.splitn(4, ' ');
        let kind = parts.next()?;
        let namespace = String::from_utf8(hex::decode(parts.next()?).ok()?).ok()?;
        let key = String::from_utf8(hex::decode(parts.next()?).ok()?).ok()?;
        if namespace != self.namespace || !key.starts_with(&self.prefix) {
            return None;
        }
        let value = parts.next().unwrap_or_default();
        Some(match kind {
            "s" => WatchEvent::Set {
                value: hex::decode(value).ok()?,
                key,
            },
            // Too large for the notification: read now, perhaps already a later value.
            "S" => match self.backend.get(&key).await {
                Ok(Some(value)) => WatchEvent::Set { key, value },
                Ok(None) => WatchEvent::Deleted { key },
                Err(_) => WatchEvent::Lagged,
            },
            "d" => WatchEvent::Deleted { key },
            "x" => WatchEvent::Expired { key },
            _ => return None,
        })
    }
}

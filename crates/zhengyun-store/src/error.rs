//! The store's one error type. Callers map it to HTTP by kind: [`Error::Unavailable`] → 503,
//! [`Error::Conflict`] → 409, [`Error::NotFound`] → 404, [`Error::Invalid`] → 422; everything
//! else is a 500 whose cause is logged, never shown.

use sqlx::{
    error::DatabaseError, migrate::MigrateError, postgres::PgDatabaseError, sqlite::SqliteError,
};

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the store. Each variant says what was being attempted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached or is too busy to answer: connection refused or
    /// lost, a broken conversation, pool timeout, PostgreSQL shutting down, SQLite still locked after the busy
    /// timeout, disk full. Retrying later may succeed (HTTP 503).
    #[error("database unavailable while {doing}")]
    Unavailable {
        /// What the store was doing.
        doing: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The write contradicts what is stored: a statement already closed, an interval key
    /// recorded with another amount, adjustments issued meanwhile (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The named thing does not exist (HTTP 404).
    #[error("{0} not found")]
    NotFound(String),
    /// The caller passed something the store refuses to keep (HTTP 422).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which input.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A statement or adjustment failed the metering crate's checks.
    #[error("invalid {what}")]
    Metering {
        /// What was checked.
        what: &'static str,
        /// The failed check.
        #[source]
        source: Box<zhengyun_metering::Error>,
    },
    /// A stored row cannot be read back as what it should be; someone changed the database
    /// behind the store's back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The operating system's random number generator failed.
    #[error("unable to read random bytes from the operating system")]
    Random(#[source] getrandom::Error),
    /// The embedded schema migrations could not be applied.
    #[error("unable to migrate the database schema")]
    Migration(#[source] MigrateError),
    /// Any other database error (a bug or a misconfiguration, HTTP 500).
    #[error("database error while {doing}")]
    Database {
        /// What the store was doing.
        doing: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl Error {
    /// A short, stable label for metrics (`zhengyun_store_errors_total{kind=…}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Unavailable { .. } => "unavailable",
            Error::Conflict(_) => "conflict",
            Error::NotFound(_) => "not_found",
            Error::Invalid { .. } => "invalid",
            Error::Metering { .. } => "metering",
            Error::Corrupt(_) => "corrupt",
            Error::Random(_) => "random",
            Error::Migration(_) => "migration",
            Error::Database { .. } => "database",
        }
    }

    /// Whether the database was unreachable (answer 503 and let the caller retry).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
            Error::Migration(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)) => {
                unreachable(e)
            }
            _ => false,
        }
    }

    /// An error of the same kind and message, for each of several callers that one cause
    /// failed (a batch of writes).
    pub(crate) fn same_kind(&self) -> Self {
        let copy = |source: &sqlx::Error| sqlx::Error::Protocol(source.to_string());
        match self {
            Error::Unavailable { doing, source } => Error::Unavailable {
                doing,
                source: copy(source),
            },
            Error::Database { doing, source } => Error::Database {
                doing,
                source: copy(source),
            },
            Error::Conflict(m) => Error::Conflict(m.clone()),
            Error::NotFound(m) => Error::NotFound(m.clone()),
            Error::Invalid { field, reason } => Error::Invalid {
                field,
                reason: reason.clone(),
            },
            Error::Corrupt(m) => Error::Corrupt(m.clone()),
            other => Error::Corrupt(other.to_string()),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Wraps a driver error, telling an unreachable database apart from everything else.
pub(crate) fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| {
        if unreachable(&source) {
            Error::Unavailable { doing, source }
        } else {
            Error::Database { doing, source }
        }
    }
}

/// Whether `error` means "could not reach or use the database right now" rather than "the
/// query is wrong".
fn unreachable(error: &sqlx::Error) -> bool {
    match error {
        // A protocol error means the conversation broke, not that the query was wrong: the
        // connection died mid-message, or what answers at the address is not the database (a
        // connection to a stopped local server's port can even connect to itself).
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => database_unavailable(e.as_ref()),
        _ => false,
    }
}

fn database_unavailable(error: &dyn DatabaseError) -> bool {
    if let Some(e) = error.try_downcast_ref::<PgDatabaseError>() {
        // Class 08: connection exception; 57P01..03: shutting down or starting up;
        // 53300: too many connections; 53100: disk full.
        let code = e.code();
        return code.starts_with("08")
            || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "53100");
    }
    if error.try_downcast_ref::<SqliteError>().is_some() {
        // Primary result codes: BUSY (5) and LOCKED (6) after the busy timeout, IOERR (10),
        // FULL (13), CANTOPEN (14).
        let primary = error
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        return matches!(primary, Some(5 | 6 | 10 | 13 | 14));
    }
    false
}

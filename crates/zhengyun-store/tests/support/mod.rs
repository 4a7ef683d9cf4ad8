//! A fresh database per test, on either backend, with raw SQL access for tampering.
//!
//! SQLite tests always run, each on its own temporary file. PostgreSQL tests run when
//! `ZHENGYUN_TEST_POSTGRES_URL` names a server where the user may create databases
//! (`scripts/postgres.sh up` starts one; `scripts/postgres.sh url` prints its URL); each test
//! creates its own database and drops it afterwards. Without the variable they are skipped with
//! a notice — unless `CI` is set, where a skipped backend would be a silent gap, so they fail.

use std::{io::Write, path::PathBuf, str::FromStr, sync::Once};

use sqlx::{Connection, PgConnection, SqlSafeStr, SqliteConnection, postgres::PgConnectOptions};
use zhengyun_store::{Backend, Store};

pub const POSTGRES_URL_VAR: &str = "ZHENGYUN_TEST_POSTGRES_URL";

/// One test's database: the store under test and what is needed to reach it behind its back.
#[derive(Debug)]
pub struct TestDb {
    pub store: Store,
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    SqliteFile(PathBuf),
    PostgresDatabase { admin_url: String, name: String },
}

impl TestDb {
    /// A store on a new SQLite file in the temporary directory.
    pub async fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("zhengyun-store-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let store = Store::connect(&url).await.expect("open a SQLite store");
        assert_eq!(store.backend(), Backend::Sqlite);
        Self {
            store,
            url,
            cleanup: Cleanup::SqliteFile(path),
        }
    }

    /// A store on a new PostgreSQL database, or `None` (after a notice) when no server is
    /// configured outside CI.
    pub async fn postgres() -> Option<Self> {
        let Some(admin_url) = postgres_admin_url() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{POSTGRES_URL_VAR} is not set, but CI is: the PostgreSQL half of the store \
                     suite must run in CI. Start a server with `scripts/postgres.sh up` and set \
                     {POSTGRES_URL_VAR}=$(scripts/postgres.sh url)."
                );
            }
            skip_notice();
            return None;
        };
        let name = format!("zy_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_VAR}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        let store = Store::connect(&url).await.expect("open a PostgreSQL store");
        assert_eq!(store.backend(), Backend::Postgres);
        Some(Self {
            store,
            url,
            cleanup: Cleanup::PostgresDatabase { admin_url, name },
        })
    }

    /// Another store on the same database, with a connection pool of its own, as a second
    /// process would open it.
    pub async fn second_store(&self) -> Store {
        Store::connect(&self.url)
            .await
            .expect("open the same database again")
    }

    /// Runs `test` and then removes the database (left behind if the test panics, for a
    /// post-mortem).
    pub async fn run(self, test: impl AsyncFnOnce(&TestDb)) {
        test(&self).await;
        self.store.close().await;
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    std::fs::remove_file(file).ok();
                }
            }
            Cleanup::PostgresDatabase { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::connect(admin_url).await {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await
                    .ok();
                }
            }
        }
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Executes `sqlite` or `postgres` (whichever fits) on a connection of its own, as someone
    /// with database access but without the store would.
    pub async fn raw(
        &self,
        sqlite: &'static str,
        postgres: &'static str,
    ) -> Result<u64, sqlx::Error> {
        match self.backend() {
            Backend::Sqlite => {
                let mut conn = SqliteConnection::connect(&self.url).await?;
                let done = sqlx::raw_sql(sqlite).execute(&mut conn).await?;
                conn.close().await?;
                Ok(done.rows_affected())
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await?;
                let done = sqlx::raw_sql(postgres).execute(&mut conn).await?;
                conn.close().await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// The single text column of every row `sql` returns (the same SQL on both backends).
    pub async fn raw_texts(&self, sql: &'static str) -> Vec<String> {
        match self.backend() {
            Backend::Sqlite => {
                let mut conn = SqliteConnection::connect(&self.url).await.expect("connect");
                sqlx::query_scalar(sql.into_sql_str())
                    .fetch_all(&mut conn)
                    .await
                    .expect("raw query")
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await.expect("connect");
                sqlx::query_scalar(sql.into_sql_str())
                    .fetch_all(&mut conn)
                    .await
                    .expect("raw query")
            }
        }
    }
}

fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// `url` pointing at database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    PgConnectOptions::from_str(url).expect("a PostgreSQL URL in ZHENGYUN_TEST_POSTGRES_URL");
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("a URL with a scheme");
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    format!("{scheme}://{authority}/{name}{query}")
}

/// Printed once per test binary, past the test harness's output capture, so that a developer
/// sees that half of the suite did not run.
fn skip_notice() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut stderr = std::io::stderr();
        writeln!(
            stderr,
            "\nnotice: PostgreSQL store tests SKIPPED: {POSTGRES_URL_VAR} is not set \
             (scripts/postgres.sh up; export {POSTGRES_URL_VAR}=$(scripts/postgres.sh url))\n"
        )
        .ok();
    });
}

/// Declares each listed `async fn name(db: &TestDb)` as two tests, `sqlite::name` and
/// `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::support::TestDb::sqlite().await.run(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = crate::support::TestDb::postgres().await {
                        db.run(super::$name).await;
                    }
                }
            )*
        }
    };
}

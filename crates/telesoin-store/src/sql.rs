//! [`SqlStore`]: the one implementation of [`Store`], over `sqlx::Any`, for SQLite and Postgres.
//!
//! Every query below runs unchanged on both backends: `$1, $2, ...` placeholders (SQLite accepts
//! them), `RETURNING`, `ON CONFLICT ... DO NOTHING`, and no backend-specific function. Values
//! cross the boundary as the few types both drivers share through `Any`: ids as UUID text, instants
//! as `i64` milliseconds since the epoch (UTC), dates as `YYYY-MM-DD` text, booleans as `0`/`1`
//! integers. The schemas in `migrations/sqlite` and `migrations/postgres` keep those shapes
//! (`INTEGER` there, `BIGINT` here) so the code decodes `i64` on both.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{ConnectOptions, Executor, Row};
use telesoin_core::billing::PresenceKind;
use telesoin_core::claims::IssuedSeat;
use telesoin_core::model::{
    Consent, ConsentRecorder, InPersonVisit, Kine, Patient, Role, Session, SessionStatus, VisitKind,
};
use telesoin_core::{KineId, ParticipantId, PatientId, SessionId};
use uuid::Uuid;

use crate::checkpoint::{self, Checkpointer};
use crate::outbound::{queue_patient_webhooks, queue_webhooks};
use crate::*;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Per-connection SQLite settings. WAL is set once per file (it is persistent), in
/// [`SqlStore::connect`]; these are per connection and must be repeated on every one.
const SQLITE_PRAGMAS: &[&str] = &[
    // NORMAL under WAL keeps every committed transaction across a process crash.
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    // Writers queue instead of failing at once: SQLite has one writer at a time.
    "PRAGMA busy_timeout = 5000",
    // The WAL is checkpointed by a task of its own (`checkpoint`); a writer only if it lags.
    checkpoint::WRITERS_AUTOCHECKPOINT,
];

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:///absolute/path.db` or `sqlite://relative.db`: one file, the embedded default.
    Sqlite,
    /// `postgres://user@host:port/db` (or `postgresql://`): for several nodes.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, from its scheme; None for any other scheme.
    pub fn from_url(url: &str) -> Option<Backend> {
        let (scheme, _) = url.split_once(':')?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }

    /// A human name, for start-up messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "Postgres",
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        }
    }
}

/// A [`Store`] on SQLite or Postgres, chosen by the URL given to [`SqlStore::connect`].
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// SQLite only: the hot writers of this process (presence events, the audit chain) take
    /// turns here, in order, instead of in SQLite's busy handler, which retries a locked
    /// database after sleeping 1, 2, 5, 10, 15, 20, 25 ... ms: under a burst of joins those
    /// sleeps were the tail of a join. Other processes (the CLI) still meet the busy timeout.
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite only: the task that checkpoints the WAL (see [`checkpoint`]).
    checkpointer: Option<Arc<Checkpointer>>,
}

impl std::fmt::Debug for SqlStore {
    // Never the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// What a database error means for the caller: a uniqueness rule broken is a `Conflict`; a
/// foreign key, a `CHECK` or a `NOT NULL` refused is `Rejected` (the same write would be refused
/// again: its session was deleted, a value is out of its domain); anything else (the database
/// away, locked, full, a pool timeout) is `Unavailable`, worth retrying.
pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
    use sqlx::error::ErrorKind;
    match &e {
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => StoreError::Conflict(db.message().to_owned()),
            // The message names the constraint, never the row's values.
            ErrorKind::ForeignKeyViolation
            | ErrorKind::CheckViolation
            | ErrorKind::NotNullViolation => StoreError::Rejected(db.message().to_owned()),
            _ => StoreError::Unavailable(e.to_string()),
        },
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// Appends `rows` tuples of `width` numbered parameters, `($1, $2), ($3, $4)` for 2 by 2: the
/// `VALUES` of a multi-row `INSERT`, its parameters bound row after row.
pub(crate) fn value_rows(sql: &mut String, rows: usize, width: usize) {
    use std::fmt::Write as _;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..width {
            let sep = if col == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", row * width + col + 1);
        }
        sql.push(')');
    }
}

/// The one row a write with `RETURNING` gave back.
///
/// Such writes are read with `fetch_all`, never `fetch_one`/`fetch_optional`: SQLite commits an
/// autocommit statement when it is stepped to its end, and sqlx's SQLite driver stops stepping
/// after the first row, then resets the statement and drops whatever that commit said. On a full
/// disk the row was returned while its commit failed: the caller got a sequence number for an
/// event that was never written. Stepping to the end surfaces the failed commit as an error.
pub(crate) fn written(rows: &[AnyRow]) -> Result<&AnyRow> {
    rows.first()
        .ok_or_else(|| StoreError::Unavailable("the write returned no row".into()))
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(crate) fn instant(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| corrupt("instant out of range"))
}

pub(crate) fn opt_instant(v: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    v.map(instant).transpose()
}

pub(crate) fn uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| corrupt("uuid"))
}

pub(crate) fn date(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| corrupt("date"))
}

pub(crate) fn get<'r, T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>>(
    row: &'r AnyRow,
    col: &str,
) -> Result<T> {
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| corrupt("role"))
}

/// A SQLite URL that creates the file when it is missing (unless the URL says otherwise), as the
/// embedded default always has.
fn sqlite_creating(url: &str) -> String {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    if query.split('&').any(|kv| kv.starts_with("mode=")) {
        url.to_owned()
    } else if query.is_empty() {
        format!("{}?mode=rwc", url.trim_end_matches('?'))
    } else {
        format!("{url}&mode=rwc")
    }
}

impl SqlStore {
    /// Connects to `url` (`sqlite:///path/file.db`, `sqlite://relative.db`, `postgres://...`)
    /// and applies pending migrations. A SQLite file is created when missing.
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = Backend::from_url(url).ok_or_else(|| {
            // Not the URL itself in the message: it may hold a password.
            StoreError::Config("the database URL must start with sqlite:// or postgres://".into())
        })?;
        sqlx::any::install_default_drivers();
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let url = match backend {
            Backend::Sqlite => {
                options = options.max_connections(8).after_connect(|conn, _meta| {
                    Box::pin(async move {
                        for pragma in SQLITE_PRAGMAS {
                            conn.execute(*pragma).await?;
                        }
                        Ok(())
                    })
                });
                sqlite_creating(url)
            }
            Backend::Postgres => {
                options = options.max_connections(16);
                url.to_owned()
            }
        };
        let pool = options.connect(&url).await.map_err(unavailable)?;
        if backend == Backend::Sqlite {
            // Persistent in the file; done once here rather than on every connection, because
            // switching the journal mode needs a lock that the busy timeout does not wait for.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(unavailable)?;
        }
        let write_turn =
            (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let checkpointer = match &write_turn {
            Some(turn) => Some(Arc::new(
                Checkpointer::start(&url, turn).await.map_err(unavailable)?,
            )),
            None => None,
        };
        let store = Self {
            pool,
            backend,
            write_turn,
            checkpointer,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens (creating if needed) the SQLite file at `path`: the embedded default,
    /// `data_dir/telesoin.db`.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        let path = std::path::absolute(path)
            .map_err(|e| StoreError::Config(format!("database path: {e}")))?;
        // sqlx builds the URL, percent-encoding whatever a path may hold (spaces, `?`, `#`).
        let url = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy();
        Self::connect(url.as_str()).await
    }

    /// Applies pending migrations (there are none right after [`SqlStore::connect`]) and returns
    /// the versions applied to this database: the `telesoin migrate` command.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        self.backend
            .migrator()
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let rows = sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(|r| get::<i64>(r, "version")).collect()
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `"SQLite"` or `"Postgres"`, for start-up messages.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Waits for the connections to close (a clean shutdown; SQLite checkpoints its WAL).
    pub async fn close(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.stop().await;
        }
        self.pool.close().await;
    }
}

fn patient_row(r: &AnyRow) -> Result<PatientRow> {
    patient_row_in(
        r,
        [
            "id",
            "kine_id",
            "display_name",
            "birth_date",
            "loss_of_autonomy",
            "gp_contact",
            "created_at",
        ],
    )
}

/// A patient's row under the names `columns` gives its columns, in [`patient_row`]'s order
/// (where it shares a row with another table's).
fn patient_row_in(r: &AnyRow, columns: [&str; 7]) -> Result<PatientRow> {
    let [id, kine, name, birth, autonomy, gp, created] = columns;
    Ok(PatientRow {
        patient: Patient {
            id: PatientId(uuid(&get::<String>(r, id)?)?),
            kine: KineId(uuid(&get::<String>(r, kine)?)?),
            display_name: get(r, name)?,
            birth_date: date(&get::<String>(r, birth)?)?,
            loss_of_autonomy: get::<i64>(r, autonomy)? != 0,
            gp_contact: get(r, gp)?,
        },
        created_at: instant(get(r, created)?)?,
    })
}

/// The patient's columns of a facts read, with the visit or consent of its row (`x`); their
/// names are prefixed so that they share a row with a session's.
macro_rules! fact_columns {
    () => {
        "p.id AS pt_id, p.kine_id AS pt_kine_id, p.display_name AS pt_display_name,
         p.birth_date AS pt_birth_date, p.loss_of_autonomy AS pt_loss_of_autonomy,
         p.gp_contact AS pt_gp_contact, p.created_at AS pt_created_at,
         x.src AS x_src, x.item_id AS x_id, x.v_date AS x_date, x.v_kind AS x_kind,
         x.c_by AS x_by, x.c_method AS x_method, x.c_text AS x_text,
         x.c_at AS x_at, x.c_withdrawn AS x_withdrawn"
    };
}

/// A patient's visits and consents as one derived table `x` (the pair chosen by `$filter`), to
/// join to their row. Typed NULLs so that Postgres types the union.
macro_rules! fact_items {
    ($filter:literal) => {
        concat!(
            "(SELECT 'v' AS src, id AS item_id, date AS v_date, kind AS v_kind,
                     CAST(NULL AS TEXT) AS c_by, CAST(NULL AS TEXT) AS c_method,
                     CAST(NULL AS TEXT) AS c_text, CAST(NULL AS BIGINT) AS c_at,
                     CAST(NULL AS BIGINT) AS c_withdrawn
              FROM in_person_visits WHERE ",
            $filter,
            " UNION ALL
              SELECT 'c', id, CAST(NULL AS TEXT), CAST(NULL AS TEXT), recorded_by, method,
                     text_version, recorded_at, withdrawn_at
              FROM consents WHERE ",
            $filter,
            ") x"
        )
    };
}

/// The facts of [`fact_columns`] rows: the patient of the first (None without a patient), and
/// the visit or consent of each.
fn admission_facts_of(rows: &[AnyRow]) -> Result<Option<AdmissionFacts>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    if get::<Option<String>>(first, "pt_id")?.is_none() {
        return Ok(None);
    }
    let patient = patient_row_in(
        first,
        [
            "pt_id",
            "pt_kine_id",
            "pt_display_name",
            "pt_birth_date",
            "pt_loss_of_autonomy",
            "pt_gp_contact",
            "pt_created_at",
        ],
    )?;
    let id = patient.patient.id;
    let mut facts = AdmissionFacts {
        patient,
        visits: Vec::new(),
        consents: Vec::new(),
    };
    for r in rows {
        let src: Option<String> = get(r, "x_src")?;
        let item = || -> Result<Uuid> { uuid(&get::<String>(r, "x_id")?) };
        match src.as_deref() {
            None => {}
            Some("v") => facts.visits.push(VisitRow {
                id: item()?,
                patient: id,
                visit: InPersonVisit {
                    date: date(&get::<String>(r, "x_date")?)?,
                    kind: VisitKind::parse(&get::<String>(r, "x_kind")?)
                        .ok_or_else(|| corrupt("visit kind"))?,
                },
            }),
            Some(_) => facts.consents.push(ConsentRow {
                id: item()?,
                patient: id,
                consent: consent_in(r, ["x_by", "x_method", "x_text", "x_at", "x_withdrawn"])?,
            }),
        }
    }
    // The orders of `visits` and `consents`.
    facts.visits.sort_by_key(|v| v.visit.date);
    facts.consents.sort_by_key(|c| c.consent.recorded_at);
    Ok(Some(facts))
}

fn consent_row(r: &AnyRow) -> Result<ConsentRow> {
    Ok(ConsentRow {
        id: uuid(&get::<String>(r, "id")?)?,
        patient: PatientId(uuid(&get::<String>(r, "patient_id")?)?),
        consent: consent_in(
            r,
            [
                "recorded_by",
                "method",
                "text_version",
                "recorded_at",
                "withdrawn_at",
            ],
        )?,
    })
}

/// A consent under the names `columns` gives its columns, in [`consent_row`]'s order.
fn consent_in(r: &AnyRow, columns: [&str; 5]) -> Result<Consent> {
    let [by, method, text, at, withdrawn] = columns;
    Ok(Consent {
        recorded_by: ConsentRecorder::parse(&get::<String>(r, by)?)
            .ok_or_else(|| corrupt("recorded_by"))?,
        method: get(r, method)?,
        text_version: get(r, text)?,
        recorded_at: instant(get(r, at)?)?,
        withdrawn_at: opt_instant(get(r, withdrawn)?)?,
    })
}

pub(crate) fn session_row(r: &AnyRow) -> Result<SessionRow> {
    Ok(SessionRow {
        session: Session {
            id: SessionId(uuid(&get::<String>(r, "id")?)?),
            kine: KineId(uuid(&get::<String>(r, "kine_id")?)?),
            patient: PatientId(uuid(&get::<String>(r, "patient_id")?)?),
            starts_at: instant(get(r, "starts_at")?)?,
            window_start: instant(get(r, "window_start")?)?,
            window_end: instant(get(r, "window_end")?)?,
            act_code: get(r, "act_code")?,
            status: SessionStatus::parse(&get::<String>(r, "status")?)
                .ok_or_else(|| corrupt("status"))?,
            auto_admit: get::<i64>(r, "auto_admit")? != 0,
            patient_consent_on_join: get::<i64>(r, "patient_consent_on_join")? != 0,
        },
        billing_class: get(r, "billing_class")?,
        class_reason: get(r, "class_reason")?,
        relay_only: get::<i64>(r, "relay_only")? != 0,
        ended_at: opt_instant(get(r, "ended_at")?)?,
        billable_seconds: get(r, "billable_seconds")?,
        finalized_at: opt_instant(get(r, "finalized_at")?)?,
    })
}

fn kine_row(r: &AnyRow) -> Result<Kine> {
    Ok(Kine {
        id: KineId(uuid(&get::<String>(r, "id")?)?),
        rpps: get(r, "rpps")?,
        name: get(r, "name")?,
        email: get(r, "email")?,
    })
}

#[async_trait]
impl KineStore for SqlStore {
    async fn create_kine(
        &self,
        kine: &Kine,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO kines (id, rpps, name, email, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(kine.id.to_string())
            .bind(&kine.rpps)
            .bind(&kine.name)
            .bind(kine.email.to_lowercase())
            .bind(password_hash)
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn kine_by_email(&self, email: &str) -> Result<Option<(Kine, String)>> {
        let row = sqlx::query("SELECT * FROM kines WHERE email = $1")
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| Ok((kine_row(&r)?, get::<String>(&r, "password_hash")?)))
            .transpose()
    }

    async fn kine(&self, id: KineId) -> Result<Option<Kine>> {
        let row = sqlx::query("SELECT * FROM kines WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| kine_row(&r)).transpose()
    }

    async fn create_web_session(
        &self,
        token_hash: &[u8],
        kine: KineId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO web_sessions (token_hash, kine_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hex(token_hash))
            .bind(kine.to_string())
            .bind(ms(now))
            .bind(ms(expires_at))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn web_session(&self, token_hash: &[u8], now: DateTime<Utc>) -> Result<Option<KineId>> {
        let row = sqlx::query(
            "SELECT kine_id FROM web_sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(hex(token_hash))
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|r| Ok(KineId(uuid(&get::<String>(&r, "kine_id")?)?)))
            .transpose()
    }

    async fn delete_web_session(&self, token_hash: &[u8]) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(hex(token_hash))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl PatientStore for SqlStore {
    async fn create_patient(&self, p: &Patient, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO patients (id, kine_id, display_name, birth_date, loss_of_autonomy, gp_contact, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(p.id.to_string())
        .bind(p.kine.to_string())
        .bind(&p.display_name)
        .bind(p.birth_date.format("%Y-%m-%d").to_string())
        .bind(i64::from(p.loss_of_autonomy))
        .bind(&p.gp_contact)
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn patients(&self, kine: KineId) -> Result<Vec<PatientRow>> {
        let rows = sqlx::query("SELECT * FROM patients WHERE kine_id = $1 ORDER BY display_name")
            .bind(kine.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(patient_row).collect()
    }

    async fn patient(&self, kine: KineId, id: PatientId) -> Result<Option<PatientRow>> {
        let row = sqlx::query("SELECT * FROM patients WHERE id = $1 AND kine_id = $2")
            .bind(id.to_string())
            .bind(kine.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| patient_row(&r)).transpose()
    }

    async fn add_visit(
        &self,
        kine: KineId,
        patient: PatientId,
        id: Uuid,
        v: InPersonVisit,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO in_person_visits (id, kine_id, patient_id, date, kind, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id.to_string())
            .bind(kine.to_string())
            .bind(patient.to_string())
            .bind(v.date.format("%Y-%m-%d").to_string())
            .bind(v.kind.as_str())
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn visits(&self, kine: KineId, patient: PatientId) -> Result<Vec<VisitRow>> {
        let rows = sqlx::query(
            "SELECT * FROM in_person_visits WHERE kine_id = $1 AND patient_id = $2 ORDER BY date",
        )
        .bind(kine.to_string())
        .bind(patient.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(VisitRow {
                    id: uuid(&get::<String>(r, "id")?)?,
                    patient,
                    visit: InPersonVisit {
                        date: date(&get::<String>(r, "date")?)?,
                        kind: VisitKind::parse(&get::<String>(r, "kind")?)
                            .ok_or_else(|| corrupt("visit kind"))?,
                    },
                })
            })
            .collect()
    }

    async fn add_consent(
        &self,
        kine: KineId,
        patient: PatientId,
        id: Uuid,
        c: &Consent,
        representative: Option<&Representative>,
        recorded: Option<&Announcement>,
    ) -> Result<()> {
        let insert = sqlx::query(
            "INSERT INTO consents (id, kine_id, patient_id, recorded_by, method, text_version, recorded_at, withdrawn_at, representative_name, representative_relation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.to_string())
        .bind(kine.to_string())
        .bind(patient.to_string())
        .bind(c.recorded_by.as_str())
        .bind(&c.method)
        .bind(&c.text_version)
        .bind(ms(c.recorded_at))
        .bind(c.withdrawn_at.map(ms))
        .bind(representative.map(|r| r.name.clone()))
        .bind(representative.map(|r| r.relation.clone()));
        let Some(a) = recorded else {
            // Nothing to announce (no webhook configured): one autocommit statement.
            insert.execute(&self.pool).await.map_err(unavailable)?;
            return Ok(());
        };
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        insert.execute(&mut *tx).await.map_err(unavailable)?;
        queue_patient_webhooks(&mut tx, kine, patient, std::slice::from_ref(a), a.at).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn consents(&self, kine: KineId, patient: PatientId) -> Result<Vec<ConsentRow>> {
        let rows = sqlx::query(
            "SELECT * FROM consents WHERE kine_id = $1 AND patient_id = $2 ORDER BY recorded_at",
        )
        .bind(kine.to_string())
        .bind(patient.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(consent_row).collect()
    }

    async fn admission_facts(
        &self,
        kine: KineId,
        patient: PatientId,
    ) -> Result<Option<AdmissionFacts>> {
        // The patient's row once per visit and consent (or once, with NULLs, when there are
        // none): one round trip instead of three.
        let rows = sqlx::query(concat!(
            "SELECT ",
            fact_columns!(),
            " FROM patients p LEFT JOIN ",
            fact_items!("patient_id = $1 AND kine_id = $2"),
            " ON 1 = 1 WHERE p.id = $1 AND p.kine_id = $2"
        ))
        .bind(patient.to_string())
        .bind(kine.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        admission_facts_of(&rows)
    }

    async fn withdraw_consent(
        &self,
        kine: KineId,
        id: Uuid,
        at: DateTime<Utc>,
        withdrawn: Option<&Announcement>,
    ) -> Result<Option<ConsentRow>> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let rows = sqlx::query("UPDATE consents SET withdrawn_at = $1 WHERE id = $2 AND kine_id = $3 AND withdrawn_at IS NULL RETURNING *")
            .bind(ms(at))
            .bind(id.to_string())
            .bind(kine.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        let Some(row) = rows.first().map(consent_row).transpose()? else {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(None);
        };
        if let Some(a) = withdrawn {
            queue_patient_webhooks(&mut tx, kine, row.patient, std::slice::from_ref(a), a.at)
                .await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(row))
    }

    async fn add_prescription(
        &self,
        patient: PatientId,
        id: Uuid,
        d: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO prescriptions (id, patient_id, date, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(patient.to_string())
        .bind(d.format("%Y-%m-%d").to_string())
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn prescriptions(&self, patient: PatientId) -> Result<Vec<PrescriptionRow>> {
        let rows = sqlx::query("SELECT * FROM prescriptions WHERE patient_id = $1 ORDER BY date")
            .bind(patient.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(PrescriptionRow {
                    id: uuid(&get::<String>(r, "id")?)?,
                    patient,
                    date: date(&get::<String>(r, "date")?)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_session(
        &self,
        s: &Session,
        billing_class: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        insert_session(&mut conn, s, billing_class, now).await
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRow>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| session_row(&r)).transpose()
    }

    async fn sessions_between(
        &self,
        kine: KineId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query("SELECT * FROM sessions WHERE kine_id = $1 AND starts_at >= $2 AND starts_at < $3 ORDER BY starts_at")
            .bind(kine.to_string())
            .bind(ms(from))
            .bind(ms(to))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(session_row).collect()
    }

    async fn live_sessions(&self) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query("SELECT * FROM sessions WHERE status = 'live'")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(session_row).collect()
    }

    async fn live_sessions_closed_by(&self, at: DateTime<Utc>) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query("SELECT * FROM sessions WHERE status = 'live' AND window_end <= $1")
            .bind(ms(at))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(session_row).collect()
    }

    async fn transition(
        &self,
        id: SessionId,
        from: &[SessionStatus],
        to: SessionStatus,
    ) -> Result<bool> {
        // `from` is a small fixed set; spell it out rather than building SQL text.
        let mut moved = false;
        for f in from {
            let r = sqlx::query("UPDATE sessions SET status = $1 WHERE id = $2 AND status = $3")
                .bind(to.as_str())
                .bind(id.to_string())
                .bind(f.as_str())
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            if r.rows_affected() > 0 {
                moved = true;
                break;
            }
        }
        Ok(moved)
    }

    async fn seat(
        &self,
        session: SessionId,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<ParticipantId> {
        if role == Role::Companion {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO participants (id, session_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id.to_string())
            .bind(session.to_string())
            .bind(role.as_str())
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            return Ok(ParticipantId(id));
        }
        sqlx::query(
            "INSERT INTO participants (id, session_id, role, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (session_id, role) WHERE role <> 'companion' DO NOTHING",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(session.to_string())
        .bind(role.as_str())
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        let row = sqlx::query("SELECT id FROM participants WHERE session_id = $1 AND role = $2")
            .bind(session.to_string())
            .bind(role.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(ParticipantId(uuid(&get::<String>(&row, "id")?)?))
    }

    async fn issue_link(&self, l: &LinkRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO links (jti, session_id, participant_id, role, issued_at, not_before, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(l.jti.to_string())
        .bind(l.session.to_string())
        .bind(l.participant.to_string())
        .bind(l.role.as_str())
        .bind(ms(l.issued_at))
        .bind(ms(l.not_before))
        .bind(ms(l.expires_at))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn link(&self, jti: Uuid) -> Result<Option<IssuedSeat>> {
        let row = sqlx::query(
            "SELECT session_id, participant_id, role, revoked_at FROM links WHERE jti = $1",
        )
        .bind(jti.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|r| {
            Ok(IssuedSeat {
                session: SessionId(uuid(&get::<String>(&r, "session_id")?)?),
                participant: ParticipantId(uuid(&get::<String>(&r, "participant_id")?)?),
                role: role(&get::<String>(&r, "role")?)?,
                revoked: get::<Option<i64>>(&r, "revoked_at")?.is_some(),
            })
        })
        .transpose()
    }

    async fn link_session(&self, jti: Uuid, facts: bool) -> Result<Option<LinkedSession>> {
        // The seat's state is a primary-key look-up and the acceptance one indexed row: what
        // the join would otherwise read in three more round trips. With the patient's facts,
        // the link's row comes once per visit and consent of the patient (see
        // `admission_facts`), whose pair is read from the link by an uncorrelated sub-query,
        // so that both backends look it up by index.
        macro_rules! link_columns {
            () => {
                "SELECT s.*, l.session_id AS link_session, l.participant_id AS link_participant,
                        l.role AS link_role, l.revoked_at AS link_revoked_at, k.name AS kine_name,
                        COALESCE(s.hn_price_cents, k.hn_price_cents) AS hn_price_to_accept,
                        (SELECT a.price_cents FROM hn_price_acceptances a WHERE a.session_id = s.id
                         ORDER BY a.accepted_at DESC LIMIT 1) AS hn_accepted_cents,
                        ss.last_seq AS seat_last_seq, ss.last_kind AS seat_last_kind,
                        ss.admitted AS seat_admitted"
            };
        }
        macro_rules! link_tables {
            () => {
                " FROM links l JOIN sessions s ON s.id = l.session_id JOIN kines k ON k.id = s.kine_id
                  LEFT JOIN seat_states ss
                         ON ss.session_id = l.session_id AND ss.participant_id = l.participant_id"
            };
        }
        let sql = if facts {
            concat!(
                link_columns!(),
                ", ",
                fact_columns!(),
                link_tables!(),
                " LEFT JOIN patients p ON p.id = s.patient_id AND p.kine_id = s.kine_id
                  LEFT JOIN ",
                fact_items!(
                    "(patient_id, kine_id) = (SELECT s2.patient_id, s2.kine_id
                       FROM links l2 JOIN sessions s2 ON s2.id = l2.session_id WHERE l2.jti = $1)"
                ),
                " ON p.id IS NOT NULL WHERE l.jti = $1"
            )
        } else {
            concat!(link_columns!(), link_tables!(), " WHERE l.jti = $1")
        };
        let rows = sqlx::query(sql)
            .bind(jti.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let seat = IssuedSeat {
            session: SessionId(uuid(&get::<String>(r, "link_session")?)?),
            participant: ParticipantId(uuid(&get::<String>(r, "link_participant")?)?),
            role: role(&get::<String>(r, "link_role")?)?,
            revoked: get::<Option<i64>>(r, "link_revoked_at")?.is_some(),
        };
        let seat_state = match get::<Option<i64>>(r, "seat_last_seq")? {
            None => None,
            Some(last_seq) => Some(SeatState {
                last_seq,
                last_kind: PresenceKind::parse(&get::<String>(r, "seat_last_kind")?)
                    .ok_or_else(|| corrupt("event kind"))?,
                admitted: get::<i64>(r, "seat_admitted")? != 0,
            }),
        };
        Ok(Some(LinkedSession {
            seat,
            row: session_row(r)?,
            kine_name: get::<String>(r, "kine_name")?,
            hn_price_cents: get(r, "hn_price_to_accept")?,
            hn_accepted_cents: get(r, "hn_accepted_cents")?,
            seat_state,
            facts: if facts {
                admission_facts_of(&rows)?
            } else {
                None
            },
        }))
    }

    async fn revoke_link(&self, jti: Uuid, at: DateTime<Utc>) -> Result<Option<SessionId>> {
        let rows = sqlx::query("UPDATE links SET revoked_at = COALESCE(revoked_at, $1) WHERE jti = $2 RETURNING session_id")
            .bind(ms(at))
            .bind(jti.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.first()
            .map(|r| Ok(SessionId(uuid(&get::<String>(r, "session_id")?)?)))
            .transpose()
    }

    async fn revoke_session_links(&self, session: SessionId, at: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE links SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL",
        )
        .bind(ms(at))
        .bind(session.to_string())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(r.rows_affected())
    }

    async fn finalize(
        &self,
        session: SessionId,
        ended_at: DateTime<Utc>,
        billable_seconds: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        // One statement: the `finalized_at IS NULL` guard makes it happen exactly once, whatever
        // the concurrency, and a cancelled session is never turned into an ended one.
        let r = sqlx::query(
            "UPDATE sessions SET status = 'ended', ended_at = $1, billable_seconds = $2, finalized_at = $3
             WHERE id = $4 AND finalized_at IS NULL AND status IN ('scheduled', 'live')",
        )
        .bind(ms(ended_at))
        .bind(billable_seconds)
        .bind(ms(now))
        .bind(session.to_string())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(r.rows_affected() == 1)
    }
}

/// The statement of one append (see [`written`] for why its row is read with `fetch_all`).
const APPEND_EVENT: &str = "INSERT INTO presence_events (session_id, at, participant_id, role, kind, detail) VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn append_query<'q>(session: SessionId, e: &'q NewEvent) -> AnyQuery<'q> {
    bind_event(sqlx::query(APPEND_EVENT), session, e)
}

/// An event's six values, in the order of `presence_events (session_id, at, participant_id,
/// role, kind, detail)`.
fn bind_event<'q>(query: AnyQuery<'q>, session: SessionId, e: &'q NewEvent) -> AnyQuery<'q> {
    query
        .bind(session.to_string())
        .bind(ms(e.at))
        .bind(e.participant.map(|p| p.to_string()))
        .bind(e.role.map(Role::as_str))
        .bind(e.kind.as_str())
        .bind(&e.detail)
}

/// The seat's last event, for an event that expects it ([`NewEvent::expect_last_seq`]), read
/// in the event's transaction before it is written. Postgres locks the seat's row: an append
/// for the same seat by another transaction (the seat rule's upsert takes that row) either
/// committed before, and is read here, or waits until this transaction ends. SQLite: the
/// transaction holds the write lock from its start (`BEGIN IMMEDIATE`).
const SEAT_LAST_SEQ_POSTGRES: &str =
    "SELECT last_seq FROM seat_states WHERE session_id = $1 AND participant_id = $2 FOR UPDATE";
const SEAT_LAST_SEQ_SQLITE: &str =
    "SELECT last_seq FROM seat_states WHERE session_id = $1 AND participant_id = $2";

/// The seat rule's refusal (a trigger of migration 0013, on both backends), or any other error.
fn append_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.message().contains("seat_left") => StoreError::SeatLeft,
        _ => unavailable(e),
    }
}

/// `scheduled` -> `live`, in the transaction of the event that opens the session
/// ([`NewEvent::opens_session`]); a session in any other state is left as it is.
async fn open_session(conn: &mut sqlx::AnyConnection, session: SessionId) -> Result<()> {
    sqlx::query("UPDATE sessions SET status = 'live' WHERE id = $1 AND status = 'scheduled'")
        .bind(session.to_string())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

fn appended(rows: std::result::Result<Vec<AnyRow>, sqlx::Error>) -> Result<Appended> {
    match rows.map_err(append_error) {
        Ok(rows) => Ok(Appended::Written(get(written(&rows)?, "seq")?)),
        Err(StoreError::SeatLeft) => Ok(Appended::SeatLeft),
        Err(e) => Err(e),
    }
}

impl SqlStore {
    /// Waits for this process's turn to write (SQLite; nothing to wait for on Postgres, whose
    /// writers lock rows, not the database). Held for the whole write, connection included.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let turn = self.write_turn.as_ref()?;
        let asked = std::time::Instant::now();
        let guard = turn.lock().await;
        // Durations only (`bench/run --join-timings`).
        tracing::debug!(
            target: "telesoin_store::write_turn",
            waited_us = asked.elapsed().as_micros(),
            "write turn"
        );
        Some(guard)
    }

    /// The batch in one transaction, with the announcements of the events written; the events
    /// `skip`ped are not tried (the seat rule refused them in an earlier try) and answered
    /// [`Appended::SeatLeft`]. SQLite: an event the seat rule refuses aborts its own statement
    /// only, the transaction goes on. Postgres aborts the whole transaction on any error: it is
    /// rolled back and `Err(i)` names the refused event, for a new try without it. Any other
    /// error rolls everything back.
    async fn append_in_one(
        &self,
        batch: &[(SessionId, NewEvent)],
        skip: &[bool],
    ) -> Result<std::result::Result<Vec<Appended>, usize>> {
        let _turn = self.write_turn().await;
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        conn.execute(match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        })
        .await
        .map_err(unavailable)?;
        let written = async {
            let mut out = Vec::with_capacity(batch.len());
            for (i, (session, e)) in batch.iter().enumerate() {
                if skip[i] {
                    out.push(Appended::SeatLeft);
                    continue;
                }
                if let Some(expected) = e.expect_last_seq {
                    let last = match e.participant {
                        Some(p) => self.seat_last_seq(&mut conn, *session, p).await?,
                        None => None,
                    };
                    if last != Some(expected) {
                        out.push(Appended::Superseded);
                        continue;
                    }
                }
                let rows = append_query(*session, e).fetch_all(&mut *conn).await;
                match appended(rows)? {
                    Appended::SeatLeft if self.backend == Backend::Postgres => return Ok(Err(i)),
                    a @ (Appended::SeatLeft | Appended::Superseded) => out.push(a),
                    a @ Appended::Written(_) => {
                        if e.opens_session {
                            open_session(&mut conn, *session).await?;
                        }
                        if let Some(announce) = &e.announce {
                            queue_webhooks(
                                &mut *conn,
                                *session,
                                std::slice::from_ref(announce),
                                announce.at,
                            )
                            .await?;
                        }
                        out.push(a);
                    }
                }
            }
            Ok::<_, StoreError>(Ok(out))
        }
        .await;
        match written {
            Ok(Ok(out)) => {
                conn.execute("COMMIT").await.map_err(unavailable)?;
                Ok(Ok(out))
            }
            other => {
                // Never back to the pool inside a transaction.
                let _ = conn.execute("ROLLBACK").await;
                other
            }
        }
    }

    /// The batch's rows in one `INSERT`, every row or none, with an `UPDATE` of the sessions it
    /// opens: on Postgres in the same statement (a data-modifying `WITH`, run to completion
    /// whatever the outer query reads), on SQLite in one query of the transaction's statements
    /// (one hop to the connection's thread). The seat rule's
    /// triggers run for each row in order, as in a transaction of one statement per event; a
    /// refusal fails the whole statement ([`StoreError::SeatLeft`]). Sequence numbers are taken
    /// in the rows' order.
    async fn append_in_one_statement(
        &self,
        batch: &[(SessionId, NewEvent)],
    ) -> Result<Vec<Appended>> {
        use std::fmt::Write as _;
        let _turn = self.write_turn().await;
        let mut insert = String::from(
            "INSERT INTO presence_events (session_id, at, participant_id, role, kind, detail) VALUES ",
        );
        value_rows(&mut insert, batch.len(), 6);
        insert.push_str(" RETURNING seq");
        let mut opening: Vec<SessionId> = batch
            .iter()
            .filter(|(_, e)| e.opens_session)
            .map(|(s, _)| *s)
            .collect();
        opening.sort_unstable_by_key(|s| s.0);
        opening.dedup();
        let opened = |sql: &mut String| {
            for i in 0..opening.len() {
                let sep = if i == 0 { "" } else { ", " };
                let _ = write!(sql, "{sep}${}", batch.len() * 6 + i + 1);
            }
        };
        let sql = match self.backend {
            // Its own RETURNING, in an order of SQLite's choosing: sorted below (the rows'
            // sequence numbers grow in their order).
            _ if opening.is_empty() => insert,
            // No data-modifying WITH: the transaction's statements in one query, run by the
            // connection's thread one after the other (one hop, not one per statement).
            Backend::Sqlite => {
                let mut sql = format!(
                    "BEGIN IMMEDIATE; {insert}; UPDATE sessions SET status = 'live' WHERE status = 'scheduled' AND id IN ("
                );
                opened(&mut sql);
                sql.push_str("); COMMIT");
                sql
            }
            Backend::Postgres => {
                let mut sql = format!(
                    "WITH ins AS ({insert}), opened AS (UPDATE sessions SET status = 'live' WHERE status = 'scheduled' AND id IN ("
                );
                opened(&mut sql);
                sql.push_str(") RETURNING id) SELECT seq FROM ins");
                sql
            }
        };
        let mut query = sqlx::query(&sql);
        for (session, e) in batch {
            query = bind_event(query, *session, e);
        }
        for session in &opening {
            query = query.bind(session.to_string());
        }
        let asked = std::time::Instant::now();
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let acquired = asked.elapsed();
        let fetched = query.fetch_all(&mut *conn).await;
        // Durations only (`bench/run --join-timings`): the pool's connection, then the query on
        // it (SQLite: on the connection's own thread), the turn already held.
        tracing::debug!(
            target: "telesoin_store::write_turn",
            rows = batch.len(),
            acquire_us = acquired.as_micros(),
            query_us = asked.elapsed().saturating_sub(acquired).as_micros(),
            "append statement"
        );
        let rows = match fetched {
            Ok(rows) => rows,
            Err(e) => {
                // SQLite: a statement that failed after `BEGIN` leaves the transaction open;
                // never back to the pool inside one (no transaction: an error, ignored).
                if self.backend == Backend::Sqlite && !opening.is_empty() {
                    let _ = conn.execute("ROLLBACK").await;
                }
                return Err(append_error(e));
            }
        };
        if rows.len() != batch.len() {
            return Err(StoreError::Unavailable(
                "the append returned a row count other than the batch's".into(),
            ));
        }
        let mut seqs = rows
            .iter()
            .map(|r| get::<i64>(r, "seq"))
            .collect::<Result<Vec<_>>>()?;
        seqs.sort_unstable();
        Ok(seqs.into_iter().map(Appended::Written).collect())
    }

    /// The seat's last event, read in the transaction on `conn` (see [`SEAT_LAST_SEQ_POSTGRES`]).
    async fn seat_last_seq(
        &self,
        conn: &mut sqlx::AnyConnection,
        session: SessionId,
        participant: ParticipantId,
    ) -> Result<Option<i64>> {
        let statement = match self.backend {
            Backend::Postgres => SEAT_LAST_SEQ_POSTGRES,
            Backend::Sqlite => SEAT_LAST_SEQ_SQLITE,
        };
        let row = sqlx::query(statement)
            .bind(session.to_string())
            .bind(participant.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
        row.map(|r| get::<i64>(&r, "last_seq")).transpose()
    }
}

#[async_trait]
impl EventStore for SqlStore {
    async fn append_event(&self, session: SessionId, e: &NewEvent) -> Result<i64> {
        let outcome = if e.announce.is_none() && !e.opens_session && e.expect_last_seq.is_none() {
            let _turn = self.write_turn().await;
            let rows = append_query(session, e).fetch_all(&self.pool).await;
            appended(rows)?
        } else {
            self.append_events(&[(session, e.clone())]).await?[0]
        };
        match outcome {
            Appended::Written(seq) => Ok(seq),
            Appended::SeatLeft => Err(StoreError::SeatLeft),
            Appended::Superseded => Err(StoreError::Superseded),
        }
    }

    async fn append_events(&self, batch: &[(SessionId, NewEvent)]) -> Result<Vec<Appended>> {
        match batch {
            [] => return Ok(Vec::new()),
            // One autocommit statement: a transaction would only add two. (An event that
            // expects its seat's last event is checked and written in one transaction.)
            [(session, e)]
                if e.announce.is_none() && !e.opens_session && e.expect_last_seq.is_none() =>
            {
                let _turn = self.write_turn().await;
                let rows = append_query(*session, e).fetch_all(&self.pool).await;
                return Ok(vec![appended(rows)?]);
            }
            _ => {}
        }
        // A batch of rows and nothing else (the sessions it opens aside) is one round trip
        // (SQLite: one hop to its connection's thread) where BEGIN, a statement per event and
        // COMMIT were three or more. A batch the seat rule refuses a row of is written below,
        // event by event, which finds which.
        if batch
            .iter()
            .all(|(_, e)| e.announce.is_none() && e.expect_last_seq.is_none())
        {
            match self.append_in_one_statement(batch).await {
                Ok(out) => return Ok(out),
                Err(StoreError::SeatLeft) => {}
                Err(e) => return Err(e),
            }
        }
        // All or nothing: each try is one transaction; a try that the seat rule cut short
        // (Postgres) is tried again without the refused event, at most once per event.
        let mut skip = vec![false; batch.len()];
        loop {
            match self.append_in_one(batch, &skip).await? {
                Ok(out) => return Ok(out),
                Err(refused) => skip[refused] = true,
            }
        }
    }

    async fn events(&self, session: SessionId) -> Result<Vec<EventRow>> {
        let rows = sqlx::query("SELECT * FROM presence_events WHERE session_id = $1 ORDER BY seq")
            .bind(session.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    seq: get(r, "seq")?,
                    at: instant(get(r, "at")?)?,
                    participant: get::<Option<String>>(r, "participant_id")?
                        .map(|s| uuid(&s).map(ParticipantId))
                        .transpose()?,
                    role: get::<Option<String>>(r, "role")?
                        .map(|s| role(&s))
                        .transpose()?,
                    kind: PresenceKind::parse(&get::<String>(r, "kind")?)
                        .ok_or_else(|| corrupt("event kind"))?,
                    detail: get(r, "detail")?,
                })
            })
            .collect()
    }

    async fn seat_state(
        &self,
        session: SessionId,
        participant: ParticipantId,
    ) -> Result<Option<SeatState>> {
        let row = sqlx::query(
            "SELECT last_seq, last_kind, admitted FROM seat_states WHERE session_id = $1 AND participant_id = $2",
        )
        .bind(session.to_string())
        .bind(participant.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|r| {
            Ok(SeatState {
                last_seq: get(&r, "last_seq")?,
                last_kind: PresenceKind::parse(&get::<String>(&r, "last_kind")?)
                    .ok_or_else(|| corrupt("event kind"))?,
                admitted: get::<i64>(&r, "admitted")? != 0,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// Inserts a session row (`SessionStore::create_session`), on `conn` (a transaction's, for
/// `OutboundStore::schedule_announced`).
pub(crate) async fn insert_session(
    conn: &mut sqlx::AnyConnection,
    s: &Session,
    billing_class: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, kine_id, patient_id, starts_at, window_start, window_end, act_code, status, auto_admit, patient_consent_on_join, billing_class, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(s.id.to_string())
    .bind(s.kine.to_string())
    .bind(s.patient.to_string())
    .bind(ms(s.starts_at))
    .bind(ms(s.window_start))
    .bind(ms(s.window_end))
    .bind(&s.act_code)
    .bind(s.status.as_str())
    .bind(i64::from(s.auto_admit))
    .bind(i64::from(s.patient_consent_on_join))
    .bind(billing_class)
    .bind(ms(now))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

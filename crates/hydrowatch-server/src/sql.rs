//! The two databases the server runs on, behind one narrow interface: statements with
//! positional parameters in, rows of plain cells out. The queries of [`crate::db`] are written
//! once, in the SQL both SQLite and PostgreSQL accept; this module only translates parameter
//! markers (`?1` for SQLite, `$1` for PostgreSQL) and cell types.
//!
//! Invariants: every integer column is 64-bit on both (`BIGINT`), every real one a double, so a
//! value reads back as what was written; a text parameter that may be NULL is written
//! `CAST(?N AS TEXT)` where the query tests it, which PostgreSQL needs to know its type.

use std::collections::HashMap;

use postgres::types::{ToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};

/// Why the storage failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("server database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("server database (PostgreSQL): {0}")]
    Postgres(#[from] postgres::Error),
    /// No PostgreSQL connection could be had.
    #[error("server database (PostgreSQL): {0}")]
    Pool(#[from] r2d2::Error),
    /// The database was written by a newer hydrowatch (its schema version, this program's).
    #[error(
        "server database: schema version {0} is newer than this program's ({1}): upgrade hydrowatch"
    )]
    Newer(i64, i64),
    /// Message ids stored before with other content (a device reusing an id).
    #[error("message ids {0:?} were stored before with other content")]
    Conflict(Vec<String>),
    /// A stored body that no longer reads as its type (message id, the parser's error).
    #[error("server database: stored message {0} does not read back: {1}")]
    Stored(String, String),
    /// A column held something else than the query expects.
    #[error("server database: column {0} should be {1}, found {2}")]
    Column(usize, &'static str, String),
}

/// A statement's parameter.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit integer, or NULL.
    OptInt(Option<i64>),
    /// A double.
    Real(f64),
    /// Text, or NULL.
    Text(Option<&'a str>),
}

/// One cell of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A double.
    Real(f64),
    /// Text.
    Text(String),
}

/// A result row.
#[derive(Debug, Clone)]
pub struct Row(Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> &Cell {
        self.0.get(i).unwrap_or(&Cell::Null)
    }

    /// Column `i` as an integer, or None when NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.cell(i) {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            other => Err(DbError::Column(i, "an integer", format!("{other:?}"))),
        }
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        self.opt_int(i)?
            .ok_or_else(|| DbError::Column(i, "an integer", "NULL".into()))
    }

    /// Column `i` as a double.
    pub fn real(&self, i: usize) -> Result<f64, DbError> {
        match self.cell(i) {
            Cell::Real(v) => Ok(*v),
            Cell::Int(v) => Ok(*v as f64),
            other => Err(DbError::Column(i, "a number", format!("{other:?}"))),
        }
    }

    /// Column `i` as text, or None when NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.cell(i) {
            Cell::Null => Ok(None),
            Cell::Text(v) => Ok(Some(v.clone())),
            other => Err(DbError::Column(i, "text", format!("{other:?}"))),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String, DbError> {
        match self.cell(i) {
            Cell::Text(v) => Ok(v.clone()),
            other => Err(DbError::Column(i, "text", format!("{other:?}"))),
        }
    }
}

/// A connection (or an open transaction) of either database.
pub trait Sql {
    /// Runs statements without parameters (the schema).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// Runs one statement; returns the rows it changed.
    fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64, DbError>;
    /// Runs one query; returns its rows.
    fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, DbError>;
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Int(v) => ToSqlOutput::from(v),
            Arg::OptInt(Some(v)) => ToSqlOutput::from(v),
            Arg::OptInt(None) => ToSqlOutput::from(rusqlite::types::Null),
            Arg::Real(v) => ToSqlOutput::from(v),
            Arg::Text(Some(v)) => ToSqlOutput::from(v),
            Arg::Text(None) => ToSqlOutput::from(rusqlite::types::Null),
        })
    }
}

impl Sql for rusqlite::Connection {
    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.execute_batch(sql)?)
    }

    fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64, DbError> {
        let mut stmt = self.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(args))? as u64)
    }

    fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.prepare_cached(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(match r.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Real(v) => Cell::Real(v),
                    ValueRef::Text(v) | ValueRef::Blob(v) => {
                        Cell::Text(String::from_utf8_lossy(v).into_owned())
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}

/// `?1` markers as PostgreSQL writes them: `$1`.
fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn pg_args<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            Arg::Int(v) => v as &(dyn ToSql + Sync),
            Arg::OptInt(v) => v,
            Arg::Real(v) => v,
            Arg::Text(v) => v,
        })
        .collect()
}

fn pg_row(row: &postgres::Row) -> Result<Row, DbError> {
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let t = column.type_();
        cells.push(if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?
                .map_or(Cell::Null, Cell::Int)
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map_or(Cell::Null, |v| Cell::Int(v.into()))
        } else if *t == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)?
                .map_or(Cell::Null, Cell::Real)
        } else {
            row.try_get::<_, Option<String>>(i)?
                .map_or(Cell::Null, Cell::Text)
        });
    }
    Ok(Row(cells))
}

/// A pooled PostgreSQL connection with its prepared statements. The driver keeps none, and
/// preparing a statement at each use costs one more round trip per statement (docs/BENCHMARKS.md,
/// the central server's ingest). That is why the pool's manager is ours and not
/// r2d2_postgres's, whose connection is a bare client.
pub struct PgConnection {
    /// Always there; taken only when the connection is dropped (see `Drop`).
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
}

/// Makes [`PgConnection`]s for the pool.
#[derive(Debug)]
pub struct PgManager(pub postgres::Config);

impl r2d2::ManageConnection for PgManager {
    type Connection = PgConnection;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConnection, postgres::Error> {
        Ok(PgConnection {
            client: Some(self.0.connect(postgres::NoTls)?),
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConnection) -> Result<(), postgres::Error> {
        conn.client
            .as_mut()
            .expect("open until dropped")
            .simple_query("")
            .map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        conn.client.as_ref().is_none_or(postgres::Client::is_closed)
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        // The client says goodbye to the server by blocking on a runtime of its own, which tokio
        // forbids on a thread that drives async tasks (the server's, dropping its state when it
        // shuts down): there it is dropped on a thread of its own.
        if let Some(client) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            std::thread::scope(|s| {
                s.spawn(move || drop(client));
            });
        }
    }
}

impl PgConnection {
    /// Runs `f` on the connection.
    pub fn read<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        f(&mut Pg {
            client: self.client.as_mut().expect("open until dropped"),
            statements: &mut self.statements,
        })
    }

    /// Runs `f` in a transaction, committed when `f` succeeds (rolled back when it fails).
    pub fn write<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, E>,
    ) -> Result<T, E> {
        let client = self.client.as_mut().expect("open until dropped");
        let mut tx = client.transaction().map_err(DbError::from)?;
        let value = f(&mut Pg {
            client: &mut tx,
            statements: &mut self.statements,
        })?;
        tx.commit().map_err(DbError::from)?;
        Ok(value)
    }
}

/// A client or a transaction, with its connection's statements.
struct Pg<'a, C> {
    client: &'a mut C,
    statements: &'a mut HashMap<String, postgres::Statement>,
}

impl<C: postgres::GenericClient> Pg<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&dollars(sql))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

impl<C: postgres::GenericClient> Sql for Pg<'_, C> {
    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.client.batch_execute(sql)?)
    }

    fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64, DbError> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, &pg_args(args))?)
    }

    fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, DbError> {
        let statement = self.statement(sql)?;
        self.client
            .query(&statement, &pg_args(args))?
            .iter()
            .map(pg_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn markers_become_dollars_and_nothing_else_changes() {
        assert_eq!(
            super::dollars("SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?'"
        );
    }
}

//! The last run of each scheduled job, so that a job missed during downtime runs once at start-up.

use hydrowatch_core::Timestamp;
use rusqlite::OptionalExtension;

use crate::{Result, Store};

/// The record of a job's last run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    /// When it ran.
    pub at: Timestamp,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it reported (the error, when it failed).
    pub message: String,
}

impl Store {
    /// Records that job `name` ran at `at`.
    pub fn record_job(&self, name: &str, at: Timestamp, ok: bool, message: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO jobs(name, last_run, ok, message) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET last_run = excluded.last_run, ok = excluded.ok, message = excluded.message",
                (name, at, ok, message),
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The last run of every job that ever ran, by name.
    pub fn jobs(&self) -> Result<Vec<(String, JobRun)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, last_run, ok, message FROM jobs ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    JobRun {
                        at: r.get(1)?,
                        ok: r.get(2)?,
                        message: r.get(3)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>());
        rows.map_err(|e| self.err(e))
    }

    /// The last run of job `name`, if it ever ran.
    pub fn last_job(&self, name: &str) -> Result<Option<JobRun>> {
        self.conn
            .query_row(
                "SELECT last_run, ok, message FROM jobs WHERE name = ?1",
                [name],
                |r| {
                    Ok(JobRun {
                        at: r.get(0)?,
                        ok: r.get(1)?,
                        message: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_run_is_kept_per_job() {
        let (_d, s) = crate::test_util::store("UTC");
        assert_eq!(s.last_job("forecast").unwrap(), None);
        s.record_job("forecast", 100, false, "no model").unwrap();
        s.record_job("forecast", 200, true, "").unwrap();
        s.record_job("retention", 150, true, "").unwrap();
        let run = s.last_job("forecast").unwrap().unwrap();
        assert_eq!((run.at, run.ok), (200, true));
        assert_eq!(s.last_job("retention").unwrap().unwrap().at, 150);
    }
}

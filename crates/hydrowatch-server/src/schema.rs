//! The server's schema, the same on SQLite and PostgreSQL but for each one's auto-numbered key,
//! the body of one trigger and PostgreSQL's partitions of the large tables, and the migration of
//! older versions to it.
//!
//! Invariants: [`migrate`] runs in one transaction (the caller's); it never drops a table it does
//! not recreate and copy back; what an older version stored is history to the notifier (it is
//! never put in `unplanned_alerts`).

use crate::partitions::{self, PARTITIONED};
use crate::sql::{Arg, DbError, Sql};

type Result<T> = std::result::Result<T, DbError>;

/// The schema's version: 7 never reuses an auto-numbered id on SQLite (`AUTOINCREMENT`: a
/// rule's or a notification's id, which receivers see, was given again after the greatest was
/// deleted) and keeps each alarm's latest state (`alarm_latest`, so that the list to handle
/// reads only what is to handle, not every transition ever stored); 6 adds retention (the
/// devices' `seen_before`, the arrival of the newest message retention removed; the forecasts'
/// and actuals' indexes by time) and, on PostgreSQL, partitions messages, forecasts and actuals
/// by month ([`crate::partitions`]); 5 adds the MQTT messages refused for good
/// (`refused_messages`) and the messages' index by arrival (retention, monitoring); 4 adds
/// notification rules, the durable queue of notifications and the alert rows the notifier has
/// yet to plan (`unplanned_alerts`); 3 adds people (users, sessions, operator tokens) and the
/// alarms' server-side state and audit records; 2 keys messages by (device, message id)
/// (version 1, before it had no version table, keyed them by message id alone across the
/// fleet).
const SCHEMA_VERSION: i64 = 7;

/// The schema of both databases; `{id}` is each one's auto-numbered key, `{with:TABLE}` and
/// `{partition:TABLE}` its partitioning of TABLE (see [`schema`]).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    seen_before BIGINT
);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    envelope TEXT NOT NULL,
    PRIMARY KEY (device_id, message_id{with:messages})
){partition:messages};
CREATE INDEX IF NOT EXISTS messages_by_device ON messages (device_id, received_at);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (received_at);
CREATE TABLE IF NOT EXISTS alerts (
    id {id},
    message_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    alarm_id BIGINT NOT NULL,
    series TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    stage BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (device_id, message_id)
);
CREATE INDEX IF NOT EXISTS alerts_by_alarm ON alerts (device_id, alarm_id, created_at);
CREATE TABLE IF NOT EXISTS alarm_latest (
    device_id TEXT NOT NULL,
    alarm_id BIGINT NOT NULL,
    last_id BIGINT NOT NULL,
    series TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    stage BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    opened_at BIGINT NOT NULL,
    highest BIGINT NOT NULL,
    need_ack BIGINT,
    arrived_at BIGINT NOT NULL,
    to_handle BIGINT NOT NULL,
    PRIMARY KEY (device_id, alarm_id)
);
CREATE INDEX IF NOT EXISTS alarm_latest_to_handle ON alarm_latest (to_handle, device_id);
CREATE TABLE IF NOT EXISTS forecasts (
    message_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    series TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (device_id, message_id{with:forecasts})
){partition:forecasts};
CREATE INDEX IF NOT EXISTS forecasts_by_series ON forecasts (device_id, series, issued_at);
CREATE INDEX IF NOT EXISTS forecasts_by_time ON forecasts (issued_at);
CREATE TABLE IF NOT EXISTS actuals (
    device_id TEXT NOT NULL,
    series TEXT NOT NULL,
    hour BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device_id, series, hour)
){partition:actuals};
CREATE INDEX IF NOT EXISTS actuals_by_hour ON actuals (hour);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS operator_tokens (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_state (
    device_id TEXT NOT NULL,
    alarm_id BIGINT NOT NULL,
    acked_through BIGINT,
    acked_by TEXT,
    acked_at BIGINT,
    shelved_by TEXT,
    shelved_until BIGINT,
    shelved_until_clear BIGINT NOT NULL DEFAULT 0,
    shelve_reason TEXT,
    assigned_to TEXT,
    PRIMARY KEY (device_id, alarm_id)
);
CREATE TABLE IF NOT EXISTS alarm_actions (
    id {id},
    device_id TEXT NOT NULL,
    alarm_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    action TEXT NOT NULL,
    comment TEXT,
    until BIGINT,
    assignee TEXT
);
CREATE INDEX IF NOT EXISTS alarm_actions_by_alarm ON alarm_actions (device_id, alarm_id, id);
CREATE TABLE IF NOT EXISTS notification_rules (
    id {id},
    name TEXT NOT NULL UNIQUE,
    devices TEXT NOT NULL,
    series TEXT NOT NULL,
    kinds TEXT NOT NULL,
    min_stage BIGINT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    secret TEXT,
    remind_minutes BIGINT,
    group_seconds BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS unplanned_alerts (
    alert_id BIGINT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS notifications (
    id {id},
    rule_id BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    alarms TEXT NOT NULL,
    count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    sent_at BIGINT,
    failed_at BIGINT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (sent_at, failed_at, due_at);
CREATE INDEX IF NOT EXISTS notifications_gathering ON notifications (rule_id, device_id, sent_at);
CREATE TABLE IF NOT EXISTS notified (
    rule_id BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    alarm_id BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    reminded_at BIGINT,
    PRIMARY KEY (rule_id, device_id, alarm_id)
);
CREATE TABLE IF NOT EXISTS refused_messages (
    id {id},
    device_id TEXT NOT NULL,
    message_id TEXT,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload_prefix TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
";

/// Version 1 to 2: the three tables keyed by message id are rebuilt keyed by (device, message
/// id) (copied aside, dropped with their keys and indexes, created anew, copied back); alert rows
/// keep their order.
const MIGRATE_1_TO_2: &str = "
CREATE TABLE messages_v1 AS SELECT * FROM messages;
CREATE TABLE alerts_v1 AS SELECT * FROM alerts;
CREATE TABLE forecasts_v1 AS SELECT * FROM forecasts;
DROP TABLE messages;
DROP TABLE alerts;
DROP TABLE forecasts;
{schema}
INSERT INTO messages (message_id, device_id, kind, created_at, received_at, envelope)
    SELECT message_id, device_id, kind, created_at, received_at, envelope FROM messages_v1;
INSERT INTO alerts (message_id, device_id, alarm_id, series, kind, state, stage, created_at, body)
    SELECT message_id, device_id, alarm_id, series, kind, state, stage, created_at, body
    FROM alerts_v1 ORDER BY id;
INSERT INTO forecasts (message_id, device_id, series, issued_at, body)
    SELECT message_id, device_id, series, issued_at, body FROM forecasts_v1;
DROP TABLE messages_v1;
DROP TABLE alerts_v1;
DROP TABLE forecasts_v1;
";

/// Versions 1 to 5 to 6 on PostgreSQL: the plain tables that are partitioned now are copied aside and
/// dropped; [`migrate`] copies them back once the partitions of their months are made.
const SET_ASIDE_5: &str = "
CREATE TABLE messages_v5 AS SELECT * FROM messages;
CREATE TABLE forecasts_v5 AS SELECT * FROM forecasts;
CREATE TABLE actuals_v5 AS SELECT * FROM actuals;
DROP TABLE messages;
DROP TABLE forecasts;
DROP TABLE actuals;
";

/// Versions 1 to 5 to 6 on PostgreSQL: the rows set aside copied back, into their months' partitions.
const COPY_BACK_5: &str = "
INSERT INTO messages (message_id, device_id, kind, created_at, received_at, envelope)
    SELECT message_id, device_id, kind, created_at, received_at, envelope FROM messages_v5;
INSERT INTO forecasts (message_id, device_id, series, issued_at, body)
    SELECT message_id, device_id, series, issued_at, body FROM forecasts_v5;
INSERT INTO actuals (device_id, series, hour, value) SELECT device_id, series, hour, value FROM actuals_v5;
DROP TABLE messages_v5;
DROP TABLE forecasts_v5;
DROP TABLE actuals_v5;
";

/// The tables keyed by an auto-numbered id.
const NUMBERED: [&str; 5] = [
    "alerts",
    "alarm_actions",
    "notification_rules",
    "notifications",
    "refused_messages",
];

/// What the schema needs of a database beyond the SQL both accept.
#[derive(Clone, Copy)]
pub(crate) struct Dialect {
    /// Its auto-numbered key.
    id: &'static str,
    /// Its query of whether table `?1` exists.
    has_table: &'static str,
    /// Its statements that put each new alert row's id into `unplanned_alerts` (a trigger's body
    /// is the only SQL the two cannot share).
    trigger: &'static str,
    /// Whether the large tables are partitioned by month ([`crate::partitions`]).
    pub(crate) partitioned: bool,
    /// Whether a numbered table made before version 7 gives an id again after the greatest row
    /// is deleted, and is rebuilt by [`never_reuse_ids`] (SQLite without `AUTOINCREMENT`;
    /// PostgreSQL's identity columns never did).
    reused_ids_before_7: bool,
}

/// SQLite's.
pub(crate) const SQLITE: Dialect = Dialect {
    id: "INTEGER PRIMARY KEY AUTOINCREMENT",
    has_table: "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
    trigger: "CREATE TRIGGER IF NOT EXISTS alerts_unplanned AFTER INSERT ON alerts
              BEGIN INSERT INTO unplanned_alerts(alert_id) VALUES (NEW.id); END;",
    partitioned: false,
    reused_ids_before_7: true,
};

/// PostgreSQL's (`CREATE OR REPLACE TRIGGER`: PostgreSQL 14 or newer).
pub(crate) const POSTGRES: Dialect = Dialect {
    id: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    has_table: "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?1",
    trigger: "CREATE OR REPLACE FUNCTION hydrowatch_alert_unplanned() RETURNS trigger LANGUAGE plpgsql
              AS $$ BEGIN INSERT INTO unplanned_alerts(alert_id) VALUES (NEW.id); RETURN NULL; END $$;
              CREATE OR REPLACE TRIGGER alerts_unplanned AFTER INSERT ON alerts
              FOR EACH ROW EXECUTE FUNCTION hydrowatch_alert_unplanned();",
    partitioned: true,
    reused_ids_before_7: false,
};

/// The schema in `dialect`: partitioned tables (a partition's key must hold the column it is
/// partitioned by) with their default partitions, or plain ones.
fn schema(dialect: &Dialect) -> String {
    let mut schema = SCHEMA.replace("{id}", dialect.id);
    for (table, column) in PARTITIONED {
        let (with, partition) = if dialect.partitioned {
            (
                format!(", {column}"),
                format!(
                    " PARTITION BY RANGE ({column});\nCREATE TABLE IF NOT EXISTS {table}_default PARTITION OF {table} DEFAULT"
                ),
            )
        } else {
            (String::new(), String::new())
        };
        schema = schema
            .replace(&format!("{{with:{table}}}"), &with)
            .replace(&format!("{{partition:{table}}}"), &partition);
    }
    schema
}

/// Creates the schema, or brings an older one to [`SCHEMA_VERSION`], in `dialect`; on
/// PostgreSQL the missing monthly partitions are made (through those ahead of `now`). The
/// trigger is made last, after any copy of older rows, which are history.
pub(crate) fn migrate(c: &mut dyn Sql, dialect: &Dialect, now: i64) -> Result<()> {
    let (has_table, trigger) = (dialect.has_table, dialect.trigger);
    let schema = schema(dialect);
    let exists = |c: &mut dyn Sql, table: &str| -> Result<bool> {
        Ok(c.rows(has_table, &[Arg::Text(Some(table))])?[0].int(0)? > 0)
    };
    let version = if exists(c, "schema_version")? {
        c.rows("SELECT max(version) FROM schema_version", &[])?[0]
            .int(0)
            .unwrap_or(0)
    } else if exists(c, "messages")? {
        1
    } else {
        0
    };
    match version {
        SCHEMA_VERSION => {
            c.batch(&schema)?;
            if dialect.partitioned {
                partitions::make(c, now, now)?;
            }
            c.batch(trigger)
        }
        0..=6 => {
            let before_6 = (1..=5).contains(&version);
            // The schema without partitions: an older version's, with any table it lacked.
            let plain = self::schema(&Dialect {
                partitioned: false,
                ..*dialect
            });
            if version == 1 {
                tracing::info!(
                    "server database: keying messages by device and message id (schema version 2)"
                );
                c.batch(&MIGRATE_1_TO_2.replace("{schema}", &plain))?;
            }
            if before_6 && dialect.partitioned {
                tracing::info!(
                    "server database: partitioning messages, forecasts and actuals by month (schema version 6)"
                );
                c.batch(&plain)?;
                c.batch(SET_ASIDE_5)?;
                c.batch(&schema)?;
                let oldest = c.rows(
                    "SELECT min(t) FROM (SELECT min(received_at) AS t FROM messages_v5
                     UNION ALL SELECT min(issued_at) FROM forecasts_v5 UNION ALL SELECT min(hour) FROM actuals_v5) AS o",
                    &[],
                )?[0]
                    .opt_int(0)?
                    .unwrap_or(now);
                partitions::make(c, oldest, now)?;
                c.batch(COPY_BACK_5)?;
            } else {
                // What an older version stored is not in `unplanned_alerts`: history, nobody is
                // notified of it now.
                c.batch(&schema)?;
                if dialect.partitioned {
                    partitions::make(c, now, now)?;
                }
            }
            if before_6 {
                c.batch("ALTER TABLE devices ADD COLUMN seen_before BIGINT")?;
            }
            if version > 0 && dialect.reused_ids_before_7 {
                tracing::info!("server database: ids are never given twice (schema version 7)");
                never_reuse_ids(c, &schema)?;
            }
            if version > 0 {
                tracing::info!("server database: each alarm's latest state (schema version 7)");
                crate::alarm_latest::build_from_older(c, now)?;
            }
            c.batch(trigger)?;
            c.exec("DELETE FROM schema_version", &[])?;
            c.exec(
                "INSERT INTO schema_version (version) VALUES (?1)",
                &[Arg::Int(SCHEMA_VERSION)],
            )?;
            Ok(())
        }
        newer => Err(DbError::Newer(newer, SCHEMA_VERSION)),
    }
}

/// Rebuilds each numbered table of SQLite with `AUTOINCREMENT` (renamed aside, made anew by
/// `schema`, copied back with its ids, dropped with its indexes, which `schema` then makes on the
/// new table), and starts the rules' numbering after the greatest rule id anything still names, so
/// that no id given before is given again. The trigger on `alerts` goes with the old table; the
/// caller makes it anew.
fn never_reuse_ids(c: &mut dyn Sql, schema: &str) -> Result<()> {
    for table in NUMBERED {
        c.batch(&format!("ALTER TABLE {table} RENAME TO {table}_v6"))?;
    }
    c.batch(schema)?;
    for table in NUMBERED {
        let columns = c
            .rows(
                "SELECT name FROM pragma_table_info(?1)",
                &[Arg::Text(Some(&format!("{table}_v6")))],
            )?
            .iter()
            .map(|row| row.text(0))
            .collect::<Result<Vec<_>>>()?
            .join(", ");
        c.batch(&format!(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_v6 ORDER BY id;
             DROP TABLE {table}_v6;"
        ))?;
    }
    c.batch(schema)?;
    c.batch(
        "DELETE FROM sqlite_sequence WHERE name = 'notification_rules';
         INSERT INTO sqlite_sequence (name, seq) SELECT 'notification_rules', coalesce(max(id), 0) FROM (
             SELECT max(id) AS id FROM notification_rules UNION ALL SELECT max(rule_id) FROM notifications
             UNION ALL SELECT max(rule_id) FROM notified) AS named;",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Sql;

    /// A database of version 6 (numbered without `AUTOINCREMENT`) whose greatest rule was
    /// deleted while a notification still names it gives that id again before the migration, and
    /// no id twice after it; what it held is kept, the indexes and the trigger on `alerts` too.
    #[test]
    fn ids_given_before_version_7_are_never_given_again() {
        let v6 = Dialect {
            id: "INTEGER PRIMARY KEY",
            ..SQLITE
        };
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.batch(&schema(&v6)).unwrap();
        c.batch(v6.trigger).unwrap();
        c.batch(
            "INSERT INTO schema_version VALUES (6);
             INSERT INTO notification_rules (name, devices, series, kinds, min_stage, channel, target, group_seconds, created_at)
                 VALUES ('a', '', '', '', 1, 'webhook', 'x', 0, 0), ('b', '', '', '', 1, 'webhook', 'x', 0, 0);
             INSERT INTO notifications (rule_id, device_id, kind, alarms, count, created_at, due_at, sent_at)
                 VALUES (2, 'dma-1', 'alarm', '[]', 1, 0, 0, 0), (2, 'dma-1', 'alarm', '[]', 1, 0, 0, 0);
             DELETE FROM notification_rules WHERE id = 2;
             INSERT INTO alerts (message_id, device_id, alarm_id, series, kind, state, stage, created_at, body)
                 VALUES ('o', 'dma-1', 5, 'flow', 'outlier', 'opened', 3, 100, '{}'),
                        ('c', 'dma-1', 5, 'flow', 'outlier', 'cleared', 0, 200, '{}'),
                        ('p', 'dma-1', 6, 'flow', 'outlier', 'opened', 1, 300, '{}');
             INSERT INTO alarm_state (device_id, alarm_id, acked_through) VALUES ('dma-1', 6, 3);
             DELETE FROM unplanned_alerts;",
        )
        .unwrap();
        let one =
            |c: &mut rusqlite::Connection, sql: &str| c.rows(sql, &[]).unwrap()[0].int(0).unwrap();
        let add_rule = "INSERT INTO notification_rules (name, devices, series, kinds, min_stage, channel, target, group_seconds, created_at)
                        VALUES ('c', '', '', '', 1, 'webhook', 'x', 0, 0) RETURNING id";
        // Before: the deleted rule's id is given again (SQLite's greatest + 1).
        c.batch("BEGIN").unwrap();
        assert_eq!(one(&mut c, add_rule), 2);
        c.batch("ROLLBACK").unwrap();
        c.batch("BEGIN").unwrap();
        migrate(&mut c, &SQLITE, 0).unwrap();
        c.batch("COMMIT").unwrap();
        assert_eq!(one(&mut c, "SELECT max(version) FROM schema_version"), 7);
        // Each older alarm's latest state: 5 cleared and unacknowledged (to handle, its highest
        // stage kept), 6 active and acknowledged (to handle while active).
        let latest = |c: &mut rusqlite::Connection, alarm: i64| {
            let r = &c
                .rows(
                    "SELECT state, highest, to_handle, last_id FROM alarm_latest WHERE alarm_id = ?1",
                    &[Arg::Int(alarm)],
                )
                .unwrap()[0];
            (
                r.text(0).unwrap(),
                r.int(1).unwrap(),
                r.int(2).unwrap(),
                r.int(3).unwrap(),
            )
        };
        assert_eq!(latest(&mut c, 5), ("cleared".to_string(), 3, 1, 2));
        assert_eq!(latest(&mut c, 6), ("opened".to_string(), 1, 1, 3));
        // After: past every rule id a notification names, and a deleted greatest notification's
        // id is not given again.
        assert_eq!(one(&mut c, add_rule), 3);
        c.batch("DELETE FROM notifications WHERE id = 2").unwrap();
        let notification = one(
            &mut c,
            "INSERT INTO notifications (rule_id, device_id, kind, alarms, count, created_at, due_at)
             VALUES (3, 'dma-1', 'alarm', '[]', 1, 0, 0) RETURNING id",
        );
        assert_eq!(notification, 3);
        assert_eq!(one(&mut c, "SELECT count(*) FROM notification_rules"), 2);
        let made = one(
            &mut c,
            "SELECT count(*) FROM sqlite_master WHERE name IN ('notifications_due', 'notifications_gathering',
             'alarm_actions_by_alarm', 'alerts_by_alarm', 'alerts_unplanned') OR name LIKE '%_v6'",
        );
        assert_eq!(
            made, 5,
            "the indexes and the trigger made anew, nothing left aside"
        );
        c.batch(
            "INSERT INTO alerts (message_id, device_id, alarm_id, series, kind, state, stage, created_at, body)
             VALUES ('m', 'dma-1', 1, 'flow', 'outlier', 'opened', 2, 0, '{}')",
        )
        .unwrap();
        assert_eq!(one(&mut c, "SELECT count(*) FROM unplanned_alerts"), 1);
    }
}

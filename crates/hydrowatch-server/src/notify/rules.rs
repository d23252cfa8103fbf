//! Notification rules: which alarms (devices, series, kinds, lowest stage) go to which channel
//! (a webhook or an e-mail address), with an optional reminder and a grouping window.
//!
//! Invariants: a stored rule passed [`check`]; a webhook's secret is stored to sign with (it
//! must be, unlike a password) and never read back through the API.

use hydrowatch_protocol::{AlarmKind, Channel, RuleRecord, RuleRequest};

use crate::db::Db;
use crate::sql::{Arg, DbError, Row};

/// Longest reminder delay (a week).
pub const MAX_REMIND_MINUTES: u32 = 7 * 24 * 60;
/// Longest grouping window (an hour).
pub const MAX_GROUP_SECONDS: u32 = 3600;

/// Why a rule was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A field out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// The name is taken.
    #[error("a rule named {0:?} exists already")]
    Exists(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A rule as the notifier uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// What the API shows.
    pub record: RuleRecord,
    /// The webhook's key.
    pub secret: Option<String>,
}

impl Rule {
    /// Whether an alarm transition of `device` on `series`, of `kind`, at `stage` is this
    /// rule's.
    pub fn matches(&self, device: &str, series: &str, kind: AlarmKind, stage: u8) -> bool {
        let r = &self.record;
        stage >= r.min_stage
            && (r.devices.is_empty() || r.devices.iter().any(|d| d == device))
            && (r.series.is_empty() || r.series.iter().any(|s| s == series))
            && (r.kinds.is_empty() || r.kinds.contains(&kind))
    }
}

fn invalid(message: String) -> RuleError {
    RuleError::Invalid(message)
}

/// Checks every field of `r`.
pub fn check(r: &RuleRequest) -> Result<(), RuleError> {
    if !(1..=64).contains(&r.name.trim().chars().count()) {
        return Err(invalid("name: 1 to 64 characters".into()));
    }
    for (what, text) in [("name", &r.name), ("target", &r.target)] {
        if let Some(why) = hydrowatch_core::unsafe_text(text) {
            return Err(invalid(format!("{what}: {why}")));
        }
    }
    for (what, list) in [("devices", &r.devices), ("series", &r.series)] {
        if list.len() > 100
            || list.iter().any(|v| {
                v.is_empty()
                    || v.len() > 64
                    || v.contains(',')
                    || hydrowatch_core::unsafe_text(v).is_some()
            })
        {
            return Err(invalid(format!(
                "{what}: at most 100 names of 1 to 64 characters without ',' or control characters"
            )));
        }
    }
    if !(1..=4).contains(&r.min_stage) {
        return Err(invalid(format!("min_stage: 1 to 4, not {}", r.min_stage)));
    }
    super::channels::channel_of(r.channel)
        .check(r)
        .map_err(invalid)?;
    if r.remind_minutes
        .is_some_and(|m| !(1..=MAX_REMIND_MINUTES).contains(&m))
    {
        return Err(invalid(format!(
            "remind_minutes: 1 to {MAX_REMIND_MINUTES}"
        )));
    }
    if r.group_seconds > MAX_GROUP_SECONDS {
        return Err(invalid(format!("group_seconds: 0 to {MAX_GROUP_SECONDS}")));
    }
    Ok(())
}

/// Every column of [`rule_of`]'s rows.
const SELECT_RULES: &str = "SELECT id, name, devices, series, kinds, min_stage, channel, target, secret, remind_minutes, group_seconds FROM notification_rules";

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn rule_of(r: &Row) -> Result<Rule, DbError> {
    let bad = |i: usize, what: &'static str, v: &str| {
        DbError::Column(i, what, v.chars().take(20).collect())
    };
    let kinds = list(&r.text(4)?)
        .iter()
        .map(|k| {
            AlarmKind::ALL
                .iter()
                .copied()
                .find(|a| a.name() == k)
                .ok_or_else(|| bad(4, "an alarm kind", k))
        })
        .collect::<Result<_, _>>()?;
    let channel_name = r.text(6)?;
    let channel = Channel::ALL
        .iter()
        .copied()
        .find(|c| c.name() == channel_name)
        .ok_or_else(|| bad(6, "a channel", &channel_name))?;
    Ok(Rule {
        record: RuleRecord {
            id: r.int(0)?,
            name: r.text(1)?,
            devices: list(&r.text(2)?),
            series: list(&r.text(3)?),
            kinds,
            min_stage: u8::try_from(r.int(5)?.clamp(1, 4)).unwrap_or(1),
            channel,
            target: r.text(7)?,
            remind_minutes: r.opt_int(9)?.and_then(|m| u32::try_from(m).ok()),
            group_seconds: u32::try_from(r.int(10)?).unwrap_or(0),
        },
        secret: r.opt_text(8)?,
    })
}

impl Db {
    /// Adds a rule (checked); returns it as stored.
    pub fn add_rule(&self, r: &RuleRequest, now: i64) -> Result<RuleRecord, RuleError> {
        check(r)?;
        let kinds: Vec<&str> = r.kinds.iter().map(|k| k.name()).collect();
        let (devices, series, kinds) = (r.devices.join(","), r.series.join(","), kinds.join(","));
        let name = r.name.trim();
        self.write(|c| {
            let added = c.exec(
                "INSERT INTO notification_rules(name, devices, series, kinds, min_stage, channel, target, secret, remind_minutes, group_seconds, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CAST(?8 AS TEXT), ?9, ?10, ?11) ON CONFLICT(name) DO NOTHING",
                &[
                    Arg::Text(Some(name)),
                    Arg::Text(Some(&devices)),
                    Arg::Text(Some(&series)),
                    Arg::Text(Some(&kinds)),
                    Arg::Int(r.min_stage.into()),
                    Arg::Text(Some(r.channel.name())),
                    Arg::Text(Some(&r.target)),
                    Arg::Text(r.secret.as_deref()),
                    Arg::OptInt(r.remind_minutes.map(i64::from)),
                    Arg::Int(r.group_seconds.into()),
                    Arg::Int(now),
                ],
            )?;
            if added == 0 {
                return Err(RuleError::Exists(name.to_string()));
            }
            let stored = c.rows(
                &format!("{SELECT_RULES} WHERE name = ?1"),
                &[Arg::Text(Some(name))],
            )?;
            // Inserted just above, in this transaction.
            let row = stored.first().ok_or(DbError::Column(0, "the rule just added", "no row".into()))?;
            Ok(rule_of(row)?.record)
        })
    }

    /// Every rule, by id.
    pub fn rules(&self) -> Result<Vec<Rule>, DbError> {
        self.read(|c| {
            c.rows(&format!("{SELECT_RULES} ORDER BY id"), &[])?
                .iter()
                .map(rule_of)
                .collect()
        })
    }

    /// Removes rule `id` with what it has not sent yet. False when there was none.
    pub fn remove_rule(&self, id: i64) -> Result<bool, DbError> {
        self.write(|c| {
            let rule = [Arg::Int(id)];
            c.exec(
                "DELETE FROM notifications WHERE rule_id = ?1 AND sent_at IS NULL",
                &rule,
            )?;
            c.exec("DELETE FROM notified WHERE rule_id = ?1", &rule)?;
            Ok(c.exec("DELETE FROM notification_rules WHERE id = ?1", &rule)? > 0)
        })
    }
}

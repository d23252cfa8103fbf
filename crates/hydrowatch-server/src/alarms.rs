//! The alarm workflow on the server (ISA-18.2): people acknowledge, shelve, unshelve, comment on
//! and assign the alarms the devices raise. The device alone decides when an alarm opens,
//! escalates and clears (its transitions, table `alerts`); the server keeps apart what people did
//! (`alarm_state`, one row per alarm) and every action as an audit record (`alarm_actions`).
//!
//! Invariants: an alarm is acknowledged when nobody has yet to see its latest opening or
//! escalation (`acked_through` is the id of the newest transition acknowledged), so a rise of
//! stage after an acknowledgement asks for a new one and a fall does not; two people
//! acknowledging at once record one acknowledgement (a conditional update decides, on both
//! databases); a shelving ends at its time or, one-shot, when the alarm clears, without anybody
//! writing anything; every successful action writes exactly one audit record.

use hydrowatch_protocol::{
    AlarmActionRecord, AlarmHistory, AlarmKind, AlarmRecord, AlarmStatus, AlertBody, OperatorAction,
};

use crate::accounts::User;
use crate::alarm_latest::{ACKNOWLEDGED, refresh_to_handle};
use crate::db::{Db, stored};
use crate::sql::{Arg, DbError, Row, Sql};

/// Longest comment kept.
pub const MAX_COMMENT: usize = 1000;
/// Longest shelving reason.
pub const MAX_REASON: usize = 200;
/// Longest shelving (30 days): a nuisance shelved for longer needs its cause fixed.
pub const MAX_SHELVE_MINUTES: u32 = 30 * 24 * 60;

/// What a person does to an alarm.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Acknowledge, with an optional comment.
    Acknowledge(Option<String>),
    /// Shelve for some minutes, or (None) until the alarm clears, for a reason.
    Shelve {
        /// Why.
        reason: String,
        /// For how long.
        minutes: Option<u32>,
    },
    /// End the shelving, with an optional comment.
    Unshelve(Option<String>),
    /// Comment.
    Comment(String),
    /// Assign to a user, or to nobody.
    Assign(Option<String>),
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The device never sent this alarm.
    #[error("device {0:?} has no alarm {1}")]
    NoSuchAlarm(String, u64),
    /// The action changes nothing (acknowledging an acknowledged alarm, unshelving one that is
    /// not shelved).
    #[error("{0}")]
    Nothing(String),
    /// Something of the request is out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The state of the alarms that `{where}` picks at `?1` (now): the latest transition, the first
/// and highest, the newest that asks for an acknowledgement, and what people did; then whether
/// acknowledged, shelved and cleared, and the stage it ranks by (a cleared alarm's highest).
static STATUS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT l.device_id, l.alarm_id, l.series, l.kind, l.state, l.stage, l.changed_at,
                l.opened_at, l.highest, l.arrived_at,
                s.acked_by, s.acked_at, s.shelved_by, s.shelved_until,
                s.shelved_until_clear, s.shelve_reason, s.assigned_to,
                CASE WHEN {ACKNOWLEDGED} THEN 1 ELSE 0 END AS acknowledged,
                CASE WHEN s.shelved_by IS NOT NULL AND CASE WHEN s.shelved_until_clear <> 0
                     THEN l.state <> 'cleared' ELSE s.shelved_until > ?1 END THEN 1 ELSE 0 END AS shelved,
                CASE WHEN l.state = 'cleared' THEN 1 ELSE 0 END AS cleared,
                CASE WHEN l.state = 'cleared' THEN l.highest ELSE l.stage END AS rank_stage
         FROM alarm_latest l
         LEFT JOIN alarm_state s ON s.device_id = l.device_id AND s.alarm_id = l.alarm_id
         WHERE {{where}}"
    )
});

/// [`STATUS`] of one alarm (`?2` the device, `?3` the alarm).
static ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| STATUS.replace("{where}", "l.device_id = ?2 AND l.alarm_id = ?3"));

/// [`STATUS`] of the alarms to handle of device `?2` (of all when NULL), in the order people work
/// from: unacknowledged first, shelved last, active before cleared, higher stage first, first to
/// arrive first (not by the device's clock, which may be wrong); `?3` of them after the first `?4`.
static TO_HANDLE_PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    STATUS.replace(
        "{where}",
        "l.to_handle = 1 AND (CAST(?2 AS TEXT) IS NULL OR l.device_id = ?2)
         ORDER BY acknowledged, shelved, cleared, rank_stage DESC, l.arrived_at, l.device_id, l.alarm_id
         LIMIT ?3 OFFSET ?4",
    )
});

/// How many alarms device `?1` (all when NULL) has to handle, and how many of them are
/// unacknowledged.
static TO_HANDLE_COUNT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT count(*), coalesce(sum(CASE WHEN {ACKNOWLEDGED} THEN 0 ELSE 1 END), 0)
         FROM alarm_latest l
         LEFT JOIN alarm_state s ON s.device_id = l.device_id AND s.alarm_id = l.alarm_id
         WHERE l.to_handle = 1 AND (CAST(?1 AS TEXT) IS NULL OR l.device_id = ?1)"
    )
});

/// An [`AlarmStatus`] from a row of [`STATUS`].
fn status_of(r: &Row) -> Result<AlarmStatus, DbError> {
    let kind_name = r.text(3)?;
    let kind = AlarmKind::ALL
        .iter()
        .copied()
        .find(|k| k.name() == kind_name)
        .ok_or_else(|| DbError::Column(3, "an alarm kind", kind_name.chars().take(20).collect()))?;
    let active = r.text(4)? != "cleared";
    let shelved_by = r.opt_text(12)?;
    let shelved_until = r.opt_int(13)?;
    let until_clear = r.opt_int(14)?.unwrap_or(0) != 0;
    let shelved = r.int(18)? != 0;
    let small = |v: i64| u8::try_from(v.clamp(0, 4)).unwrap_or(0);
    Ok(AlarmStatus {
        device_id: r.text(0)?,
        alarm_id: u64::try_from(r.int(1)?).unwrap_or(0),
        series: r.text(2)?,
        kind,
        stage: small(r.int(5)?),
        highest_stage: small(r.int(8)?),
        active,
        opened_at: r.int(7)?,
        changed_at: r.int(6)?,
        arrived_at: r.int(9)?,
        acknowledged: r.int(17)? != 0,
        acknowledged_by: r.opt_text(10)?,
        acknowledged_at: r.opt_int(11)?,
        shelved,
        shelved_by: if shelved { shelved_by } else { None },
        shelved_until: if shelved && !until_clear {
            shelved_until
        } else {
            None
        },
        shelve_reason: if shelved { r.opt_text(15)? } else { None },
        assigned_to: r.opt_text(16)?,
    })
}

/// The state of `device`'s alarm `alarm` at `now`, if the device sent it.
pub(crate) fn status(
    c: &mut dyn Sql,
    device: &str,
    alarm: u64,
    now: i64,
) -> Result<Option<AlarmStatus>, DbError> {
    c.rows(
        &ONE,
        &[
            Arg::Int(now),
            Arg::Text(Some(device)),
            Arg::Int(i64::try_from(alarm).unwrap_or(i64::MAX)),
        ],
    )?
    .first()
    .map(status_of)
    .transpose()
}

/// Text a person typed, trimmed, within `max` characters; `what` names it in the error.
fn typed(text: &str, max: usize, what: &str) -> Result<String, ActionError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ActionError::Invalid(format!("{what} is empty")));
    }
    if text.chars().count() > max {
        return Err(ActionError::Invalid(format!(
            "{what} is over {max} characters"
        )));
    }
    if let Some(why) = hydrowatch_core::unsafe_text(text) {
        return Err(ActionError::Invalid(format!("{what} {why}")));
    }
    Ok(text.to_string())
}

fn optional(text: Option<&str>, what: &str) -> Result<Option<String>, ActionError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => typed(t, MAX_COMMENT, what).map(Some),
    }
}

/// A page of the alarms people have to handle.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkList {
    /// The alarms of the page, in the order people work from.
    pub alarms: Vec<AlarmStatus>,
    /// How many there are to handle in all.
    pub total: usize,
    /// How many of them are unacknowledged.
    pub unacknowledged: usize,
}

impl Db {
    /// The alarms people have to look at (active, or cleared but not acknowledged), of `device`
    /// or of the whole fleet: at most `limit` after the first `offset` in the order people work
    /// from (unacknowledged first, shelved last, active before cleared, higher stage first, then
    /// first to arrive first), and how many there are. Reads only the alarms to handle.
    pub fn alarms_to_handle(
        &self,
        device: Option<&str>,
        offset: usize,
        limit: usize,
        now: i64,
    ) -> Result<WorkList, DbError> {
        let size = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.read(|c| {
            let alarms = c
                .rows(
                    &TO_HANDLE_PAGE,
                    &[
                        Arg::Int(now),
                        Arg::Text(device),
                        Arg::Int(size(limit)),
                        Arg::Int(size(offset)),
                    ],
                )?
                .iter()
                .map(status_of)
                .collect::<Result<Vec<_>, DbError>>()?;
            let counts = &c.rows(&TO_HANDLE_COUNT, &[Arg::Text(device)])?[0];
            let count = |i| counts.int(i).map(|n| usize::try_from(n).unwrap_or(0));
            Ok(WorkList {
                alarms,
                total: count(0)?,
                unacknowledged: count(1)?,
            })
        })
    }

    /// One alarm's state, its device's transitions and people's actions, oldest first.
    pub fn alarm_history(
        &self,
        device: &str,
        alarm: u64,
        now: i64,
    ) -> Result<Option<AlarmHistory>, DbError> {
        self.read(|c| {
            let Some(status) = status(c, device, alarm, now)? else {
                return Ok(None);
            };
            let key = [
                Arg::Text(Some(device)),
                Arg::Int(i64::try_from(alarm).unwrap_or(i64::MAX)),
            ];
            let transitions = c
                .rows(
                    "SELECT created_at, body, message_id FROM alerts
                     WHERE device_id = ?1 AND alarm_id = ?2 ORDER BY id",
                    &key,
                )?
                .iter()
                .map(|r| {
                    let alert: AlertBody = stored(&r.text(1)?, &r.text(2)?)?;
                    Ok(AlarmRecord {
                        device_id: device.to_string(),
                        created_at: r.int(0)?,
                        alert,
                    })
                })
                .collect::<Result<Vec<_>, DbError>>()?;
            let actions = c
                .rows(
                    "SELECT at, user_name, action, comment, until, assignee FROM alarm_actions
                     WHERE device_id = ?1 AND alarm_id = ?2 ORDER BY id",
                    &key,
                )?
                .iter()
                .map(|r| {
                    let name = r.text(2)?;
                    Ok(AlarmActionRecord {
                        at: r.int(0)?,
                        user: r.text(1)?,
                        action: OperatorAction::from_name(&name).ok_or_else(|| {
                            DbError::Column(2, "an action", name.chars().take(20).collect())
                        })?,
                        comment: r.opt_text(3)?,
                        until: r.opt_int(4)?,
                        assignee: r.opt_text(5)?,
                    })
                })
                .collect::<Result<Vec<_>, DbError>>()?;
            Ok(Some(AlarmHistory {
                status,
                transitions,
                actions,
            }))
        })
    }

    /// `user` does `action` to `device`'s alarm `alarm` at `now`: the alarm's state changes and
    /// one audit record is written, in one transaction. Returns the new state.
    pub fn act(
        &self,
        device: &str,
        alarm: u64,
        user: &User,
        action: &Action,
        now: i64,
    ) -> Result<AlarmStatus, ActionError> {
        self.write(|c| {
            let Some(before) = status(c, device, alarm, now)? else {
                return Err(ActionError::NoSuchAlarm(
                    hydrowatch_core::prefix(device),
                    alarm,
                ));
            };
            let id = i64::try_from(alarm).unwrap_or(i64::MAX);
            let key = |c: &mut dyn Sql, sql: &str, more: &[Arg]| -> Result<u64, DbError> {
                let mut args = vec![Arg::Text(Some(device)), Arg::Int(id)];
                args.extend_from_slice(more);
                c.exec(sql, &args)
            };
            key(
                c,
                "INSERT INTO alarm_state(device_id, alarm_id) VALUES (?1, ?2)
                 ON CONFLICT(device_id, alarm_id) DO NOTHING",
                &[],
            )?;
            let who = Arg::Text(Some(&user.name));
            let (kind, comment, until, assignee) = match action {
                Action::Acknowledge(comment) => {
                    let comment = optional(comment.as_deref(), "the comment")?;
                    // Acknowledges up to the newest transition; changes nothing (0 rows) when
                    // someone acknowledged it already.
                    let done = key(
                        c,
                        "UPDATE alarm_state SET acked_by = ?3, acked_at = ?4, acked_through =
                           (SELECT max(id) FROM alerts WHERE device_id = ?1 AND alarm_id = ?2)
                         WHERE device_id = ?1 AND alarm_id = ?2
                           AND (acked_through IS NULL OR acked_through < (
                             SELECT coalesce(max(id), 0) FROM alerts WHERE device_id = ?1 AND alarm_id = ?2
                               AND state IN ('opened', 'escalated')))",
                        &[who, Arg::Int(now)],
                    )?;
                    if done == 0 {
                        return Err(ActionError::Nothing(format!(
                            "alarm {alarm} of {device} is acknowledged already{}",
                            before
                                .acknowledged_by
                                .map(|u| format!(" (by {u})"))
                                .unwrap_or_default()
                        )));
                    }
                    (OperatorAction::Acknowledged, comment, None, None)
                }
                Action::Shelve { reason, minutes } => {
                    let reason = typed(reason, MAX_REASON, "the reason")?;
                    let until = match minutes {
                        Some(m) if (1..=MAX_SHELVE_MINUTES).contains(m) => Some(now + i64::from(*m) * 60),
                        Some(m) => {
                            return Err(ActionError::Invalid(format!(
                                "shelve for 1 to {MAX_SHELVE_MINUTES} minutes, not {m}"
                            )));
                        }
                        None if !before.active => {
                            return Err(ActionError::Invalid(format!(
                                "alarm {alarm} has cleared already: shelve it for a time, or not at all"
                            )));
                        }
                        None => None,
                    };
                    key(
                        c,
                        "UPDATE alarm_state SET shelved_by = ?3, shelved_until = ?4,
                         shelved_until_clear = ?5, shelve_reason = ?6 WHERE device_id = ?1 AND alarm_id = ?2",
                        &[
                            who,
                            Arg::OptInt(until),
                            Arg::Int(i64::from(until.is_none())),
                            Arg::Text(Some(&reason)),
                        ],
                    )?;
                    (OperatorAction::Shelved, Some(reason), until, None)
                }
                Action::Unshelve(comment) => {
                    let comment = optional(comment.as_deref(), "the comment")?;
                    if !before.shelved {
                        return Err(ActionError::Nothing(format!(
                            "alarm {alarm} of {device} is not shelved"
                        )));
                    }
                    key(
                        c,
                        "UPDATE alarm_state SET shelved_by = NULL, shelved_until = NULL,
                         shelved_until_clear = 0, shelve_reason = NULL WHERE device_id = ?1 AND alarm_id = ?2",
                        &[],
                    )?;
                    (OperatorAction::Unshelved, comment, None, None)
                }
                Action::Comment(text) => (
                    OperatorAction::Commented,
                    Some(typed(text, MAX_COMMENT, "the comment")?),
                    None,
                    None,
                ),
                Action::Assign(to) => {
                    let to = to.as_deref().map(str::trim).filter(|t| !t.is_empty());
                    if let Some(name) = to
                        && c.rows("SELECT 1 FROM users WHERE name = ?1", &[Arg::Text(Some(name))])?
                            .is_empty()
                    {
                        return Err(ActionError::Invalid(format!(
                            "no user {:?} to assign to",
                            hydrowatch_core::prefix(name)
                        )));
                    }
                    key(
                        c,
                        "UPDATE alarm_state SET assigned_to = CAST(?3 AS TEXT) WHERE device_id = ?1 AND alarm_id = ?2",
                        &[Arg::Text(to)],
                    )?;
                    (OperatorAction::Assigned, None, None, to.map(str::to_string))
                }
            };
            key(
                c,
                "INSERT INTO alarm_actions(device_id, alarm_id, at, user_name, action, comment, until, assignee)
                 VALUES (?1, ?2, ?3, ?4, ?5, CAST(?6 AS TEXT), ?7, CAST(?8 AS TEXT))",
                &[
                    Arg::Int(now),
                    who,
                    Arg::Text(Some(kind.name())),
                    Arg::Text(comment.as_deref()),
                    Arg::OptInt(until),
                    Arg::Text(assignee.as_deref()),
                ],
            )?;
            refresh_to_handle(c, device, id)?;
            Ok(status(c, device, alarm, now)?
                .expect("the alarm was there at the start of this transaction"))
        })
    }
}

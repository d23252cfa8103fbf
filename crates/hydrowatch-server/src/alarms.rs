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

/// The state of alarms (the rows `{where}` picks): the latest transition, the first and
/// highest, the newest that asks for an acknowledgement, and what people did.
const STATUS: &str = "
SELECT a.device_id, a.alarm_id, a.series, a.kind, a.state, a.stage, a.created_at,
       g.opened_at, g.highest, g.need_ack,
       s.acked_through, s.acked_by, s.acked_at, s.shelved_by, s.shelved_until,
       s.shelved_until_clear, s.shelve_reason, s.assigned_to
FROM (SELECT device_id, alarm_id, max(id) AS last, min(created_at) AS opened_at,
             max(stage) AS highest,
             max(CASE WHEN state IN ('opened', 'escalated') THEN id END) AS need_ack
      FROM alerts WHERE {where}
      GROUP BY device_id, alarm_id) g
JOIN alerts a ON a.id = g.last
LEFT JOIN alarm_state s ON s.device_id = g.device_id AND s.alarm_id = g.alarm_id";

/// [`STATUS`] of one alarm (`?1` the device, `?2` the alarm: the index finds its rows).
static ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| STATUS.replace("{where}", "device_id = ?1 AND alarm_id = ?2"));
/// [`STATUS`] of every alarm of device `?1`, or of all when NULL.
static MANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    STATUS.replace("{where}", "CAST(?1 AS TEXT) IS NULL OR device_id = ?1")
});

/// An [`AlarmStatus`] from a row of [`STATUS`], at `now`.
fn status_of(r: &Row, now: i64) -> Result<AlarmStatus, DbError> {
    let kind_name = r.text(3)?;
    let kind = AlarmKind::ALL
        .into_iter()
        .find(|k| k.name() == kind_name)
        .ok_or_else(|| DbError::Column(3, "an alarm kind", kind_name.chars().take(20).collect()))?;
    let active = r.text(4)? != "cleared";
    let need_ack = r.opt_int(9)?;
    let acked_through = r.opt_int(10)?;
    let shelved_by = r.opt_text(13)?;
    let shelved_until = r.opt_int(14)?;
    let until_clear = r.opt_int(15)?.unwrap_or(0) != 0;
    let shelved = shelved_by.is_some()
        && if until_clear {
            active
        } else {
            shelved_until.is_some_and(|t| t > now)
        };
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
        acknowledged: match (need_ack, acked_through) {
            (None, _) => true,
            (Some(need), Some(through)) => through >= need,
            (Some(_), None) => false,
        },
        acknowledged_by: r.opt_text(11)?,
        acknowledged_at: r.opt_int(12)?,
        shelved,
        shelved_by: if shelved { shelved_by } else { None },
        shelved_until: if shelved && !until_clear {
            shelved_until
        } else {
            None
        },
        shelve_reason: if shelved { r.opt_text(16)? } else { None },
        assigned_to: r.opt_text(17)?,
    })
}

fn statuses(
    c: &mut dyn Sql,
    device: Option<&str>,
    alarm: Option<u64>,
    now: i64,
) -> Result<Vec<AlarmStatus>, DbError> {
    let rows = match (device, alarm) {
        (Some(device), Some(alarm)) => c.rows(
            &ONE,
            &[
                Arg::Text(Some(device)),
                Arg::Int(i64::try_from(alarm).unwrap_or(i64::MAX)),
            ],
        )?,
        _ => c.rows(&MANY, &[Arg::Text(device)])?,
    };
    rows.iter().map(|r| status_of(r, now)).collect()
}

/// The state of `device`'s alarm `alarm` at `now`, if the device sent it.
pub(crate) fn status(
    c: &mut dyn Sql,
    device: &str,
    alarm: u64,
    now: i64,
) -> Result<Option<AlarmStatus>, DbError> {
    Ok(statuses(c, Some(device), Some(alarm), now)?.pop())
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

/// The order of the list people work from: unacknowledged first, shelved last, active before
/// cleared, higher stage first (a cleared alarm's highest), older first.
pub fn work_order(a: &AlarmStatus, b: &AlarmStatus) -> std::cmp::Ordering {
    let rank = |s: &AlarmStatus| {
        let stage = if s.active { s.stage } else { s.highest_stage };
        (
            s.acknowledged,
            s.shelved,
            !s.active,
            std::cmp::Reverse(stage),
            s.opened_at,
        )
    };
    rank(a).cmp(&rank(b))
}

impl Db {
    /// The alarms people have to look at (active, or cleared but not acknowledged), of `device`
    /// or of the whole fleet, in [`work_order`].
    pub fn alarms_to_handle(
        &self,
        device: Option<&str>,
        now: i64,
    ) -> Result<Vec<AlarmStatus>, DbError> {
        let mut list: Vec<AlarmStatus> = self
            .read(|c| statuses(c, device, None, now))?
            .into_iter()
            .filter(|s| s.active || !s.acknowledged)
            .collect();
        list.sort_by(work_order);
        Ok(list)
    }

    /// One alarm's state, its device's transitions and people's actions, oldest first.
    pub fn alarm_history(
        &self,
        device: &str,
        alarm: u64,
        now: i64,
    ) -> Result<Option<AlarmHistory>, DbError> {
        self.read(|c| {
            let Some(status) = statuses(c, Some(device), Some(alarm), now)?.pop() else {
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
            let Some(before) = statuses(c, Some(device), Some(alarm), now)?.pop() else {
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
            Ok(statuses(c, Some(device), Some(alarm), now)?
                .pop()
                .expect("the alarm was there at the start of this transaction"))
        })
    }
}

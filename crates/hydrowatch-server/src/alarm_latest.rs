//! Each alarm's latest state, one row per alarm (`alarm_latest`): its latest transition, its
//! first opening and highest stage, the newest transition that asks for an acknowledgement, the
//! arrival of its first at the server, and whether it is to handle. The list people work from
//! reads these rows only, never every transition ever stored.
//!
//! Invariants: a transition is stored only by [`record_transition`], which brings the alarm's row
//! up to it in the same transaction; `to_handle` is 1 exactly while the alarm is active or not
//! [`ACKNOWLEDGED`], set by [`refresh_to_handle`] after every transition and every action.

use hydrowatch_protocol::AlertBody;

use crate::sql::{Arg, DbError, Sql};

/// Whether the alarm of row `l` of `alarm_latest` (with its `alarm_state` as `s`) is acknowledged:
/// nothing asks for it, or people acknowledged through the newest opening or escalation.
pub(crate) const ACKNOWLEDGED: &str = "(l.need_ack IS NULL OR s.acked_through >= l.need_ack)";

/// Sets `to_handle` of the rows of `alarm_latest` that `{where}` picks: 1 while active or not
/// [`ACKNOWLEDGED`] (the rows the list to handle reads), else 0.
pub(crate) static TO_HANDLE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE alarm_latest SET to_handle = (
             SELECT CASE WHEN l.state <> 'cleared' THEN 1 WHEN {ACKNOWLEDGED} THEN 0 ELSE 1 END
             FROM alarm_latest l
             LEFT JOIN alarm_state s ON s.device_id = l.device_id AND s.alarm_id = l.alarm_id
             WHERE l.device_id = alarm_latest.device_id AND l.alarm_id = alarm_latest.alarm_id)
         WHERE {{where}}"
    )
});

/// Stores the transition `alert` of `device`, carried by message `message_id`, stamped
/// `created_at` by the device, its body stored as `body`, arrived at `now`; and brings its alarm's
/// row of `alarm_latest` up to it: the one way an alarm's transition is stored.
pub(crate) fn record_transition(
    c: &mut dyn Sql,
    device: &str,
    message_id: &str,
    alert: &AlertBody,
    created_at: i64,
    body: &str,
    now: i64,
) -> Result<(), DbError> {
    // Checked on arrival (and the server's own ids): below 2^62.
    let alarm = i64::try_from(alert.alarm_id).unwrap_or(i64::MAX);
    let id = c.rows(
        "INSERT INTO alerts(message_id, device_id, alarm_id, series, kind, state, stage, created_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        &[
            Arg::Text(Some(message_id)),
            Arg::Text(Some(device)),
            Arg::Int(alarm),
            Arg::Text(Some(&alert.series)),
            Arg::Text(Some(alert.kind.name())),
            Arg::Text(Some(alert.state.name())),
            Arg::Int(i64::from(alert.outlier_stage)),
            Arg::Int(created_at),
            Arg::Text(Some(body)),
        ],
    )?[0]
        .int(0)?;
    let asks = matches!(
        alert.state,
        hydrowatch_protocol::Transition::Opened | hydrowatch_protocol::Transition::Escalated
    );
    c.exec(
        "INSERT INTO alarm_latest (device_id, alarm_id, last_id, series, kind, state, stage, changed_at,
                                   opened_at, highest, need_ack, arrived_at, to_handle)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?7, ?9, ?10, 1)
         ON CONFLICT (device_id, alarm_id) DO UPDATE SET
             last_id = excluded.last_id, series = excluded.series, kind = excluded.kind,
             state = excluded.state, stage = excluded.stage, changed_at = excluded.changed_at,
             opened_at = CASE WHEN excluded.opened_at < alarm_latest.opened_at
                              THEN excluded.opened_at ELSE alarm_latest.opened_at END,
             highest = CASE WHEN excluded.highest > alarm_latest.highest
                            THEN excluded.highest ELSE alarm_latest.highest END,
             need_ack = coalesce(excluded.need_ack, alarm_latest.need_ack)",
        &[
            Arg::Text(Some(device)),
            Arg::Int(alarm),
            Arg::Int(id),
            Arg::Text(Some(&alert.series)),
            Arg::Text(Some(alert.kind.name())),
            Arg::Text(Some(alert.state.name())),
            Arg::Int(i64::from(alert.outlier_stage)),
            Arg::Int(created_at),
            Arg::OptInt(asks.then_some(id)),
            Arg::Int(now),
        ],
    )?;
    refresh_to_handle(c, device, alarm)
}

/// Sets whether `device`'s alarm `alarm` is to handle, after a transition or an action.
pub(crate) fn refresh_to_handle(c: &mut dyn Sql, device: &str, alarm: i64) -> Result<(), DbError> {
    c.exec(
        &TO_HANDLE.replace("{where}", "device_id = ?1 AND alarm_id = ?2"),
        &[Arg::Text(Some(device)), Arg::Int(alarm)],
    )?;
    Ok(())
}

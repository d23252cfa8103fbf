//! Each alarm's latest state, one row per alarm (`alarm_latest`): its latest transition, its
//! first opening and highest stage, the newest transition that asks for an acknowledgement, the
//! arrival of its first at the server, and whether it is to handle. The list people work from
//! reads these rows only, never every transition ever stored.
//!
//! Invariants: a transition is stored only by [`NewTransitions`], which brings its alarm's row up
//! to it in the same transaction, and a row never goes back to an older transition (merges keep
//! the greater id, whatever a batch's range holds); `to_handle` is 1 exactly while the alarm is
//! active or not [`ACKNOWLEDGED`], set with every transition and by [`refresh_to_handle`] after
//! every action.

use hydrowatch_protocol::AlertBody;

use crate::sql::{Arg, DbError, Sql};

/// Whether the alarm of row `l` of `alarm_latest` (with its `alarm_state` as `s`) is acknowledged:
/// nothing asks for it, or people acknowledged through the newest opening or escalation.
pub(crate) const ACKNOWLEDGED: &str = "(l.need_ack IS NULL OR s.acked_through >= l.need_ack)";

/// Brings `alarm_latest` up to the transitions that `{where}` picks (in `alerts`), one row per
/// alarm however many of its transitions there are, merged with the row it had: the latest
/// transition (the one with the greater id, so that a merge never goes back), the first opening,
/// the highest stage, the newest transition that asks for an acknowledgement, the arrival
/// (`{arrived}` for an alarm new here), and whether it is to handle (active, or not
/// [`ACKNOWLEDGED`]). One statement, every row found by its key.
static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let newer =
        |column: &str| format!("CASE WHEN o.last_id > a.id THEN o.{column} ELSE a.{column} END");
    format!(
        "INSERT INTO alarm_latest (device_id, alarm_id, last_id, series, kind, state, stage, changed_at,
                                   opened_at, highest, need_ack, arrived_at, to_handle)
         SELECT l.device_id, l.alarm_id, l.last_id, l.series, l.kind, l.state, l.stage, l.changed_at,
                l.opened_at, l.highest, l.need_ack, l.arrived_at,
                CASE WHEN l.state <> 'cleared' THEN 1 WHEN {ACKNOWLEDGED} THEN 0 ELSE 1 END
         FROM (SELECT g.device_id, g.alarm_id,
                      CASE WHEN o.last_id > a.id THEN o.last_id ELSE a.id END AS last_id,
                      {series} AS series, {kind} AS kind, {state} AS state, {stage} AS stage,
                      CASE WHEN o.last_id > a.id THEN o.changed_at ELSE a.created_at END AS changed_at,
                      CASE WHEN o.opened_at < g.opened_at THEN o.opened_at ELSE g.opened_at END AS opened_at,
                      CASE WHEN o.highest > g.highest THEN o.highest ELSE g.highest END AS highest,
                      CASE WHEN o.need_ack > g.need_ack THEN o.need_ack
                           ELSE coalesce(g.need_ack, o.need_ack) END AS need_ack,
                      coalesce(o.arrived_at, {{arrived}}) AS arrived_at
               FROM (SELECT device_id, alarm_id, max(id) AS last, min(created_at) AS opened_at,
                            max(stage) AS highest,
                            max(CASE WHEN state IN ('opened', 'escalated') THEN id END) AS need_ack
                     FROM alerts WHERE {{where}} GROUP BY device_id, alarm_id) g
               JOIN alerts a ON a.id = g.last
               LEFT JOIN alarm_latest o ON o.device_id = g.device_id AND o.alarm_id = g.alarm_id) l
         LEFT JOIN alarm_state s ON s.device_id = l.device_id AND s.alarm_id = l.alarm_id
         WHERE 1 = 1
         ON CONFLICT (device_id, alarm_id) DO UPDATE SET
             last_id = excluded.last_id, series = excluded.series, kind = excluded.kind,
             state = excluded.state, stage = excluded.stage, changed_at = excluded.changed_at,
             opened_at = excluded.opened_at, highest = excluded.highest,
             need_ack = excluded.need_ack, to_handle = excluded.to_handle",
        series = newer("series"),
        kind = newer("kind"),
        state = newer("state"),
        stage = newer("stage"),
    )
});

/// [`UPSERT`] of the transitions of device `?2` with ids from `?3` to `?4`, arrived at `?1`.
/// `device_id || ''` keeps SQLite's planner from the device's index (which would read every
/// transition the device ever sent) and on the key's range.
static UPSERT_BATCH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    UPSERT
        .replace("{where}", "(device_id || '') = ?2 AND id BETWEEN ?3 AND ?4")
        .replace("{arrived}", "CAST(?1 AS BIGINT)")
});

/// [`UPSERT`] of every transition of device `?1`'s alarm `?2`: its row made again, `to_handle`
/// with it, after people acted on the alarm (the row exists: its arrival is kept).
static UPSERT_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    UPSERT
        .replace("{where}", "device_id = ?1 AND alarm_id = ?2")
        .replace("{arrived}", "o.arrived_at")
});

/// Builds `alarm_latest` from every transition of an older database (versions 1 to 6): the
/// arrival of an alarm's first transition, which they did not keep, taken as its opening on the
/// device's clock, at most `now`.
pub(crate) fn build_from_older(c: &mut dyn Sql, now: i64) -> Result<(), DbError> {
    c.exec(
        &UPSERT.replace("{where}", "1 = 1").replace(
            "{arrived}",
            "CASE WHEN g.opened_at > ?1 THEN ?1 ELSE g.opened_at END",
        ),
        &[Arg::Int(now)],
    )?;
    Ok(())
}

/// The transitions of one device stored in one transaction: each stored by [`Self::record`],
/// then [`Self::finish`] brings their alarms' rows up to them (one statement for the whole
/// batch). The one way an alarm's transition is stored.
pub(crate) struct NewTransitions<'a> {
    device: &'a str,
    /// The first and last `alerts` id stored: a device's ingests take turns, so its rows between
    /// them are this transaction's (and any other of its rows there, the server's own silence
    /// alarm, merges harmlessly: see [`UPSERT`]).
    ids: Option<(i64, i64)>,
}

impl<'a> NewTransitions<'a> {
    /// None yet, of `device`.
    pub(crate) fn of(device: &'a str) -> Self {
        NewTransitions { device, ids: None }
    }

    /// Stores the transition `alert`, carried by message `message_id`, stamped `created_at` by
    /// the device, its body stored as `body`.
    pub(crate) fn record(
        &mut self,
        c: &mut dyn Sql,
        message_id: &str,
        alert: &AlertBody,
        created_at: i64,
        body: &str,
    ) -> Result<(), DbError> {
        let id = c.rows(
            "INSERT INTO alerts(message_id, device_id, alarm_id, series, kind, state, stage, created_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            &[
                Arg::Text(Some(message_id)),
                Arg::Text(Some(self.device)),
                // Checked on arrival (and the server's own ids): below 2^62.
                Arg::Int(i64::try_from(alert.alarm_id).unwrap_or(i64::MAX)),
                Arg::Text(Some(&alert.series)),
                Arg::Text(Some(alert.kind.name())),
                Arg::Text(Some(alert.state.name())),
                Arg::Int(i64::from(alert.outlier_stage)),
                Arg::Int(created_at),
                Arg::Text(Some(body)),
            ],
        )?[0]
            .int(0)?;
        self.ids = Some(self.ids.map_or((id, id), |(first, _)| (first, id)));
        Ok(())
    }

    /// Brings the rows of the alarms of the transitions stored, arrived at `now`, up to them.
    pub(crate) fn finish(self, c: &mut dyn Sql, now: i64) -> Result<(), DbError> {
        let Some((first, last)) = self.ids else {
            return Ok(());
        };
        c.exec(
            &UPSERT_BATCH,
            &[
                Arg::Int(now),
                Arg::Text(Some(self.device)),
                Arg::Int(first),
                Arg::Int(last),
            ],
        )?;
        Ok(())
    }
}

/// Sets whether `device`'s alarm `alarm` is to handle, after people acted on it.
pub(crate) fn refresh_to_handle(c: &mut dyn Sql, device: &str, alarm: i64) -> Result<(), DbError> {
    c.exec(&UPSERT_ONE, &[Arg::Text(Some(device)), Arg::Int(alarm)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydrowatch_protocol::{AlarmKind, Direction, Transition};

    fn alert(alarm: u64, state: Transition, stage: u8) -> AlertBody {
        AlertBody {
            machine_number: 1,
            time: "2024-07-01 09:00".into(),
            outlier_stage: stage,
            value: Some(1.0),
            series: "flow".into(),
            unit: "m3/h".into(),
            kind: AlarmKind::Outlier,
            direction: Direction::High,
            expected: None,
            percentile: None,
            alarm_id: alarm,
            state,
        }
    }

    /// A batch whose id range also holds an older transition of an alarm (the server's own
    /// silence alarm stored meanwhile) never takes that alarm's row back to it.
    #[test]
    fn a_row_never_goes_back_to_an_older_transition() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        crate::schema::migrate(&mut c, &crate::schema::SQLITE, 0).unwrap();
        let store = |c: &mut rusqlite::Connection, id: &str, state, stage, now| {
            let mut t = NewTransitions::of("dma-1");
            t.record(c, id, &alert(7, state, stage), now, "{}").unwrap();
            t.finish(c, now).unwrap();
        };
        store(&mut c, "m1", Transition::Opened, 3, 10);
        store(&mut c, "m2", Transition::Cleared, 0, 20);
        // The range of ids 1 to 2 again (as a batch holding m1 alone would see it at its end).
        let mut t = NewTransitions::of("dma-1");
        t.ids = Some((1, 1));
        t.finish(&mut c, 30).unwrap();
        let r = &c
            .rows(
                "SELECT state, last_id, highest, opened_at, arrived_at, to_handle FROM alarm_latest",
                &[],
            )
            .unwrap()[0];
        let got = (
            r.text(0).unwrap(),
            r.int(1).unwrap(),
            r.int(2).unwrap(),
            r.int(3).unwrap(),
            r.int(4).unwrap(),
            r.int(5).unwrap(),
        );
        // Cleared (not back to opened), its highest stage and first arrival kept; still to
        // handle: nobody acknowledged it.
        assert_eq!(got, ("cleared".to_string(), 2, 3, 10, 10, 1));
    }
}

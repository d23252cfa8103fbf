//! The durable queue of notifications, in the server's database. [`Db::plan_notifications`]
//! turns new alarm transitions into queued notifications (grouped per rule and device within
//! the rule's window) and queues reminders; [`Db::take_due_notifications`] hands out what is due;
//! the sender marks each sent, or failed for now with its next attempt.
//!
//! Invariants: each new alert row's id goes into `unplanned_alerts` in the transaction that
//! stores the row (a trigger of the database), and planning takes it off in the same transaction as the notifications it made,
//! so a restart neither skips nor repeats a transition, and a row that PostgreSQL commits after
//! a row with a higher id (concurrent ingests) is planned all the same (a cursor over ids would
//! step over it); a
//! transition of a shelved alarm queues nothing; an (alarm, rule) pair is reminded at most once;
//! a notification leaves the queue only when sent (or given up after [`GIVE_UP_AFTER`]).

use std::collections::{BTreeMap, HashSet};

use hydrowatch_protocol::{AlertBody, NotifiedAlarm, Transition};

use super::rules::Rule;
use crate::db::{Db, stored};
use crate::sql::{Arg, DbError, Row, Sql};

/// Most alarms listed in one notification (the count says how many there were).
pub const MAX_LISTED: usize = 50;
/// A notification not delivered within this many seconds is given up (and logged).
pub const GIVE_UP_AFTER: i64 = 24 * 3600;
/// Transitions planned per transaction (a round takes batch after batch until it has caught up,
/// so that the ingest's transactions interleave with it; larger batches mean fewer commits, each
/// a flush on SQLite).
const BATCH: i64 = 1000;

/// A queued notification.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Its id (the delivery id is made from it).
    pub id: i64,
    /// Its rule.
    pub rule_id: i64,
    /// The device.
    pub device_id: String,
    /// `alarms` or `reminder`.
    pub kind: String,
    /// The alarms, oldest first (at most [`MAX_LISTED`]).
    pub alarms: Vec<NotifiedAlarm>,
    /// How many alarms.
    pub count: u64,
    /// Attempts so far.
    pub attempts: i64,
    /// When it was queued.
    pub created_at: i64,
}

/// Due notifications taken per device at most (one device's flood leaves room for the others').
pub const TAKEN_PER_DEVICE: i64 = 100;

/// The notifications due at `?1`, at most `?2`, oldest first, at most `?3` of each device. The
/// outer test of being due is not redundant: on PostgreSQL a row another server took (and
/// leased) while this query ran is read again under `FOR UPDATE`, and only the outer conditions
/// are checked again, so without it both servers would send it (seen: 24 of 200 sent twice).
const DUE: &str =
    "SELECT id, rule_id, device_id, kind, alarms, count, attempts, created_at FROM notifications
     WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY device_id ORDER BY due_at, id) AS turn
                                  FROM notifications WHERE sent_at IS NULL AND failed_at IS NULL AND due_at <= ?1) AS due
                  WHERE turn <= ?3)
       AND sent_at IS NULL AND failed_at IS NULL AND due_at <= ?1
     ORDER BY due_at, id LIMIT ?2";

fn queued_of(r: &Row) -> Result<Queued, DbError> {
    let id = r.int(0)?;
    Ok(Queued {
        id,
        rule_id: r.int(1)?,
        device_id: r.text(2)?,
        kind: r.text(3)?,
        alarms: stored(&r.text(4)?, &format!("notification {id}"))?,
        count: u64::try_from(r.int(5)?).unwrap_or(0),
        attempts: r.int(6)?,
        created_at: r.int(7)?,
    })
}

/// The wait before attempt `attempts + 1`: 5 s doubling up to 15 min.
pub fn backoff(attempts: i64) -> i64 {
    (5_i64 << attempts.clamp(0, 20)).min(900)
}

/// Queues `alarms` for `rule` on `device`: without a window each alone, due now; else into the
/// rule's message for this device that is still gathering (due later), or a new one due after
/// the window.
fn enqueue(
    c: &mut dyn Sql,
    rule: &Rule,
    device: &str,
    alarms: Vec<NotifiedAlarm>,
    now: i64,
) -> Result<(), DbError> {
    if rule.record.group_seconds == 0 {
        for alarm in alarms {
            insert(c, rule, device, &[alarm], 1, now)?;
        }
        return Ok(());
    }
    let count = alarms.len() as i64;
    let gathering = c.rows(
        "SELECT id, alarms FROM notifications
         WHERE rule_id = ?1 AND device_id = ?2 AND sent_at IS NULL AND kind = 'alarms' AND attempts = 0 AND due_at > ?3
         ORDER BY id DESC LIMIT 1",
        &[Arg::Int(rule.record.id), Arg::Text(Some(device)), Arg::Int(now)],
    )?;
    if let Some(g) = gathering.first() {
        let id = g.int(0)?;
        let mut listed: Vec<NotifiedAlarm> = stored(&g.text(1)?, &format!("notification {id}"))?;
        let room = MAX_LISTED.saturating_sub(listed.len());
        listed.extend(alarms.into_iter().take(room));
        let text = serde_json::to_string(&listed).unwrap_or_default();
        c.exec(
            "UPDATE notifications SET alarms = ?2, count = count + ?3 WHERE id = ?1",
            &[Arg::Int(id), Arg::Text(Some(&text)), Arg::Int(count)],
        )?;
    } else {
        let listed: Vec<NotifiedAlarm> = alarms.into_iter().take(MAX_LISTED).collect();
        insert(c, rule, device, &listed, count, now)?;
    }
    Ok(())
}

/// A new message of `rule` for `device` listing `listed` of `count` alarms, due after the
/// rule's window.
fn insert(
    c: &mut dyn Sql,
    rule: &Rule,
    device: &str,
    listed: &[NotifiedAlarm],
    count: i64,
    now: i64,
) -> Result<(), DbError> {
    let text = serde_json::to_string(listed).unwrap_or_default();
    c.exec(
        "INSERT INTO notifications(rule_id, device_id, kind, alarms, count, created_at, due_at)
         VALUES (?1, ?2, 'alarms', ?3, ?4, ?5, ?6)",
        &[
            Arg::Int(rule.record.id),
            Arg::Text(Some(device)),
            Arg::Text(Some(&text)),
            Arg::Int(count),
            Arg::Int(now),
            Arg::Int(now + i64::from(rule.record.group_seconds)),
        ],
    )?;
    Ok(())
}

/// The alarms shelved at `now`, as (device, alarm id): few, read once per batch. A shelving
/// until the alarm clears holds for the transitions planned (openings and rises: the alarm is
/// active).
fn shelved_now(c: &mut dyn Sql, now: i64) -> Result<HashSet<(String, i64)>, DbError> {
    c.rows(
        "SELECT device_id, alarm_id FROM alarm_state WHERE shelved_by IS NOT NULL
         AND (shelved_until_clear = 1 OR shelved_until > ?1)",
        &[Arg::Int(now)],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, r.int(1)?)))
    .collect()
}

impl Db {
    /// One round of planning at `now`: the transitions not planned yet, batch after batch, then
    /// the reminders due. Returns how many notifications were queued or grown.
    pub fn plan_notifications(&self, rules: &[Rule], now: i64) -> Result<usize, DbError> {
        if rules.is_empty() {
            // Nothing to notify of: what came is history for a rule added later.
            self.write_alone(|c| c.exec("DELETE FROM unplanned_alerts", &[]))?;
            return Ok(0);
        }
        let mut queued = 0;
        loop {
            let (n, more) = self.plan_batch(rules, now)?;
            queued += n;
            if !more {
                break;
            }
        }
        queued += self.write_alone(|c| remind(c, rules, now))?;
        Ok(queued)
    }

    /// Plans at most [`BATCH`] transitions not planned yet, oldest first, and takes them off
    /// `unplanned_alerts`; says whether there may be more.
    fn plan_batch(&self, rules: &[Rule], now: i64) -> Result<(usize, bool), DbError> {
        self.write_alone(|c| {
            let rows = c.rows(
                "SELECT a.id, a.device_id, a.alarm_id, a.body, a.message_id
                 FROM unplanned_alerts u JOIN alerts a ON a.id = u.alert_id ORDER BY u.alert_id LIMIT ?1",
                &[Arg::Int(BATCH)],
            )?;
            // Per (rule, device), the alarms of this batch, in order.
            let mut groups: BTreeMap<(i64, String), Vec<NotifiedAlarm>> = BTreeMap::new();
            let shelved = shelved_now(c, now)?;
            // Taken off by their ids, not by a range: on PostgreSQL a row of a lower id may
            // commit after this read, and must stay to plan. Integers only: no text reaches the
            // SQL.
            let ids: Vec<String> = rows
                .iter()
                .map(|r| r.int(0).map(|id| id.to_string()))
                .collect::<Result<_, _>>()?;
            if !ids.is_empty() {
                c.batch(&format!(
                    "DELETE FROM unplanned_alerts WHERE alert_id IN ({})",
                    ids.join(",")
                ))?;
            }
            for r in &rows {
                let (device, alarm_id) = (r.text(1)?, r.int(2)?);
                let alert: AlertBody = stored(&r.text(3)?, &r.text(4)?)?;
                if !matches!(alert.state, Transition::Opened | Transition::Escalated) {
                    continue;
                }
                let matching: Vec<&Rule> = rules
                    .iter()
                    .filter(|rule| {
                        rule.matches(&device, &alert.series, alert.kind, alert.outlier_stage)
                    })
                    .collect();
                if matching.is_empty() || shelved.contains(&(device.clone(), alarm_id)) {
                    continue;
                }
                for rule in matching {
                    groups
                        .entry((rule.record.id, device.clone()))
                        .or_default()
                        .push(NotifiedAlarm {
                            alarm_id: alert.alarm_id,
                            kind: alert.kind,
                            series: alert.series.clone(),
                            stage: alert.outlier_stage,
                            state: alert.state,
                            time: alert.time.clone(),
                        });
                    if rule.record.remind_minutes.is_some() {
                        c.exec(
                            "INSERT INTO notified(rule_id, device_id, alarm_id, first_at) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT(rule_id, device_id, alarm_id) DO NOTHING",
                            &[
                                Arg::Int(rule.record.id),
                                Arg::Text(Some(&device)),
                                Arg::Int(alarm_id),
                                Arg::Int(now),
                            ],
                        )?;
                    }
                }
            }
            let mut queued = 0;
            for ((rule_id, device), alarms) in groups {
                if let Some(rule) = rules.iter().find(|r| r.record.id == rule_id) {
                    queued += alarms.len();
                    enqueue(c, rule, &device, alarms, now)?;
                }
            }
            Ok((queued, rows.len() as i64 == BATCH))
        })
    }

    /// Notifications due at `now` (at most `limit`), oldest first, left where they are.
    pub fn due_notifications(&self, now: i64, limit: i64) -> Result<Vec<Queued>, DbError> {
        self.read(|c| {
            c.rows(DUE, &[Arg::Int(now), Arg::Int(limit), Arg::Int(limit)])?
                .iter()
                .map(queued_of)
                .collect()
        })
    }

    /// Takes the notifications due at `now` (at most `limit`, oldest first) for this process to
    /// send: each is due again only `lease` seconds later, so that another server process on
    /// the database does not send it meanwhile, and one that dies with it in hand leaves it to
    /// the others after the lease (sent again with the same delivery id). On PostgreSQL the rows
    /// another process is taking are skipped, not waited for.
    pub fn take_due_notifications(
        &self,
        now: i64,
        limit: i64,
        lease: i64,
    ) -> Result<Vec<Queued>, DbError> {
        let skip_locked = if self.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        self.write(|c| {
            let taken: Vec<Queued> = c
                .rows(
                    &format!("{DUE}{skip_locked}"),
                    &[Arg::Int(now), Arg::Int(limit), Arg::Int(TAKEN_PER_DEVICE)],
                )?
                .iter()
                .map(queued_of)
                .collect::<Result<_, _>>()?;
            for q in &taken {
                c.exec(
                    "UPDATE notifications SET due_at = ?2 WHERE id = ?1",
                    &[Arg::Int(q.id), Arg::Int(now.saturating_add(lease))],
                )?;
            }
            Ok(taken)
        })
    }

    /// Notifications `ids`, taken but not attempted (their receiver failed meanwhile, or has no
    /// room), are due again at `due` instead of when their lease ends.
    pub fn notifications_due_at(&self, ids: &[i64], due: i64) -> Result<(), DbError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(|c| {
            for id in ids {
                c.exec(
                    "UPDATE notifications SET due_at = ?2 WHERE id = ?1 AND sent_at IS NULL",
                    &[Arg::Int(*id), Arg::Int(due)],
                )?;
            }
            Ok(())
        })
    }

    /// Notification `id` was delivered at `now`.
    pub fn notification_sent(&self, id: i64, now: i64) -> Result<(), DbError> {
        self.write(|c| {
            c.exec(
                "UPDATE notifications SET sent_at = ?2, attempts = attempts + 1 WHERE id = ?1",
                &[Arg::Int(id), Arg::Int(now)],
            )
            .map(drop)
        })
    }

    /// Notification `id` failed at `now` with `error`: tried again after [`backoff`], or given up
    /// once older than [`GIVE_UP_AFTER`]. Returns true when given up.
    pub fn notification_failed(&self, q: &Queued, error: &str, now: i64) -> Result<bool, DbError> {
        let give_up = now - q.created_at >= GIVE_UP_AFTER;
        let error: String = error.chars().take(500).collect();
        self.write(|c| {
            c.exec(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?2, due_at = ?3,
                 failed_at = ?4 WHERE id = ?1",
                &[
                    Arg::Int(q.id),
                    Arg::Text(Some(&error)),
                    Arg::Int(now + backoff(q.attempts)),
                    Arg::OptInt(give_up.then_some(now)),
                ],
            )
            .map(drop)
        })?;
        Ok(give_up)
    }

    /// Notifications by state, all rules: (sent, waiting, given up).
    pub fn notification_counts(&self) -> Result<(i64, i64, i64), DbError> {
        self.read(|c| {
            let r = &c.rows(
                "SELECT count(sent_at), count(*) - count(sent_at) - count(failed_at), count(failed_at) FROM notifications",
                &[],
            )?[0];
            Ok((r.int(0)?, r.int(1)?, r.int(2)?))
        })
    }
}

/// Queues the reminders due at `now`: an alarm notified by a rule with a reminder, still active,
/// unacknowledged and not shelved that long after; each (rule, alarm) once.
fn remind(c: &mut dyn Sql, rules: &[Rule], now: i64) -> Result<usize, DbError> {
    let mut queued = 0;
    for rule in rules {
        let Some(minutes) = rule.record.remind_minutes else {
            continue;
        };
        let due = c.rows(
            "SELECT device_id, alarm_id FROM notified WHERE rule_id = ?1 AND reminded_at IS NULL AND first_at <= ?2",
            &[Arg::Int(rule.record.id), Arg::Int(now - i64::from(minutes) * 60)],
        )?;
        for r in &due {
            let (device, alarm_id) = (r.text(0)?, r.int(1)?);
            let alarm = u64::try_from(alarm_id).unwrap_or(0);
            let status = crate::alarms::status(c, &device, alarm, now)?;
            if let Some(s) = status.filter(|s| s.active && !s.acknowledged && !s.shelved) {
                let listed = [NotifiedAlarm {
                    alarm_id: s.alarm_id,
                    kind: s.kind,
                    series: s.series.clone(),
                    stage: s.stage,
                    state: Transition::Opened,
                    time: hydrowatch_protocol::rfc3339(s.opened_at),
                }];
                let text = serde_json::to_string(&listed).unwrap_or_default();
                c.exec(
                    "INSERT INTO notifications(rule_id, device_id, kind, alarms, count, created_at, due_at)
                     VALUES (?1, ?2, 'reminder', ?3, 1, ?4, ?4)",
                    &[Arg::Int(rule.record.id), Arg::Text(Some(&device)), Arg::Text(Some(&text)), Arg::Int(now)],
                )?;
                queued += 1;
            }
            // Reminded, or nothing left to remind of: never again for this alarm and rule.
            c.exec(
                "UPDATE notified SET reminded_at = ?4 WHERE rule_id = ?1 AND device_id = ?2 AND alarm_id = ?3",
                &[Arg::Int(rule.record.id), Arg::Text(Some(&device)), Arg::Int(alarm_id), Arg::Int(now)],
            )?;
        }
    }
    Ok(queued)
}

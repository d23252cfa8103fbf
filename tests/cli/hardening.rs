//! Hostile and unlucky input (issue #15): each test here failed before its fix.

use std::io::{BufRead, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hydrowatch_core::Reading;
use hydrowatch_core::time::format_local;

use super::daemon::{KilledOnDrop, connect, start_daemon, unused_port, wait_listening};
use super::{fails, ok, run, store, write};

/// A row dated 2062 is refused by import like a live reading from the future, a year before
/// 1970 as a mistyped year, and nothing of the file is committed.
#[test]
fn import_refuses_readings_from_the_future_and_years_outside_the_span() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    let tz = chrono_tz::Asia::Seoul;
    let good = format_local(now - 3600, tz);
    write(
        d,
        "future.csv",
        &format!("time,flow_rate\n{good},100\n2062-07-01 00:00,101\n"),
    );
    let e = fails(run(d, &["import", "future.csv"]));
    assert!(
        e.contains("future.csv, line 3, column 1 (`time`): 2062-07-01 00:00 is ")
            && e.contains("from the future"),
        "{e}"
    );
    write(
        d,
        "past.csv",
        &format!("time,flow_rate\n{good},100\n1969-07-20 20:17,101\n"),
    );
    let e = fails(run(d, &["import", "past.csv"]));
    assert!(
        e.contains("past.csv, line 3, column 1 (`time`): the year is outside 1970-2199"),
        "{e}"
    );
    assert_eq!(super::count(d, "flow_rate"), 0);
    // --skip-bad skips and reports the row, and imports the rest.
    let o = ok(run(d, &["import", "--skip-bad", "future.csv"]));
    assert!(
        super::stderr(&o).contains("from the future"),
        "{}",
        super::stderr(&o)
    );
    assert_eq!(super::count(d, "flow_rate"), 1);
}

/// However a reading dated 2062 got into the database, live readings after it are judged:
/// flow 5000 over a configured maximum of 1000 opens a range alarm.
#[test]
fn a_stored_reading_from_the_future_does_not_stop_live_readings_being_judged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    {
        let mut s = store(d);
        let id = s.ensure_series("flow_rate", Some("m3/h")).unwrap();
        let mut rows: Vec<_> = (1..=120)
            .map(|m| {
                (
                    id,
                    Reading {
                        ts: now - 600 - m * 60,
                        value: 100.0,
                    },
                )
            })
            .collect();
        rows.push((
            id,
            Reading {
                ts: 2_919_456_000, // 2062-07-07
                value: 100.0,
            },
        ));
        s.insert_readings(&rows).unwrap();
    }
    let addr = format!("127.0.0.1:{}", unused_port());
    write(
        d,
        "f.toml",
        &format!(
            "[device]\nid = \"dma-7\"\n\n[[series]]\nname = \"flow_rate\"\nunit = \"m3/h\"\nmin = 0.0\nmax = 1000.0\n\n\
             [[source]]\nkind = \"tcp\"\nlisten = \"{addr}\"\n"
        ),
    );
    let _daemon = KilledOnDrop(start_daemon(d, "f.toml", Stdio::null()));
    wait_listening(&addr);
    let (mut reader, mut writer) = connect(&addr);
    for m in (0..5).rev() {
        let line = format!(
            "{},flow_rate,5000\n",
            format_local(now - m * 60, chrono_tz::Asia::Seoul)
        );
        writer.write_all(line.as_bytes()).unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        assert_eq!(answer, "ok\n");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alarms = store(d).alarms(true).unwrap();
        if alarms.iter().any(|a| a.kind == "range") {
            break;
        }
        assert!(Instant::now() < deadline, "no range alarm: {alarms:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

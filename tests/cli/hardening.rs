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
             [daemon]\nhealth_listen = \"\"\n\n[[source]]\nkind = \"tcp\"\nlisten = \"{addr}\"\n"
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

/// A sender streaming megabytes without a line break is cut off at 4 KB: the lines before it
/// are answered, the long one gets an error quoting only its start, and the connection is
/// closed; the daemon goes on serving others.
#[test]
fn a_line_without_end_on_the_tcp_source_is_cut_off_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let addr = format!("127.0.0.1:{}", unused_port());
    write(
        d,
        "t.toml",
        &format!(
            "[device]\nid = \"dma-7\"\n\n[[series]]\nname = \"flow_rate\"\nunit = \"m3/h\"\n\n[daemon]\nhealth_listen = \"\"\n\n[[source]]\nkind = \"tcp\"\nlisten = \"{addr}\"\n"
        ),
    );
    let _daemon = KilledOnDrop(start_daemon(d, "t.toml", Stdio::null()));
    wait_listening(&addr);
    let now = chrono::Utc::now().timestamp() / 60 * 60;
    let at = |ts: i64| format_local(ts, chrono_tz::Asia::Seoul);
    let (mut reader, mut writer) = connect(&addr);
    writer
        .write_all(format!("{},flow_rate,100\n", at(now - 120)).as_bytes())
        .unwrap();
    // 8 MB of digits and no newline: the daemon stops reading at 4 KB.
    let chunk = vec![b'7'; 1 << 20];
    for _ in 0..8 {
        if writer.write_all(&chunk).is_err() {
            break; // closed by the daemon: what it should do
        }
    }
    let mut answers = String::new();
    let _ = std::io::Read::read_to_string(&mut reader, &mut answers);
    let lines: Vec<&str> = answers.lines().collect();
    assert_eq!(lines.first(), Some(&"ok"), "{answers:.300}");
    assert!(
        lines.len() == 2
            && lines[1].starts_with("error: line 2: longer than 4096 bytes")
            && lines[1].ends_with("connection closed")
            && lines[1].len() < 200,
        "{answers:.300}"
    );
    // Others are still served.
    let (mut reader, mut writer) = connect(&addr);
    writer
        .write_all(format!("{},flow_rate,101\n", at(now - 60)).as_bytes())
        .unwrap();
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    assert_eq!(answer, "ok\n");
}

/// A local time of the repeated autumn hour sent on a new connection is placed after the
/// reading of the same wall-clock time already stored (it was refused as a conflict); times
/// with an offset or in UTC are accepted on the same source.
#[test]
fn the_repeated_autumn_hour_arrives_whole_over_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let addr = format!("127.0.0.1:{}", unused_port());
    write(
        d,
        "r.toml",
        &format!(
            // Readings of 2024: kept whatever today's date (the year's retention would delete
            // them when its job comes due during the test).
            "[device]\nid = \"dma-7\"\ntimezone = \"Europe/Rome\"\n\n[storage]\nretention_days = 36500\n\n[[series]]\nname = \"flow_rate\"\nunit = \"m3/h\"\n\n\
             [daemon]\nhealth_listen = \"\"\n\n[[source]]\nkind = \"tcp\"\nlisten = \"{addr}\"\n"
        ),
    );
    let _daemon = KilledOnDrop(start_daemon(d, "r.toml", Stdio::null()));
    wait_listening(&addr);
    let send = |line: &str| {
        let (mut reader, mut writer) = connect(&addr);
        writer.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        answer
    };
    // 02:30 twice, each on its own connection: summer time, then winter time.
    assert_eq!(send("2024-10-27 02:30,flow_rate,100"), "ok\n");
    assert_eq!(send("2024-10-27 02:30,flow_rate,90"), "ok\n");
    assert_eq!(send("2024-10-27T02:45:00+01:00,flow_rate,91"), "ok\n");
    assert_eq!(send("2024-10-27T00:45:00Z,flow_rate,101"), "ok\n");
    let s =
        hydrowatch_store::Store::open(&d.join("hydrowatch.db"), chrono_tz::Europe::Rome).unwrap();
    let id = s.series_id("flow_rate").unwrap();
    let got: Vec<(i64, f64)> = s
        .readings(id, 0, i64::MAX)
        .unwrap()
        .iter()
        .map(|r| (r.ts, r.value))
        .collect();
    // 00:30Z and 00:45Z (summer), 01:30Z and 01:45Z (winter).
    let base = 1_729_989_000; // 2024-10-27T00:30:00Z
    assert_eq!(
        got,
        vec![
            (base, 100.0),
            (base + 900, 101.0),
            (base + 3600, 90.0),
            (base + 4500, 91.0)
        ]
    );
}

/// `detect --input` that fails halfway leaves no partial output (an older complete one stays),
/// and a file out of time order is refused naming the line instead of leaving rows unjudged.
#[test]
fn detect_writes_its_output_whole_or_not_at_all_and_refuses_rows_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows: String = (0..300)
        .map(|m| format!("2024-07-01 {:02}:{:02},{}\n", m / 60, m % 60, 100 + m % 7))
        .collect();
    write(
        d,
        "bad.csv",
        &format!("time,flow_rate\n{rows}2024-07-01 05:00,abc\n"),
    );
    write(d, "old.csv", "an earlier complete output\n");
    let e = fails(run(
        d,
        &[
            "detect", "--input", "bad.csv", "--output", "old.csv", "--alarms", "a.jsonl",
        ],
    ));
    assert!(e.contains("bad.csv, line 302"), "{e}");
    assert_eq!(
        std::fs::read_to_string(d.join("old.csv")).unwrap(),
        "an earlier complete output\n"
    );
    assert!(!d.join("a.jsonl").exists());
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    write(
        d,
        "unordered.csv",
        &format!("time,flow_rate\n{rows}2024-07-01 01:00,100\n"),
    );
    let e = fails(run(
        d,
        &["detect", "--input", "unordered.csv", "--output", "v.csv"],
    ));
    assert!(
        e.contains("unordered.csv, line 302: 2024-07-01 01:00 is before line 301")
            && e.contains("sort it by time"),
        "{e}"
    );
    assert!(!d.join("v.csv").exists());
    // In order, the output is complete and the span is right.
    write(d, "good.csv", &format!("time,flow_rate\n{rows}"));
    let o = ok(run(
        d,
        &["detect", "--input", "good.csv", "--output", "v.csv"],
    ));
    assert!(
        super::stdout(&o).contains("over 0.2 days"),
        "{}",
        super::stdout(&o)
    );
    let verdicts = std::fs::read_to_string(d.join("v.csv")).unwrap();
    assert_eq!(verdicts.lines().count(), 301);
}

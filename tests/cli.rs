//! End-to-end tests of the `hydrowatch` binary: real files, a real SQLite database, real
//! processes (one integration test binary for the whole command line).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hydrowatch_store::{ForecastPoint, Store};

#[path = "cli/daemon.rs"]
mod daemon;
#[path = "cli/hardening.rs"]
mod hardening;
#[path = "cli/mqtt.rs"]
mod mqtt;
#[path = "cli/notify.rs"]
mod notify;
#[path = "cli/training.rs"]
mod training;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
}

/// Runs hydrowatch in `dir` with `args`.
fn run(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("hydrowatch runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> Output {
    assert!(o.status.success(), "failed: {}\n{}", stderr(&o), stdout(&o));
    o
}

#[track_caller]
fn fails(o: Output) -> String {
    assert!(!o.status.success(), "should have failed: {}", stdout(&o));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(!e.contains("panicked"), "{e}");
    e
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn store(dir: &Path) -> Store {
    Store::open(&dir.join("hydrowatch.db"), chrono_tz::Asia::Seoul).unwrap()
}

/// Number of readings of `series` in the default database of `dir` (0 if the series is absent).
fn count(dir: &Path, series: &str) -> u64 {
    let s = store(dir);
    s.series_id(series)
        .map(|id| s.count(id).unwrap())
        .unwrap_or(0)
}

#[test]
fn help_teaches_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let top = stdout(&ok(run(dir.path(), &["--help"])));
    for cmd in ["simulate", "import", "export", "config", "bench"] {
        assert!(top.contains(cmd), "{top}");
    }
    assert!(top.contains("--config") && top.contains("--db"));
    let import = stdout(&ok(run(dir.path(), &["import", "--help"])));
    for needle in [
        "--series",
        "--timezone",
        "--skip-bad",
        "time,value",
        "missing values",
        "--db",
    ] {
        assert!(
            import.contains(needle),
            "import --help lacks {needle}: {import}"
        );
    }
}

#[test]
fn narrow_prototype_file_with_missing_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "f.csv",
        "time,value\n2024-07-09 0:01,227\n2024-07-09 0:02,\n2024-07-09 0:03,229.5\n",
    );
    let out = stdout(&ok(run(d, &["import", "--series", "flow_rate", "f.csv"])));
    assert!(
        out.contains("2 new readings") && out.contains("1 missing cells"),
        "{out}"
    );
    let table = stdout(&ok(run(d, &["export"])));
    assert_eq!(
        table, "time,flow_rate,flow_rate_predict\n2024-07-09 00:01,227,\n2024-07-09 00:03,229.5,\n",
        "the empty cell is missing, not a zero"
    );
    // Without --series the file's series is unknown.
    let e = fails(run(d, &["import", "f.csv"]));
    assert!(e.contains("f.csv") && e.contains("--series"), "{e}");
}

#[test]
fn wide_files_iso_times_and_global_options_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "w.csv",
        "time,flow_rate,pressure\n2024-07-08T15:01:00Z,10,3.5\n2024-07-09T00:02:00+09:00,11,\n2024-07-09 00:03:00,12,3.4\n",
    );
    // --db before and after the command.
    ok(run(d, &["--db", "a.db", "import", "w.csv"]));
    ok(run(d, &["import", "--db", "b.db", "w.csv"]));
    for db in ["a.db", "b.db"] {
        let table = stdout(&ok(run(d, &["export", "--db", db])));
        assert_eq!(
            table,
            "time,flow_rate,pressure,flow_rate_predict,pressure_predict\n\
             2024-07-09 00:01,10,3.5,,\n2024-07-09 00:02,11,,,\n2024-07-09 00:03,12,3.4,,\n"
        );
    }
    // Only one column of a wide file.
    ok(run(d, &["import", "--series", "pressure", "w.csv"]));
    assert_eq!((count(d, "pressure"), count(d, "flow_rate")), (2, 0));
}

#[test]
fn daylight_saving_both_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // As in the Italian DMA files: 02:00 missing in March, repeated in October.
    write(
        d,
        "rome.csv",
        "time,value\n2021-03-28 01:00,4.79\n2021-03-28 03:00,4.58\n\
         2021-10-31 01:00,6.68\n2021-10-31 02:00,6.55\n2021-10-31 02:00,6.48\n2021-10-31 03:00,6.22\n",
    );
    let out = stdout(&ok(run(
        d,
        &[
            "import",
            "--timezone",
            "Europe/Rome",
            "--series",
            "inflow",
            "rome.csv",
        ],
    )));
    assert!(
        out.contains("6 new readings"),
        "both 02:00 rows are kept: {out}"
    );
    let s = store(d);
    let id = s.series_id("inflow").unwrap();
    let ts: Vec<i64> = s
        .readings(id, i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|r| r.ts)
        .collect();
    assert_eq!(ts[1] - ts[0], 3600);
    assert_eq!(
        &ts[2..].windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>(),
        &[3600, 3600, 3600]
    );
    // Exported in Rome time, the repeated hour appears twice, in order.
    let table = stdout(&ok(run(d, &["export", "--timezone", "Europe/Rome"])));
    assert!(
        table.contains("2021-10-31 02:00,6.55,\n2021-10-31 02:00,6.48,\n"),
        "{table}"
    );

    // A time in the spring gap never happened: an error naming it.
    write(d, "gap.csv", "time,value\n2021-03-28 02:30,1\n");
    let e = fails(run(
        d,
        &[
            "import",
            "--timezone",
            "Europe/Rome",
            "--series",
            "inflow",
            "gap.csv",
        ],
    ));
    assert!(
        e.contains("gap.csv, line 2")
            && e.contains("does not exist")
            && e.contains("2021-03-28 02:30"),
        "{e}"
    );
}

#[test]
fn every_bad_input_names_file_line_column_value_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = "2024-07-09 00:01,1,2\n";
    let cases = [
        (
            "value.csv",
            "2024-07-09 00:02,abc,2\n",
            "value.csv, line 3, column 2 (`flow_rate`): not a finite number: \"abc\"",
        ),
        (
            "time.csv",
            "2024-07-09 24:02,1,2\n",
            "time.csv, line 3, column 1 (`time`)",
        ),
        (
            "form.csv",
            "09/07/2024 00:02,1,2\n",
            "form.csv, line 3, column 1 (`time`): not a time",
        ),
        (
            "fields.csv",
            "2024-07-09 00:02,1\n",
            "fields.csv, line 3: expected 3 fields like the header, found 2",
        ),
        (
            "inf.csv",
            "2024-07-09 00:02,1,inf\n",
            "inf.csv, line 3, column 3 (`pressure`)",
        ),
        (
            "quote.csv",
            "\"2024-07-09 00:02,1,2\n",
            "quote.csv, line 3: a quoted field is not closed",
        ),
    ];
    for (name, bad, needle) in cases {
        // The bad row sits between good rows, after a good file: nothing of either is kept.
        write(d, "ok.csv", &format!("time,flow_rate,pressure\n{good}"));
        write(
            d,
            name,
            &format!("time,flow_rate,pressure\n{good}{bad}2024-07-09 00:03,1,2\n"),
        );
        let e = fails(run(d, &["import", "ok.csv", name]));
        assert!(e.contains(needle), "{name}: {e}");
        assert!(
            e.contains("nothing was imported") && e.contains("--skip-bad"),
            "{e}"
        );
        assert_eq!(count(d, "flow_rate"), 0, "{name}: nothing committed");
    }
    // Header problems.
    for (text, needle) in [
        ("", "empty"),
        ("stamp,flow_rate\n", "first column must be the time"),
        ("time,flow rate\n", "not allowed"),
    ] {
        write(d, "h.csv", text);
        let e = fails(run(d, &["import", "h.csv"]));
        assert!(e.contains("h.csv, line 1") && e.contains(needle), "{e}");
    }
    let e = fails(run(d, &["import", "missing.csv"]));
    assert!(e.contains("missing.csv: no such file"), "{e}");
    let e = fails(run(d, &["import", "--timezone", "Mars/Olympus", "ok.csv"]));
    assert!(e.contains("Mars/Olympus") && e.contains("IANA"), "{e}");
    write(d, "w.csv", "time,flow_rate\n");
    let e = fails(run(d, &["import", "--series", "pressure", "w.csv"]));
    assert!(
        e.contains("--series pressure: no such column (the file has: flow_rate)"),
        "{e}"
    );
}

#[test]
fn skip_bad_reports_every_skipped_row_and_imports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "f.csv",
        "time,flow_rate\n2024-07-09 00:01,1\nnot a time,2\n2024-07-09 00:03,x\n2024-07-09 00:04,4\n",
    );
    let o = ok(run(d, &["import", "--skip-bad", "f.csv"]));
    let e = stderr(&o);
    assert!(
        e.contains("skipped: f.csv, line 3, column 1")
            && e.contains("skipped: f.csv, line 4, column 2"),
        "{e}"
    );
    assert!(stdout(&o).contains("2 new readings") && stdout(&o).contains("2 bad rows skipped"));
    assert_eq!(count(d, "flow_rate"), 2);
}

#[test]
fn reimport_adds_nothing_and_conflicts_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "f.csv",
        "time,flow_rate\n2024-07-09 00:01,1\n2024-07-09 00:02,2\n",
    );
    ok(run(d, &["import", "f.csv"]));
    let out = stdout(&ok(run(d, &["import", "f.csv"])));
    assert!(
        out.contains("0 new readings") && out.contains("2 already stored"),
        "{out}"
    );
    assert_eq!(count(d, "flow_rate"), 2);
    write(d, "g.csv", "time,flow_rate\n2024-07-09 00:02,5\n");
    let o = ok(run(d, &["import", "g.csv"]));
    assert!(
        stderr(&o).contains("conflict: g.csv, line 2: flow_rate = 5 but 2 is already stored"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("1 conflicting"));
    let s = store(d);
    let v = s
        .readings(s.series_id("flow_rate").unwrap(), 0, i64::MAX)
        .unwrap();
    assert_eq!(v[1].value, 2.0, "the stored value is kept");
}

#[test]
fn configured_series_and_units() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = stdout(&ok(run(d, &["config", "example"])));
    write(
        d,
        "hydrowatch.toml",
        &cfg.replace("hydrowatch.db", "dev.db"),
    );
    write(d, "f.csv", "time,flow_rate,level\n2024-07-09 00:01,1,2\n");
    let e = fails(run(d, &["--config", "hydrowatch.toml", "import", "f.csv"]));
    assert!(
        e.contains("\"level\" is not in the configuration") && e.contains("flow_rate, pressure"),
        "{e}"
    );
    ok(run(
        d,
        &[
            "--config",
            "hydrowatch.toml",
            "import",
            "--series",
            "flow_rate",
            "f.csv",
        ],
    ));
    let s = Store::open(&d.join("dev.db"), chrono_tz::Asia::Seoul).unwrap();
    assert_eq!(
        s.series().unwrap()[0].unit,
        "m3/h",
        "storage.database and units come from the file"
    );
}

#[test]
fn config_check_and_example() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let example = stdout(&ok(run(d, &["config", "example"])));
    write(d, "good.toml", &example);
    let out = stdout(&ok(run(d, &["config", "check", "good.toml"])));
    assert!(
        out.contains("good.toml: valid") && out.contains("dma-017 in Asia/Seoul"),
        "{out}"
    );
    // What is configured and what is left to learn.
    assert!(
        out.contains("flow_rate (m3/h, range 0 to 2000, largest change 200/min)")
            && out.contains("pressure (bar, range learned, largest change learned)"),
        "{out}"
    );
    // The calendar in force, and until when.
    assert!(
        out.contains("holidays  national public holidays of KR (from [forecast] country), known until 2030-12-31; plus 1 listed"),
        "{out}"
    );
    // The configuration of the backtests in docs/FORECASTING.md stays valid.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/dma-inflow.toml");
    let out = stdout(&ok(run(d, &["config", "check", shipped])));
    assert!(
        out.contains("dma-inflow in Europe/Rome")
            && out.contains("national public holidays of IT (from the time zone Europe/Rome)"),
        "{out}"
    );
    // A region adds its own holidays; one its country lacks is refused with the known codes.
    let rome = example.replace("country = \"KR\"", "country = \"IT\"\nregion = \"RM\"");
    write(d, "rome.toml", &rome);
    let out = stdout(&ok(run(d, &["config", "check", "rome.toml"])));
    assert!(
        out.contains(
            "national public holidays of IT (from [forecast] country) and those of its region RM"
        ),
        "{out}"
    );
    write(d, "nowhere.toml", &rome.replace("\"RM\"", "\"XY\""));
    let e = fails(run(d, &["config", "check", "nowhere.toml"]));
    assert!(
        e.contains("region = \"XY\": not a region of IT") && e.contains("RM"),
        "{e}"
    );
    write(
        d,
        "bad.toml",
        &example.replace("retention_days = 365", "retention_dayz = 365"),
    );
    let e = fails(run(d, &["config", "check", "bad.toml"]));
    assert!(
        e.contains("bad.toml") && e.contains("retention_dayz") && e.contains("retention_days"),
        "{e}"
    );
    write(
        d,
        "bad2.toml",
        &example.replace("forecast_at = \"00:30\"", "forecast_at = \"0030\""),
    );
    let e = fails(run(d, &["config", "check", "bad2.toml"]));
    assert!(e.contains("forecast_at") && e.contains("HH:MM"), "{e}");
    let e = fails(run(d, &["--config", "nope.toml", "export"]));
    assert!(e.contains("nope.toml: cannot read"), "{e}");
}

#[test]
fn simulate_writes_minutes_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            "30",
            "--seed",
            "4",
            "--out",
            "s.csv",
            "--labels",
            "l.csv",
            "--start",
            "2024-03-01",
        ],
    ));
    let data = std::fs::read_to_string(d.join("s.csv")).unwrap();
    let lines: Vec<&str> = data.lines().collect();
    assert_eq!(lines[0], "time,flow_rate,pressure");
    assert_eq!(lines.len(), 1 + 30 * 1440);
    assert!(lines[1].starts_with("2024-03-01 00:00,") && lines[2].starts_with("2024-03-01 00:01,"));
    let labels = std::fs::read_to_string(d.join("l.csv")).unwrap();
    assert!(labels.starts_with("start,end,kind,series\n"));
    for kind in [",burst,", ",leak,", ",stuck,", ",silent,", ",spike,"] {
        assert!(labels.contains(kind), "{kind} missing in {labels}");
    }
    // Same seed, same bytes.
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            "30",
            "--seed",
            "4",
            "--out",
            "t.csv",
            "--start",
            "2024-03-01",
        ],
    ));
    assert_eq!(std::fs::read(d.join("t.csv")).unwrap(), data.as_bytes());
    // The simulator's file imports as it is.
    let out = stdout(&ok(run(d, &["import", "s.csv"])));
    assert!(out.contains(&format!("{} rows", 30 * 1440)), "{out}");
    let usage = run(d, &["simulate", "--days", "0", "--out", "x.csv"]);
    assert_eq!(usage.status.code(), Some(2), "a usage error");
    assert!(stderr(&usage).contains("--days"));
}

#[test]
fn export_holds_the_day_ahead_forecast_beside_the_readings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "f.csv",
        "time,flow_rate,pressure\n2024-07-02 10:00,100,3\n2024-07-02 10:30,110,3\n2024-07-02 11:00,120,3\n",
    );
    ok(run(d, &["import", "f.csv"]));
    {
        let mut s = store(d);
        let id = s.series_id("flow_rate").unwrap();
        let mut p = hydrowatch_core::LocalTimeParser::new(chrono_tz::Asia::Seoul);
        let issued_d1 = p.parse("2024-07-01 00:30").unwrap();
        let issued_d2 = p.parse("2024-07-02 00:30").unwrap();
        let points = |start: i64, v: f64| -> Vec<ForecastPoint> {
            (0..168)
                .map(|h| ForecastPoint {
                    target: start + h * 3600,
                    value: v,
                    lower: v - 1.0,
                    upper: v + 1.0,
                })
                .collect()
        };
        // Issued the day before: the one to show. Issued the same day: not day-ahead.
        s.insert_forecast(id, issued_d1, &points(issued_d1 + 1800, 105.0))
            .unwrap();
        s.insert_forecast(id, issued_d2, &points(issued_d2 + 1800, 999.0))
            .unwrap();
    }
    ok(run(
        d,
        &[
            "export",
            "--from",
            "2024-07-02",
            "--to",
            "2024-07-03",
            "--out",
            "t.csv",
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(d.join("t.csv")).unwrap(),
        "time,flow_rate,pressure,flow_rate_predict,pressure_predict\n\
         2024-07-02 10:00,100,3,105,\n2024-07-02 10:30,110,3,105,\n2024-07-02 11:00,120,3,105,\n"
    );
    let hourly = stdout(&ok(run(d, &["export", "--hourly"])));
    assert_eq!(
        hourly,
        "time,flow_rate,pressure,flow_rate_predict,pressure_predict\n2024-07-02 10:00,105,3,105,\n2024-07-02 11:00,120,3,105,\n"
    );
    let e = fails(run(d, &["export", "--from", "July"]));
    assert!(e.contains("--from \"July\""), "{e}");
    let e = fails(run(d, &["export", "--series", "level"]));
    assert!(e.contains("no series named \"level\""), "{e}");
}

/// Runs hydrowatch in `dir` with `args` and kills it (SIGKILL) after `delay_ms`; returns
/// whether it was still running then.
fn kill_9_after(dir: &Path, args: &[&str], delay_ms: u64) -> bool {
    let mut child = bin()
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    still_running
}

#[test]
fn kill_9_during_import_leaves_none_or_all_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            "120",
            "--seed",
            "9",
            "--out",
            "big.csv",
            "--no-events",
        ],
    ));
    let full = 2 * 120 * 1440;
    let mut killed_mid_import = 0;
    for (i, delay_ms) in [150u64, 400, 800, 1200].into_iter().enumerate() {
        let db = format!("k{i}.db");
        killed_mid_import += usize::from(kill_9_after(
            d,
            &["import", "--db", &db, "big.csv"],
            delay_ms,
        ));
        let s = Store::open(&d.join(&db), chrono_tz::Asia::Seoul)
            .expect("the database opens after kill -9");
        let n: u64 = s
            .series()
            .unwrap()
            .iter()
            .map(|x| s.count(x.id).unwrap())
            .sum();
        let rows: usize = s
            .series()
            .unwrap()
            .iter()
            .map(|x| s.readings(x.id, i64::MIN, i64::MAX).unwrap().len())
            .sum();
        assert!(
            n == 0 || n == full,
            "kill after {delay_ms} ms left {n} readings"
        );
        assert_eq!(rows as u64, n, "roll-up and readings agree");
    }
    assert!(
        killed_mid_import >= 1,
        "no kill landed during an import: make the file bigger"
    );
}

#[test]
fn bench_storage_runs_both_contenders() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&ok(run(
        dir.path(),
        &[
            "bench", "storage", "--days", "2", "--reps", "2", "--dir", "b",
        ],
    )));
    assert!(
        out.contains("| operation | CSV time | SQLite time"),
        "{out}"
    );
    assert_eq!(
        out.matches("\n| ").count(),
        2 + 6,
        "header, rule and six operations: {out}"
    );
    assert!(
        !out.contains("MISMATCH"),
        "both contenders read the same values: {out}"
    );
    assert!(
        out.contains("| hourly roll-up of one series |") && out.contains("| 48 |"),
        "{out}"
    );
}

/// Without a configuration, `import` says which series it creates, and refuses a header close
/// to a stored series' name as a likely misspelling unless `--new-series` (issue #30, finding
/// 14: `flow_rat` made a series of its own, silently).
#[test]
fn import_says_what_it_creates_and_refuses_a_misspelt_series() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "a.csv",
        "time,flow_rate,pressure\n2024-07-09 0:01,227,3.1\n",
    );
    let out = ok(run(d, &["import", "a.csv"]));
    let said = stderr(&out);
    assert!(
        said.contains("new series \"flow_rate\" created")
            && said.contains("new series \"pressure\" created"),
        "{said}"
    );
    write(d, "b.csv", "time,flow_rat\n2024-07-09 0:02,228\n");
    let e = fails(run(d, &["import", "b.csv"]));
    assert!(
        e.contains("\"flow_rat\" is not in the database, which has \"flow_rate\"")
            && e.contains("--new-series"),
        "{e}"
    );
    write(d, "c.csv", "time,Pressure\n2024-07-09 0:02,3.2\n");
    assert!(fails(run(d, &["import", "c.csv"])).contains("which has \"pressure\""));
    let out = ok(run(d, &["import", "--new-series", "b.csv"]));
    assert!(stderr(&out).contains("new series \"flow_rat\" created"));
    // A series already stored is not new: no word of it.
    let out = ok(run(d, &["import", "a.csv"]));
    assert!(!stderr(&out).contains("new series"), "{}", stderr(&out));
}

/// `hydrowatch demo` serving its dashboard stops on SIGTERM as on Ctrl-C, so that `timeout`, a
/// service manager or `kill` can end it (issue #30).
#[test]
fn the_demo_serving_its_dashboard_stops_on_sigterm() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin()
        .current_dir(dir.path())
        .args([
            "demo",
            "--devices",
            "1",
            "--history-days",
            "8",
            "--days",
            "4",
            "--replay-seconds",
            "5",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let serving = line.starts_with("Serving until");
        seen.push(line);
        if serving {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.starts_with("Serving until")),
        "{seen:?}"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("still serving 30 s after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn demo_runs_from_an_empty_directory_without_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&ok(run(
        dir.path(),
        &[
            "demo",
            "--exit",
            "--devices",
            "2",
            "--history-days",
            "14",
            "--days",
            "6",
            "--replay-seconds",
            "8",
            "--listen",
            "127.0.0.1:0",
        ],
    )));
    assert!(out.contains("dashboard: http://127.0.0.1:"), "{out}");
    for device in ["dma-north", "dma-harbour"] {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("| {device} |")))
            .unwrap_or_else(|| panic!("no summary row for {device}: {out}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // 20 days of two series, a reading a minute (a day of 23 or 25 hours at most once).
        let readings: u64 = cells[2].parse().unwrap();
        assert!(
            (20 * 1440 * 2 - 120..=20 * 1440 * 2 + 120).contains(&readings),
            "{row}"
        );
        // Every alarm the device raised reached the server; forecasts were delivered.
        let (delivered, known) = cells[4].split_once(" of ").unwrap();
        assert_eq!(delivered, known, "{row}");
        assert!(cells[5].parse::<u32>().unwrap() >= 2, "{row}");
        // The burst is alarmed on the flow within the hour.
        let burst = out
            .lines()
            .find(|l| l.contains(device) && l.contains("burst  from"))
            .unwrap();
        assert!(burst.contains("min after it began"), "{burst}");
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing is left in the working directory"
    );
}

/// An hourly `time,value` file of `weeks` weeks of a daily/weekly pattern in `tz`, starting at
/// local midnight of `start`, with `missing` rows left empty.
fn hourly_file(
    dir: &Path,
    name: &str,
    tz: chrono_tz::Tz,
    start: &str,
    weeks: usize,
    missing: &[usize],
) -> PathBuf {
    let t0 = hydrowatch_core::LocalTimeParser::new(tz)
        .parse(&format!("{start} 00:00"))
        .unwrap();
    let mut text = String::from("time,value\n");
    for i in 0..weeks * 168 {
        let hour = (i % 24) as f64;
        let day = ((i / 24) % 7) as f64;
        let v = 40.0 + (10.0 + day) * (hour / 24.0 * std::f64::consts::TAU).sin();
        let t = hydrowatch_core::time::format_local(t0 + i as i64 * 3600, tz);
        if missing.contains(&i) {
            text.push_str(&format!("{t},\n"));
        } else {
            text.push_str(&format!("{t},{v:.3}\n"));
        }
    }
    write(dir, name, &text)
}

#[test]
fn train_then_forecast_with_the_saved_model_across_daylight_saving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rome = chrono_tz::Europe::Rome;
    // Seven weeks ending on Friday 2021-10-29 23:00: the forecast crosses the autumn change.
    hourly_file(d, "h.csv", rome, "2021-09-11", 7, &[268, 269, 668]);
    let out = stdout(&ok(run(
        d,
        &[
            "train",
            "--input",
            "h.csv",
            "--timezone",
            "Europe/Rome",
            "--model",
            "lstm",
            "--model-dir",
            "m",
            "-w",
            "24",
            "-e",
            "2",
            "-b",
            "32",
        ],
    )));
    assert!(
        out.contains("trained lstm/mimo") && out.contains("validation: PI1"),
        "{out}"
    );
    for f in ["model.json", "net0.bpk", "loss_history.csv"] {
        assert!(d.join("m").join(f).is_file(), "{f}");
    }
    for png in ["learning_curve.png", "test_forecast.png"] {
        let bytes = std::fs::read(d.join("m").join(png)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{png}: a real picture"
        );
    }
    let losses = std::fs::read_to_string(d.join("m/loss_history.csv")).unwrap();
    assert!(
        losses.starts_with("net,epoch,train_loss,val_loss,learning_rate\n1,1,"),
        "{losses}"
    );

    let out = stdout(&ok(run(
        d,
        &[
            "forecast",
            "--input",
            "h.csv",
            "--timezone",
            "Europe/Rome",
            "--model-dir",
            "m",
            "--output",
            "f.csv",
        ],
    )));
    assert!(out.contains("trained model lstm/mimo"), "{out}");
    let f = std::fs::read_to_string(d.join("f.csv")).unwrap();
    let lines: Vec<&str> = f.lines().collect();
    assert_eq!(lines[0], "time,value,lower,upper");
    assert_eq!(lines.len(), 1 + 168);
    assert!(lines[1].starts_with("2021-10-30 00:00,"), "{}", lines[1]);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("2021-10-31 02:00,"))
            .count(),
        2,
        "the repeated hour twice"
    );
    assert!(
        lines[168].starts_with("2021-11-05 22:00,"),
        "168 hours later: {}",
        lines[168]
    );
    for l in &lines[1..] {
        let v: Vec<f64> = l.split(',').skip(1).map(|x| x.parse().unwrap()).collect();
        assert!(v[1] <= v[2] && v.iter().all(|x| x.is_finite()), "{l}");
    }
    // JSON too.
    ok(run(
        d,
        &[
            "forecast",
            "--input",
            "h.csv",
            "--timezone",
            "Europe/Rome",
            "--model-dir",
            "m",
            "--output",
            "f.json",
        ],
    ));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("f.json")).unwrap()).unwrap();
    assert_eq!(json["points"].as_array().unwrap().len(), 168);
}

#[test]
fn forecast_without_a_model_uses_a_baseline_when_history_is_short_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hourly_file(d, "short.csv", chrono_tz::Asia::Seoul, "2024-03-04", 2, &[]);
    let out = stdout(&ok(run(
        d,
        &["forecast", "--input", "short.csv", "--output", "f.csv"],
    )));
    assert!(
        out.contains("baseline") && out.contains("too little history"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("f.csv"))
            .unwrap()
            .lines()
            .count(),
        169
    );
    // Less than a week: nothing can forecast it.
    hourly_file(d, "tiny.csv", chrono_tz::Asia::Seoul, "2024-03-04", 0, &[]);
    write(
        d,
        "tiny.csv",
        "time,value\n2024-03-04 00:00,1\n2024-03-04 01:00,2\n",
    );
    let e = fails(run(
        d,
        &["forecast", "--input", "tiny.csv", "--output", "f.csv"],
    ));
    assert!(e.contains("too little history"), "{e}");
}

#[test]
fn forecast_inputs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "bad.csv",
        "time,value\n2024-03-04 00:00,1\n2024-03-04 01:00,x\n",
    );
    let e = fails(run(
        d,
        &["forecast", "--input", "bad.csv", "--output", "f.csv"],
    ));
    assert!(e.contains("bad.csv, line 3, column 2"), "{e}");
    hourly_file(d, "h.csv", chrono_tz::Asia::Seoul, "2024-03-04", 2, &[]);
    let e = fails(run(
        d,
        &[
            "forecast",
            "--input",
            "h.csv",
            "--model-dir",
            "nowhere",
            "--output",
            "f.csv",
        ],
    ));
    assert!(e.contains("nowhere") && e.contains("model.json"), "{e}");
    let e = fails(run(
        d,
        &["train", "--input", "h.csv", "--model-dir", "m", "-p", "24"],
    ));
    assert!(e.contains("-p 24") && e.contains("168"), "{e}");
}

#[test]
fn minute_data_is_averaged_to_hours_and_an_incomplete_last_hour_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            "15",
            "--out",
            "sim.csv",
            "--no-events",
        ],
    ));
    // Cut the last 30 minutes: the last hour is incomplete.
    let text = std::fs::read_to_string(d.join("sim.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let kept: Vec<String> = lines[..lines.len() - 30]
        .iter()
        .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
        .collect();
    write(
        d,
        "flow.csv",
        &(kept.join("\n").replace("time,flow_rate", "time,value") + "\n"),
    );
    ok(run(
        d,
        &["forecast", "--input", "flow.csv", "--output", "f.csv"],
    ));
    let f = std::fs::read_to_string(d.join("f.csv")).unwrap();
    assert!(
        f.lines().nth(1).unwrap().starts_with("2024-01-15 23:00,"),
        "{}",
        f.lines().nth(1).unwrap()
    );
}

#[test]
fn forecast_of_the_database_trains_once_saves_models_and_stores_every_series() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            "49",
            "--out",
            "sim.csv",
            "--no-events",
        ],
    ));
    ok(run(d, &["import", "sim.csv"]));
    let first = stdout(&ok(run(d, &["forecast"])));
    assert!(
        first.contains(
            "flow_rate: 168 hours from 2024-02-19 00:00 stored (default model combination trained now"
        ),
        "{first}"
    );
    assert!(first.contains("pressure: 168 hours"), "{first}");
    assert!(
        d.join("models/flow_rate/combination.json").is_file()
            && d.join("models/pressure/combination.json").is_file()
    );
    // The same hour again: stored before, not stored twice.
    let second = stdout(&ok(run(d, &["forecast"])));
    assert!(
        second.contains("flow_rate: the forecast from 2024-02-19 00:00 was stored before"),
        "{second}"
    );
    let s = store(d);
    let issued = hydrowatch_core::LocalTimeParser::new(chrono_tz::Asia::Seoul)
        .parse("2024-02-19 00:00")
        .unwrap();
    for name in ["flow_rate", "pressure"] {
        let fc = s.forecast(s.series_id(name).unwrap(), issued).unwrap();
        assert_eq!(fc.len(), 168, "{name}");
        assert_eq!(fc[0].target, issued);
        assert!(fc.iter().all(|p| p.value.is_finite() && p.lower <= p.upper));
    }
    // Training from the database names its series.
    let e = fails(run(d, &["train", "--model-dir", "m"]));
    assert!(
        e.contains("--series NAME") && e.contains("flow_rate, pressure"),
        "{e}"
    );
    let out = stdout(&ok(run(
        d,
        &[
            "train",
            "--series",
            "pressure",
            "--model-dir",
            "m",
            "-e",
            "1",
        ],
    )));
    assert!(out.contains("pressure in hydrowatch.db"), "{out}");
}

#[test]
fn a_combination_is_trained_saved_and_used_across_daylight_saving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rome = chrono_tz::Europe::Rome;
    // Twelve weeks ending on Friday 2021-10-29 23:00: enough for the combination's network
    // (trained before the last 5 weeks); the forecast crosses the autumn change.
    hourly_file(d, "h.csv", rome, "2021-08-07", 12, &[268, 269, 1668]);
    let out = stdout(&ok(run(
        d,
        &[
            "train",
            "--input",
            "h.csv",
            "--timezone",
            "Europe/Rome",
            "--model-dir",
            "m",
            "-w",
            "24",
            "-e",
            "2",
        ],
    )));
    assert!(
        out.contains("combination of seasonal-blend, mstl-ets, lstm/mimo")
            && out.contains("trained lstm/mimo"),
        "{out}"
    );
    for f in [
        "combination.json",
        "test_forecast.png",
        "network/model.json",
        "network/net0.bpk",
        "network/loss_history.csv",
        "network/learning_curve.png",
    ] {
        assert!(d.join("m").join(f).is_file(), "{f}");
    }
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("m/combination.json")).unwrap())
            .unwrap();
    for day in saved["weights"].as_array().unwrap() {
        let sum: f64 = day
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-9, "{day}");
    }
    let out = stdout(&ok(run(
        d,
        &[
            "forecast",
            "--input",
            "h.csv",
            "--timezone",
            "Europe/Rome",
            "--model-dir",
            "m",
            "--output",
            "f.csv",
        ],
    )));
    assert!(out.contains("trained model combination"), "{out}");
    let f = std::fs::read_to_string(d.join("f.csv")).unwrap();
    assert_eq!(f.lines().count(), 1 + 168);
    assert_eq!(
        f.lines()
            .filter(|l| l.starts_with("2021-10-31 02:00,"))
            .count(),
        2,
        "the repeated hour twice"
    );
}

#[test]
fn the_forecast_of_the_database_is_queued_for_the_server_like_the_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "device.toml",
        "[device]\nid = \"dma-7\"\n\n[server]\nurl = \"https://central.example\"\ntoken = \"t\"\n",
    );
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            "21",
            "--out",
            "sim.csv",
            "--no-events",
        ],
    ));
    ok(run(d, &["--config", "device.toml", "import", "sim.csv"]));
    let out = stdout(&ok(run(d, &["--config", "device.toml", "forecast"])));
    assert!(
        out.contains("stored and queued for the central server"),
        "{out}"
    );
    let queued = store(d).outbox_batch(100).unwrap();
    assert_eq!(queued.len(), 2, "one forecast message per series");
    for row in &queued {
        let envelope: serde_json::Value = serde_json::from_str(&row.message.body).unwrap();
        assert_eq!(envelope["kind"], "forecast");
        assert_eq!(envelope["device_id"], "dma-7");
        assert_eq!(envelope["body"]["points"].as_array().unwrap().len(), 168);
        assert!(!envelope["body"]["actuals"].as_array().unwrap().is_empty());
    }
    // Run again for the same hour: nothing new is queued.
    ok(run(d, &["--config", "device.toml", "forecast"]));
    assert_eq!(store(d).outbox_batch(100).unwrap().len(), 2);
}

#[test]
fn weekly_backtest_scores_external_forecasts_beside_its_own_per_season() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hourly_file(
        d,
        "a.csv",
        chrono_tz::Europe::Rome,
        "2021-09-06",
        10,
        &[300],
    );
    let args = [
        "backtest",
        "a.csv",
        "--timezone",
        "Europe/Rome",
        "--origins",
        "weekly",
        "--weeks",
        "3",
        "--model",
        "none",
    ];
    let mut write = args.to_vec();
    write.extend(["--write-forecasts", "out"]);
    let first = stdout(&ok(run(d, &write)));
    // The file's last hour is 2021-11-14 22:00 (ten weeks of real hours from a local midnight,
    // one of them given back in October): the Monday of 2021-11-08 has no full week after it.
    assert!(
        first.contains("a: 2 origins, every local Monday"),
        "{first}"
    );
    let written = std::fs::read_to_string(d.join("out/seasonal-naive/a.csv")).unwrap();
    assert_eq!(written.lines().count(), 1 + 2 * 168);
    assert!(written.starts_with("origin,time,value,lower,upper\n2021-10-25T00:00:00+02:00,"));
    // The written forecasts, read back as another program's, score the same.
    let mut again = args.to_vec();
    again.extend(["--external", "echo=out/seasonal-naive"]);
    let second = stdout(&ok(run(d, &again)));
    let row = |name: &str| {
        second
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name}: {second}"))
            .split_whitespace()
            .skip(1)
            .take(3)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("seasonal-naive"), row("echo"));
    // A folder missing an origin is refused, naming the file and the origin.
    std::fs::write(d.join("out/seasonal-naive/a.csv"), "origin,time,value\n").unwrap();
    let e = fails(run(d, &again));
    assert!(
        e.contains("a.csv: no forecast from the origin 2021-10-25 00:00"),
        "{e}"
    );
}

#[test]
fn detect_writes_one_verdict_per_reading_alerts_as_json_lines_and_scores_labels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &[
            "simulate", "--days", "35", "--seed", "3", "--out", "m.csv", "--labels", "e.csv",
        ],
    ));
    let out = stdout(&ok(run(
        d,
        &[
            "detect",
            "--input",
            "m.csv",
            "--output",
            "judged.csv",
            "--alarms",
            "alarms.jsonl",
            "--labels",
            "e.csv",
            "--baseline-until",
            "2024-01-08",
        ],
    )));
    let data = std::fs::read_to_string(d.join("m.csv")).unwrap();
    let readings: usize = data
        .lines()
        .skip(1)
        .map(|l| l.split(',').skip(1).filter(|c| !c.is_empty()).count())
        .sum();
    let judged = std::fs::read_to_string(d.join("judged.csv")).unwrap();
    let mut lines = judged.lines();
    assert_eq!(
        lines.next(),
        Some("time,series,value,stage,direction,percentile,kind")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), readings, "one row per reading and series");
    assert!(
        rows.iter()
            .all(|r| r.len() == 7 && r[3].parse::<u8>().unwrap() <= 4)
    );
    // After the baseline every reading has a percentile; the series are named by the header.
    let late: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] >= "2024-01-08").collect();
    assert!(late.iter().all(|r| !r[5].is_empty()));
    assert!(rows.iter().any(|r| r[1] == "pressure"));

    let alarms = std::fs::read_to_string(d.join("alarms.jsonl")).unwrap();
    let messages: Vec<serde_json::Value> = alarms
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!messages.is_empty(), "the simulated events raise alarms");
    for m in &messages {
        for field in [
            "machine_number",
            "time",
            "outlier_stage",
            "value",
            "series",
            "unit",
            "kind",
            "direction",
            "expected",
            "percentile",
            "alarm_id",
            "state",
        ] {
            assert!(m.get(field).is_some(), "{field} missing in {m}");
        }
    }
    // Every alarm that opens is eventually the same id in its later transitions.
    let opened = messages.iter().filter(|m| m["state"] == "opened").count();
    assert!(out.contains(&format!("alarms opened: {opened}")), "{out}");
    assert!(
        out.contains("| burst |") && out.contains("false alarms"),
        "{out}"
    );

    let e = fails(run(
        d,
        &[
            "detect", "--input", "m.csv", "--output", "o.csv", "--labels", "m.csv",
        ],
    ));
    assert!(
        e.contains("m.csv:1") && e.contains("start,end,kind,series"),
        "{e}"
    );
}

#[test]
fn detect_verdicts_keep_the_input_times_to_the_second() {
    // An hour of 1-second readings: every verdict carries its reading's own time, as written,
    // so that each joins back to it (issue #14's command-line contract).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let start = chrono::NaiveDate::from_ymd_opt(2020, 3, 9)
        .unwrap()
        .and_hms_opt(10, 14, 33)
        .unwrap();
    let mut text = String::from("time,flow_rate,pressure\n");
    let mut times = Vec::new();
    for i in 0..3600 {
        let t = (start + chrono::Duration::seconds(i))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let flow = 50.0 + (i % 7) as f64 * 0.1;
        text.push_str(&format!("{t},{flow:.2},4.{:02}\n", i % 13));
        times.push(t);
    }
    write(d, "seconds.csv", &text);
    ok(run(
        d,
        &[
            "detect",
            "--input",
            "seconds.csv",
            "--output",
            "judged.csv",
            "--timezone",
            "Europe/Rome",
        ],
    ));
    let judged = std::fs::read_to_string(d.join("judged.csv")).unwrap();
    let flow: Vec<&str> = judged
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("flow_rate"))
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(flow, times, "one verdict per reading, at its own time");
    assert_eq!(flow[0], "2020-03-09 10:14:33");
}

#[test]
fn detect_on_the_database_continues_across_runs_like_one_file_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &["simulate", "--days", "40", "--seed", "4", "--out", "m.csv"],
    ));
    ok(run(d, &["import", "m.csv"]));
    ok(run(
        d,
        &[
            "detect",
            "--input",
            "m.csv",
            "--output",
            "o.csv",
            "--alarms",
            "file.jsonl",
        ],
    ));
    // The same readings from the database, in two runs: the second continues the first.
    ok(run(
        d,
        &[
            "detect",
            "--since",
            "2024-01-01",
            "--until",
            "2024-01-25",
            "--alarms",
            "a.jsonl",
        ],
    ));
    ok(run(d, &["detect", "--alarms", "b.jsonl"]));
    let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap();
    let file = read("file.jsonl");
    let both = read("a.jsonl") + &read("b.jsonl");
    assert!(!file.is_empty());
    assert_eq!(
        both, file,
        "two database runs = one file run, transition for transition"
    );
    // The alarms table holds every alarm opened, and the open ones agree with the messages.
    let store = store(d);
    let opened = file.lines().filter(|l| l.contains("\"opened\"")).count();
    assert_eq!(store.alarms(false).unwrap().len(), opened);
    // Criteria fits and nights are on record too.
    let flow = store.series_id("flow_rate").unwrap();
    assert!(store.latest_criteria(flow).unwrap().is_some());
    assert!(store.nights(flow).unwrap().len() >= 35);
    // No central server configured: nothing waits in the outbox.
    assert_eq!(store.outbox_stats().unwrap().rows, 0);
    drop(store);
    // Nothing left to judge.
    let again = stdout(&ok(run(d, &["detect"])));
    assert!(again.contains("alarms opened: 0"), "{again}");
    let e = fails(run(d, &["detect", "--labels", "x.csv"]));
    assert!(e.contains("--input"), "{e}");
}

#[test]
fn backtest_select_records_each_series_winner_and_forecast_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &[
            "simulate",
            "--days",
            "56",
            "--out",
            "sim.csv",
            "--no-events",
        ],
    ));
    ok(run(d, &["import", "sim.csv"]));
    let out = stdout(&ok(run(
        d,
        &["backtest", "--select", "--weeks", "1", "-e", "1"],
    )));
    let mut chosen = Vec::new();
    for series in ["flow_rate", "pressure"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{series}: ")) && l.contains("recorded"))
            .unwrap_or_else(|| panic!("no winner for {series}: {out}"));
        let name = line.split_whitespace().nth(1).unwrap().to_string();
        let store = store(d);
        let id = store.series_id(series).unwrap();
        assert_eq!(store.default_model(id).unwrap().unwrap().name, name);
        chosen.push(name);
    }
    let forecast = stdout(&ok(run(d, &["forecast"])));
    for (series, name) in ["flow_rate", "pressure"].iter().zip(&chosen) {
        let line = forecast
            .lines()
            .find(|l| l.starts_with(&format!("{series}: ")))
            .unwrap();
        assert!(
            line.contains(&format!("baseline {name}, the default chosen"))
                || line.contains(&format!("chosen model {name} trained now")),
            "{line}"
        );
    }
}

#[test]
fn with_a_server_configured_every_alarm_transition_waits_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "device.toml",
        "[device]\nid = \"dma-9\"\nmachine_number = 9\n\n[server]\nurl = \"https://central.example\"\ntoken = \"t\"\n",
    );
    ok(run(
        d,
        &["simulate", "--days", "30", "--seed", "4", "--out", "m.csv"],
    ));
    ok(run(d, &["--config", "device.toml", "import", "m.csv"]));
    ok(run(
        d,
        &[
            "--config",
            "device.toml",
            "detect",
            "--since",
            "2024-01-01",
            "--alarms",
            "a.jsonl",
        ],
    ));
    let alerts = std::fs::read_to_string(d.join("a.jsonl")).unwrap();
    let store = store(d);
    let queued = store.outbox_batch(100_000).unwrap();
    assert_eq!(queued.len(), alerts.lines().count());
    assert!(!queued.is_empty());
    let mut ids = std::collections::HashSet::new();
    for (row, line) in queued.iter().zip(alerts.lines()) {
        let envelope: serde_json::Value = serde_json::from_str(&row.message.body).unwrap();
        assert_eq!(envelope["device_id"], "dma-9");
        assert_eq!(envelope["kind"], "alert");
        assert_eq!(envelope["message_id"], row.message.message_id.as_str());
        assert_eq!(row.message.message_id.len(), 36, "a UUID");
        assert!(ids.insert(row.message.message_id.clone()), "ids are unique");
        // The body is the alert message, in order.
        let alert: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(envelope["body"], alert);
        assert_eq!(envelope["body"]["machine_number"], 9);
    }
}

#[test]
fn status_reports_series_alarms_outbox_and_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = fails(run(d, &["status"]));
    assert!(e.contains("no such database"), "{e}");
    ok(run(
        d,
        &["simulate", "--days", "10", "--seed", "4", "--out", "m.csv"],
    ));
    ok(run(d, &["import", "m.csv"]));
    ok(run(d, &["detect", "--since", "2024-01-01"]));
    let out = stdout(&ok(run(d, &["status"])));
    let open = store(d).alarms(true).unwrap().len();
    assert!(out.contains("flow_rate (m3/h): 14"), "{out}");
    assert!(out.contains(&format!("open alarms: {open}")), "{out}");
    assert!(out.contains("outbox: 0 messages"), "{out}");
    assert!(
        out.contains("default forecaster: combination (none chosen"),
        "{out}"
    );
    // Nothing but names and units configured: the checks' limits were learned.
    assert!(
        out.contains("checks: range 0 (learned) to ") && out.contains("per 60 s (learned"),
        "{out}"
    );
}

#[test]
fn upload_delivers_the_outbox_to_the_server_and_keeps_it_when_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |url: &str| {
        format!("[device]\nid = \"dma-9\"\n\n[server]\nurl = \"{url}\"\ntoken = \"t\"\n")
    };
    let e = fails(run(d, &["upload"]));
    assert!(e.contains("no central server is configured"), "{e}");

    // A port nothing listens on: the server is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write(d, "down.toml", &config(&format!("http://127.0.0.1:{port}")));
    ok(run(
        d,
        &["simulate", "--days", "30", "--seed", "4", "--out", "m.csv"],
    ));
    ok(run(d, &["--config", "down.toml", "import", "m.csv"]));
    ok(run(
        d,
        &["--config", "down.toml", "detect", "--since", "2024-01-01"],
    ));
    let waiting = store(d).outbox_stats().unwrap().rows;
    assert!(waiting > 0);
    let e = fails(run(d, &["--config", "down.toml", "upload"]));
    assert!(
        e.contains("unreachable") && e.contains(&format!("{waiting} messages wait")),
        "{e}"
    );

    // A server that acknowledges everything: the outbox empties, each message sent once.
    let server = daemon::IngestServer::start();
    let url = server.url.clone();
    write(d, "up.toml", &config(&url));
    let out = stdout(&ok(run(d, &["--config", "up.toml", "upload"])));
    assert!(
        out.contains(&format!("{waiting} messages (")) && out.contains("delivered"),
        "{out}"
    );
    let (stored, repeats) = (server.messages().len(), server.repeats());
    assert_eq!(
        ((stored + repeats) as u64, stored as u64),
        (waiting, waiting)
    );
    assert_eq!(store(d).outbox_stats().unwrap().rows, 0);
}

#[test]
fn kill_9_during_detection_on_the_database_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "s.toml",
        "[device]\nid = \"dma-1\"\n\n[server]\nurl = \"https://central.example\"\ntoken = \"t\"\n",
    );
    ok(run(
        d,
        &["simulate", "--days", "45", "--seed", "5", "--out", "m.csv"],
    ));
    ok(run(d, &["--config", "s.toml", "import", "m.csv"]));
    std::fs::copy(d.join("hydrowatch.db"), d.join("reference.db")).unwrap();
    // The reference: one uninterrupted run.
    ok(run(
        d,
        &[
            "--config",
            "s.toml",
            "--db",
            "reference.db",
            "detect",
            "--since",
            "2024-01-01",
        ],
    ));
    let table = |db: &str| {
        let s = Store::open(&d.join(db), chrono_tz::Asia::Seoul).unwrap();
        let alarms: Vec<(i64, String, String, String, u8, Option<i64>)> = s
            .alarms(false)
            .unwrap()
            .into_iter()
            .map(|a| (a.id, a.series, a.kind, a.state, a.stage, a.cleared_at))
            .collect();
        (alarms, s.outbox_stats().unwrap().rows)
    };
    let expected = table("reference.db");
    assert!(!expected.0.is_empty());
    // Killed at several moments, then run to the end: the same alarms, the same outbox.
    let mut killed_mid_run = 0;
    for delay_ms in [20u64, 150, 400] {
        let args = ["--config", "s.toml", "detect", "--since", "2024-01-01"];
        killed_mid_run += usize::from(kill_9_after(d, &args, delay_ms));
    }
    assert!(killed_mid_run >= 1, "no kill landed during a run");
    // The interrupted command, run again to its end, and once more (it then judges nothing).
    for _ in 0..2 {
        ok(run(
            d,
            &["--config", "s.toml", "detect", "--since", "2024-01-01"],
        ));
        assert_eq!(table("hydrowatch.db"), expected);
    }
}

/// An error names its cause once: the libraries' errors quote their source in their own message,
/// and the binary does not repeat it from the error's chain.
#[test]
fn an_error_says_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &["backtest", "missing.csv"][..],
        &["--config", "missing.toml", "status"][..],
        &["train", "--input", "missing.csv", "--model-dir", "m"][..],
    ] {
        let e = fails(run(d, args));
        assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    }
}

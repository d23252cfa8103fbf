//! One fuzz target per parser of hostile input: time forms, CSV readings, line-source lines, the
//! configuration, the ingest body. `HYDROWATCH_FUZZ_SECONDS=600 cargo test --release -p
//! hydrowatch-fuzz -- --nocapture --test-threads 2` runs each for 10 minutes (docs/ROBUSTNESS.md);
//! CI runs each for 3 seconds.

use hydrowatch_core::LocalTimeParser;
use hydrowatch_core::time::{AFTER_LATEST, DAY, EARLIEST};
use hydrowatch_fuzz::{fuzz, inputs};
use proptest::prop_assert;

/// Errors echo at most a short prefix of a value: never longer than this.
const MAX_ERROR: usize = 600;

#[test]
fn time_forms() {
    const SEEDS: &[&str] = &[
        "2024-07-09 0:01",
        "2024-07-09 00:01:30",
        "2024-07-09T00:01",
        "2024-07-09T00:01:00.250+09:00",
        "2024-07-09 00:01+0900",
        "2024-07-08T15:01:00Z",
        "2024-10-27 02:30",
        "2024-03-31 02:30",
        "1970-01-01T00:00:00Z",
        "2199-12-31 23:59:59",
    ];
    fuzz("time forms", inputs(SEEDS), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        let mut p = LocalTimeParser::new(chrono_tz::Europe::Rome);
        match p.parse_after(&text, Some(1_729_989_000)) {
            Ok(ts) => prop_assert!(
                (EARLIEST - 2 * DAY..AFTER_LATEST + 2 * DAY).contains(&ts),
                "{text:?} -> {ts}"
            ),
            Err(e) => prop_assert!(e.to_string().len() < MAX_ERROR),
        }
        Ok(())
    });
}

#[test]
fn csv_readings() {
    const SEEDS: &[&str] = &[
        "time,value\n2024-07-09 0:01,227\n2024-07-09 0:02,\n2024-07-09 0:03,NaN\n",
        "time,flow_rate,pressure\r\n2024-07-09T00:01,1.5,3\r\n2024-07-09T00:02,1.6,3.1\r\n",
        "\u{feff}\"time\",\"flow_rate\"\n\"2024-07-09 00:01\",\"7\"\n\n2024-07-09 00:02,8\n",
        "timestamp,flow\n2024-10-27 02:30,1\n2024-10-27 02:30,2\n2024-10-27 03:00,3\n",
        "datetime,a,b,c\n2024-07-09 00:01+09:00,1,2,3\n2024-07-09 00:02Z,,,\n",
    ];
    fuzz("csv readings", inputs(SEEDS), |bytes| {
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        let options = hydrowatch_csv::ReadOptions {
            timezone: chrono_tz::Asia::Seoul,
            series: Some("flow".into()),
            clock: Some((1_796_040_000, 60)),
        };
        let mut file = match hydrowatch_csv::ReadingsCsv::from_reader(&bytes[..], "f.csv", &options)
        {
            Ok(f) => f,
            Err(e) => {
                prop_assert!(e.to_string().len() < MAX_ERROR, "{e}");
                return Ok(());
            }
        };
        let mut rows = 0;
        while let Some(row) = file.next_row() {
            rows += 1;
            prop_assert!(rows <= lines, "{rows} rows from {lines} lines");
            match row {
                Ok(r) => prop_assert!(r.values.iter().flatten().all(|v| v.is_finite())),
                Err(e) => {
                    prop_assert!(e.to_string().len() < MAX_ERROR, "{e}");
                    if !e.is_row_error() {
                        break;
                    }
                }
            }
        }
        Ok(())
    });
}

#[test]
fn line_source_lines() {
    use hydrowatch_edge::sources::{LineFormat, parse_line};
    const SEEDS: &[&str] = &[
        "2024-07-01 12:00,flow_rate,118.5\r\n",
        "2024-07-01T12:00:00+09:00,pressure,3.2",
        "2024-10-27 02:30,flow_rate,1",
        "101.5;xx;3.2",
        "2024-07-01 12:00;101.5;;3.2",
    ];
    let narrow = LineFormat::narrow();
    let wide = LineFormat::wide(
        ";",
        &[
            "time".into(),
            "flow_rate".into(),
            "_".into(),
            "pressure".into(),
        ],
    );
    fuzz("line-source lines", inputs(SEEDS), |bytes| {
        let line = String::from_utf8_lossy(&bytes);
        for format in [&narrow, &wide] {
            let mut times = LocalTimeParser::new(chrono_tz::Europe::Rome);
            match parse_line(format, &line, &mut times, 1_796_040_000, &|_| {
                Some(1_729_989_000)
            }) {
                Ok(readings) => prop_assert!(readings.iter().all(|r| r.value.is_finite())),
                Err(e) => prop_assert!(e.len() < MAX_ERROR, "{}", e.len()),
            }
        }
        Ok(())
    });
}

#[test]
fn configuration() {
    let seeds = [
        hydrowatch_config::EXAMPLE,
        "[device]\nid = \"a\"\n[[series]]\nname = \"flow\"\nunit = \"m3/h\"\nmin = 0.0\n",
        "[device]\nid = \"a\"\n[[source]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:7010\"\n[[source]]\nkind = \"serial\"\nport = \"/dev/ttyUSB0\"\nfields = [\"time\", \"flow\"]\n",
        "[device]\nid = \"a\"\n[server]\nurl = \"https://x\"\ntoken = \"t\"\n[schedule]\nforecast_at = \"*:05\"\n",
    ];
    fuzz("configuration", inputs(&seeds), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        let _ = hydrowatch_config::Config::parse(&text, "f.toml");
        Ok(())
    });
}

#[test]
fn ingest_body() {
    use hydrowatch_protocol::{CheckedBody, check};
    fn alert() -> String {
        r#"{"device_id":"dma-1","message_id":"m1","kind":"alert","created_at":"2024-07-01T00:00:00Z","body":{"machine_number":1,"time":"2024-07-01T09:00:00+09:00","outlier_stage":4,"value":1.0,"series":"flow_rate","unit":"m3/h","direction":"high","expected":0.5,"percentile":99.99,"kind":"outlier","alarm_id":7,"state":"opened"}}"#.into()
    }
    fn forecast() -> String {
        let points: Vec<String> = (0..168)
            .map(|h| {
                format!(
                    r#"{{"time":"2024-07-0{}T{:02}:00:00Z","value":1.0,"lower":0.5,"upper":1.5}}"#,
                    2 + h / 24,
                    h % 24
                )
            })
            .collect();
        format!(
            r#"{{"device_id":"dma-1","message_id":"f1","kind":"forecast","created_at":"2024-07-01T15:00:00Z","body":{{"series":"flow_rate","unit":"m3/h","issued_at":"2024-07-01T15:00:00Z","model":"m","points":[{}],"actuals":[{{"time":"2024-07-01T14:00:00Z","value":2.0}}]}}}}"#,
            points.join(",")
        )
    }
    let heartbeat = r#"{"device_id":"dma-1","message_id":"h1","kind":"heartbeat","created_at":"2024-07-01T00:00:00Z","body":{"readings":5}}"#;
    let seeds = [alert(), forecast(), heartbeat.to_string()];
    let now = 1_796_040_000;
    fuzz("ingest body", inputs(&seeds), |bytes| {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Ok(());
        };
        match check(0, &value, "dma-1", now) {
            Ok(m) => {
                prop_assert!(m.created_at <= now + DAY);
                match m.body {
                    CheckedBody::Alert(a) => {
                        prop_assert!(a.alarm_id < hydrowatch_protocol::SERVER_ALARM_IDS)
                    }
                    CheckedBody::Forecast { body, .. } => prop_assert!(body.points.len() == 168),
                    CheckedBody::Heartbeat(_) => {}
                }
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(
                    e.len() < MAX_ERROR,
                    "{} bytes: {}",
                    e.len(),
                    &e[..e.floor_char_boundary(200)]
                )
            }
        }
        Ok(())
    });
}

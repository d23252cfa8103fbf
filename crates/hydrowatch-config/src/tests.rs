use super::*;

#[test]
fn the_example_is_valid_and_documents_every_section() {
    let c = Config::parse(EXAMPLE, "example").unwrap();
    assert_eq!(c.device.timezone, chrono_tz::Asia::Seoul);
    assert_eq!(c.series.len(), 2);
    assert!(c.server.is_some());
    for key in [
        "[device]",
        "[storage]",
        "[[series]]",
        "[schedule]",
        "[server]",
        "retrain_at",
    ] {
        assert!(EXAMPLE.contains(key), "{key}");
    }
}

#[test]
fn detection_settings_that_cannot_work_are_all_named() {
    let text = "[device]\nid = \"a\"\n[[series]]\nname = \"flow\"\nunit = \"L/s\"\nmin = 0.0\nmax = 10.0\nstages = [90.0, 95.0, 95.0, 99.0]\nstale_minutes = 0\n[detection]\nopen_stage = 5\nopen_percentile = 100.0\nnight_rise = -0.1\n";
    let e = Config::parse(text, "t.toml").unwrap_err().to_string();
    for needle in [
        "series[0] (\"flow\").stages",
        "stale_minutes = 0",
        "detection.open_stage = 5",
        "detection.open_percentile = 100",
        "detection.night_rise = -0.1",
    ] {
        assert!(e.contains(needle), "{needle}: {e}");
    }
}

#[test]
fn minimal_file_takes_defaults() {
    let c = Config::parse("[device]\nid = \"dma-1\"\n", "t.toml").unwrap();
    assert_eq!(c.storage.retention_days, 365);
    assert_eq!(c.schedule.forecast_at.to_string(), "00:30");
    assert_eq!(c.series[0].name, "flow_rate");
    assert!(c.server.is_none());
    assert!(c.source.is_empty());
    assert_eq!(c.daemon.heartbeat_minutes, 15);
}

#[test]
fn forecasts_daily_or_hourly() {
    let at = |t: &str| {
        Config::parse(
            &format!("[device]\nid = \"a\"\n[schedule]\nforecast_at = \"{t}\"\n"),
            "t.toml",
        )
        .map(|c| c.schedule.forecast_at)
        .map_err(|e| e.to_string())
    };
    assert_eq!(at("*:05").unwrap(), ForecastAt::Hourly(5));
    assert_eq!(at("06:15").unwrap().to_string(), "06:15");
    for bad in ["*:5", "*:60", "25:00", "0030"] {
        let e = at(bad).unwrap_err();
        assert!(e.contains("HH:MM") && e.contains("*:MM"), "{bad}: {e}");
    }
}

#[test]
fn sources_are_checked_each_with_its_key() {
    let text = "[device]\nid = \"a\"\n\
        [daemon]\nhealth_listen = \"nowhere\"\n\
        [[source]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:7010\"\n\
        [[source]]\nkind = \"serial\"\nport = \"/dev/ttyUSB0\"\ndelimiter = \"\"\nfields = [\"time\", \"flow\"]\n\
        [[source]]\nkind = \"modbus\"\nregisters = [{ series = \"pressure\", address = 3, scale = 0.0 }]\n\
        [[source]]\nkind = \"simulator\"\nspeed = -1.0\n";
    let e = Config::parse(text, "t.toml").unwrap_err().to_string();
    for needle in [
        "daemon.health_listen = \"nowhere\"",
        "source[1] (serial).delimiter is empty",
        "source[1] (serial).fields: \"flow\" is not a configured series",
        "source[2] (modbus): give either address",
        "source[2] (modbus).registers[0]: scale = 0",
        "source[3] (simulator).speed = -1",
    ] {
        assert!(e.contains(needle), "{needle}: {e}");
    }
    // What the hardening review found accepted (issue #15).
    let text = "[device]\nid = \"a\"\n\
        [[series]]\nname = \"flow\"\nunit = \"m3/h\"\n\
        [server]\nurl = \"https://x\"\ntoken = \"t\"\noutbox_rows = 0\n\
        [daemon]\nhealth_listen = \"127.0.0.1:7010\"\n\
        [[source]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:7010\"\n\
        [[source]]\nkind = \"tcp\"\nlisten = \"nowhere:port\"\n\
        [[source]]\nkind = \"serial\"\nport = \"/dev/ttyUSB0\"\nbaud = 0\nfields = [\"time\", \"flow\", \"flow\"]\n\
        [[source]]\nkind = \"modbus\"\nport = \"/dev/ttyUSB0\"\nregisters = [{ series = \"flow\", address = 3 }]\n\
        [[source]]\nkind = \"simulator\"\nspeed = 1e308\n";
    let e = Config::parse(text, "t.toml").unwrap_err().to_string();
    for needle in [
        "server.outbox_rows = 0",
        "source[0] (tcp).listen: 127.0.0.1:7010 is already used by daemon.health_listen",
        "source[1] (tcp).listen = \"nowhere:port\"",
        "source[2] (serial).baud = 0",
        "source[2] (serial).fields: \"flow\" is given twice",
        "source[3] (modbus).port: /dev/ttyUSB0 is already used by source[2] (serial).port",
        "source[4] (simulator).speed = 1e308",
    ] {
        assert!(e.contains(needle), "{needle}: {e}");
    }
    // A key of another kind is refused, naming it.
    let e = Config::parse(
        "[device]\nid = \"a\"\n[[source]]\nkind = \"tcp\"\nlisten = \"127.0.0.1:1\"\nbaud = 9600\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("baud"), "{e}");
    let e = Config::parse(
        "[device]\nid = \"a\"\n[[source]]\nkind = \"ftp\"\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("ftp") && e.contains("csv_replay"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let e = Config::parse("[device]\nid = \"a\"\ntimezon = \"UTC\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml") && e.contains("timezon") && e.contains("timezone"),
        "{e}"
    );
    let e = Config::parse("[device]\nid = \"a\"\n[storag]\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("storag"), "{e}");
}

#[test]
fn bad_values_name_key_and_allowed() {
    let e = Config::parse("[device]\nid = \"a\"\ntimezone = \"Asia/Seul\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Asia/Seul") && e.contains("IANA") && e.contains("line 3"),
        "{e}"
    );
    let e = Config::parse(
        "[device]\nid = \"a\"\n[schedule]\nforecast_at = \"24:00\"\n",
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("24:00") && e.contains("HH:MM"), "{e}");
    let e = Config::parse(
        "[device]\nid = \"a\"\n[schedule]\nretrain_at = \"someday 02:00\"\n",
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("sun 02:00"), "{e}");
    let text = r#"
[device]
id = "bad id"
[storage]
retention_days = 0
[[series]]
name = "flow"
unit = ""
min = 5
max = 1
[[series]]
name = "flow"
unit = "bar"
min = 0
max = 1
[server]
url = "ftp://x"
token = ""
"#;
    let e = Config::parse(text, "t").unwrap_err().to_string();
    for needle in [
        "device.id",
        "storage.retention_days = 0",
        "series[0] (\"flow\").unit",
        "min = 5 and max = 1",
        "series[1] (\"flow\").name: the name is used twice",
        "server.url",
        "server.token",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in {e}");
    }
}

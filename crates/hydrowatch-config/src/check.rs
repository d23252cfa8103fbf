//! The checks of values that parse but may not fit together: each problem names its key, and all
//! are reported at once.

use crate::{Config, daemon};
use hydrowatch_core::time::DAY;

impl Config {
    /// Every cross-field problem, each naming its key (empty: the configuration can run). A
    /// configuration built in code (the demo's) is checked with this too.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let id = &self.device.id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            p.push(format!(
                "device.id = {id:?}: use 1 to 64 letters, digits, '_', '-' or '.' (it names the device in the fleet)"
            ));
        }
        if self.storage.database.as_os_str().is_empty() {
            p.push("storage.database is empty: give a file path such as \"hydrowatch.db\"".into());
        }
        if !(1..=36_500).contains(&self.storage.retention_days) {
            p.push(format!(
                "storage.retention_days = {}: allowed 1 to 36500 (default 365)",
                self.storage.retention_days
            ));
        }
        if self.series.is_empty() {
            p.push("series: configure at least one [[series]]".into());
        }
        for (i, s) in self.series.iter().enumerate() {
            let key = format!("series[{i}] ({:?})", s.name);
            if let Err(e) = hydrowatch_core::check_series_name(&s.name) {
                p.push(format!("{key}.name: {e}"));
            }
            if self.series[..i].iter().any(|o| o.name == s.name) {
                p.push(format!(
                    "{key}.name: the name is used twice; each series needs its own"
                ));
            }
            if s.unit.trim().is_empty() {
                p.push(format!(
                    "{key}.unit is empty: give the unit, e.g. \"m3/h\" or \"bar\""
                ));
            }
            for (field, value) in [("min", s.min), ("max", s.max)] {
                if let Some(v) = value
                    && !v.is_finite()
                {
                    p.push(format!("{key}.{field} = {v}: a finite number"));
                }
            }
            if let (Some(min), Some(max)) = (s.min, s.max)
                && min >= max
            {
                p.push(format!(
                    "{key}: min = {min} and max = {max} must have min < max"
                ));
            }
            if let Some(st) = s.stages
                && !(st.iter().all(|x| (50.0..100.0).contains(x))
                    && st.windows(2).all(|w| w[0] < w[1]))
            {
                p.push(format!(
                    "{key}.stages = {st:?}: four increasing percentiles from 50 to below 100, e.g. [90.0, 95.0, 98.0, 99.0]"
                ));
            }
            for (field, minutes) in [
                ("stale_minutes", s.stale_minutes),
                ("stuck_minutes", s.stuck_minutes),
            ] {
                if minutes == Some(0) {
                    p.push(format!("{key}.{field} = 0: at least 1 minute"));
                }
            }
            if let Some(rate) = s.max_rate
                && !(rate.is_finite() && rate > 0.0)
            {
                p.push(format!(
                    "{key}.max_rate = {rate}: a positive change per minute"
                ));
            }
        }
        let d = &self.detection;
        if d.trailing_days == 0 {
            p.push("detection.trailing_days = 0: at least 1 (default 28)".into());
        }
        if !(1..=4).contains(&d.open_stage) {
            p.push(format!(
                "detection.open_stage = {}: a stage from 1 to 4 (default 4)",
                d.open_stage
            ));
        }
        for (field, n) in [
            ("open_after", d.open_after),
            ("hysteresis", d.hysteresis),
            ("clear_after", d.clear_after),
        ] {
            if n == 0 {
                p.push(format!("detection.{field} = 0: at least 1 reading"));
            }
        }
        if !(0.0..100.0).contains(&d.open_percentile) {
            p.push(format!(
                "detection.open_percentile = {}: from 0 to below 100 (default 99.9999)",
                d.open_percentile
            ));
        }
        if !(d.night_rise.is_finite() && d.night_rise > 0.0) {
            p.push(format!(
                "detection.night_rise = {}: a positive share, e.g. 0.08 for 8%",
                d.night_rise
            ));
        }
        if d.night_baseline == 0 {
            p.push("detection.night_baseline = 0: at least 1 night (default 14)".into());
        }
        if d.night_start == d.night_end {
            p.push(format!(
                "detection.night_start = night_end = {}: the night window is empty",
                d.night_start
            ));
        }
        if let Some(server) = &self.server {
            let https = server.url.starts_with("http://") || server.url.starts_with("https://");
            let mqtt = server.url.starts_with("mqtt://") || server.url.starts_with("mqtts://");
            match server.transport {
                crate::Transport::Https if !https => p.push(format!(
                    "server.url = {:?}: must start with https:// (or http:// on a trusted network){}",
                    server.url,
                    if mqtt { "; for a broker set transport = \"mqtt\"" } else { "" }
                )),
                crate::Transport::Mqtt if !mqtt => p.push(format!(
                    "server.url = {:?}: with transport = \"mqtt\" it is the broker's, mqtts://host:8883 (or mqtt://host:1883 on a trusted network)",
                    server.url
                )),
                _ => {}
            }
            if !matches!(server.mqtt_version.as_str(), "5" | "3.1.1") {
                p.push(format!(
                    "server.mqtt_version = {:?}: \"5\" or \"3.1.1\"",
                    server.mqtt_version
                ));
            }
            for (kind, hours) in &server.ttl_hours {
                if !matches!(kind.as_str(), "alert" | "forecast" | "heartbeat") {
                    p.push(format!(
                        "server.ttl_hours.{kind}: the kinds are alert, forecast and heartbeat"
                    ));
                }
                if !(1..=87_600).contains(hours) {
                    p.push(format!(
                        "server.ttl_hours.{kind} = {hours}: must be 1 to 87600 (leave the kind out to keep its messages until delivered)"
                    ));
                }
            }
            if server.bandwidth_kbps > 10_000_000 {
                p.push(format!(
                    "server.bandwidth_kbps = {}: at most 10000000 (0: no cap)",
                    server.bandwidth_kbps
                ));
            }
            if server.client_cert.is_some() != server.client_key.is_some() {
                p.push("server.client_cert and server.client_key go together".into());
            }
            if server.transport == crate::Transport::Https
                && (server.ca_file.is_some() || server.client_cert.is_some())
            {
                p.push(
                    "server.ca_file, client_cert and client_key are for transport = \"mqtt\""
                        .into(),
                );
            }
            if server.token.trim().is_empty() {
                p.push("server.token is empty: issue one with `hydrowatch serve token create DEVICE_ID`".into());
            }
            for (value, key, max) in [
                (server.batch_messages as u64, "batch_messages", 10_000),
                (u64::from(server.timeout_seconds), "timeout_seconds", 600),
                (
                    u64::from(server.retry_max_seconds),
                    "retry_max_seconds",
                    DAY as u64,
                ),
            ] {
                if !(1..=max).contains(&value) {
                    p.push(format!("server.{key} = {value}: must be 1 to {max}"));
                }
            }
            if server.outbox_rows == 0 || server.outbox_megabytes == 0 {
                p.push(format!(
                    "server.outbox_rows = {} and server.outbox_megabytes = {}: both at least 1 (an outbox that holds nothing would drop every message)",
                    server.outbox_rows, server.outbox_megabytes
                ));
            }
        }
        if let Some(c) = &self.forecast.country
            && !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) || c == "none")
        {
            p.push(format!(
                "forecast.country = {c:?}: give a two-letter ISO 3166 code such as \"IT\" or \"US\", or \"none\""
            ));
        }
        if let Some(r) = &self.forecast.region
            && !(1..=8).contains(&r.len())
        {
            p.push(format!(
                "forecast.region = {:?}: give the region's code, such as \"RM\" (Rome) or \"CA\" (California)",
                hydrowatch_core::cut(r, 20)
            ));
        }
        let names: Vec<String> = self.series.iter().map(|s| s.name.clone()).collect();
        p.extend(daemon::problems(&self.daemon, &self.source, &names));
        p
    }
}

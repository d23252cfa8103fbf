//! `hydrowatch status`: what the device holds and how it is doing, for a person: each series'
//! readings and default forecaster, the open alarms, the outbox, the newest forecasts, the jobs.

use anyhow::Context as _;
use hydrowatch_core::time::format_local;

use crate::context::Context;
use crate::global::Global;

/// `hydrowatch status`
pub(crate) fn run(global: &Global) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    let store = ctx.open_existing_store("import or record readings first")?;
    let tz = store.timezone();
    let when = |ts| format_local(ts, tz);
    println!(
        "{} ({}, schema version {})",
        ctx.db.display(),
        tz.name(),
        store.schema_version()?
    );
    println!("series:");
    // The detector as the daemon left it: what it learned of each series' states (a state
    // saved for other series, before a configuration changed, has nothing to say of these).
    let all = store.series()?;
    let detector = store.detector_state()?.and_then(|state| {
        let settings = all
            .iter()
            .map(|s| hydrowatch_ops::judge::series_settings(&ctx.config, &s.name, Some(&s.unit)))
            .collect();
        hydrowatch_detect::Detector::restore(tz, settings, &state).ok()
    });
    for (index, s) in all.iter().enumerate() {
        // Imported without a configuration, a series has no stored unit: the configuration's.
        let unit = match (s.unit.as_str(), ctx.config.series(&s.name)) {
            ("", Some(c)) => c.unit.clone(),
            ("", None) => "no unit".into(),
            (u, _) => u.to_string(),
        };
        let count = store.count(s.id)?;
        let span = match store.span(s.id)? {
            Some((first, last)) => {
                let newest = store.latest(s.id, 1)?;
                format!(
                    "{} to {}, newest {}",
                    when(first),
                    when(last),
                    newest
                        .first()
                        .map_or(String::new(), |r| r.value.to_string())
                )
            }
            None => "no readings".into(),
        };
        let forecaster = store.default_model(s.id)?.map_or_else(
            || {
                format!(
                    "{} (none chosen with `hydrowatch backtest --select`)",
                    hydrowatch_forecast::Forecaster::default().name()
                )
            },
            |m| m.name,
        );
        let forecast = store
            .latest_forecast(s.id)?
            .map_or_else(|| "none yet".into(), |t| format!("issued {}", when(t)));
        println!("  {} ({unit}): {count} readings, {span}", s.name);
        // The system checks' limits: configured, or learned with the newest criteria.
        let settings = hydrowatch_ops::judge::series_settings(&ctx.config, &s.name, Some(&unit));
        let criteria: Option<hydrowatch_detect::Criteria> = store
            .latest_criteria(s.id)?
            .and_then(|(_, body)| serde_json::from_str(&body).ok());
        println!(
            "      checks: {}",
            settings.describe_checks(criteria.as_ref().and_then(|c| c.limits.as_ref()))
        );
        if let Some(states) = detector.as_ref().and_then(|d| d.describe_states(index)) {
            println!("      {states}");
        }
        println!("      default forecaster: {forecaster}; newest forecast {forecast}");
        if let Some(r) = store.retrains(s.id)?.last() {
            let score = |x: Option<f64>| x.map_or("none".into(), |x| format!("{x:.3}"));
            println!(
                "      last retraining {}: {} kept the {} (backtest PI1+PI3: current {}, candidate {})",
                when(r.at),
                r.model,
                r.kept.name(),
                score(r.current_score),
                score(r.candidate_score)
            );
        }
    }
    // The daemon's live counters, when it runs with its health endpoint on.
    let listen = &ctx.config.daemon.health_listen;
    if let Some(health) = (!listen.is_empty())
        .then(|| daemon_health(listen))
        .flatten()
    {
        println!(
            "daemon: running since {}; {} readings ingested, {} refused, {} bad input, {} device timeouts, {} messages delivered, {} job failures",
            health["started"].as_str().unwrap_or("?"),
            health["readings_ingested"],
            health["readings_refused"],
            health["bad_input"],
            health["device_timeouts"],
            health["delivered"],
            health["job_failures"]
        );
        let waits = |stage: &str| {
            let idle = &health["latency"][stage]["idle"];
            format!("{}/{} ms", idle["p50_ms"], idle["p99_ms"])
        };
        println!(
            "daemon: readings wait {} for their commit, {} for their verdict (p50/p99, no training running); {} training processes ended, {}",
            waits("commit"),
            waits("verdict"),
            health["training_runs"],
            if health["training"] == 1 {
                "one runs now"
            } else {
                "none runs now"
            }
        );
        if let Some(server) = &ctx.config.server {
            println!(
                "daemon: {:.1} kB of messages sent{}",
                health["uplink_bytes"].as_f64().unwrap_or(0.0) / 1e3,
                match server.bandwidth_kbps {
                    0 => String::new(),
                    kbps => format!(
                        "; held back {} times by the bandwidth cap of {kbps} kbit/s",
                        health["uplink_capped"]
                    ),
                }
            );
        }
        if let Some(reason) = health["reason"].as_str() {
            println!(
                "daemon: DEGRADED: {reason} ({} failed commits so far)",
                health["commit_failures"]
            );
        }
    } else {
        println!(
            "daemon: not reachable on {listen:?} (not running, or its health endpoint is off)"
        );
    }
    let open = store.alarms(true)?;
    println!("open alarms: {}", open.len());
    for a in &open {
        println!(
            "  #{} {} {} {} stage {} since {} ({} {})",
            a.id,
            a.series,
            a.kind,
            a.direction,
            a.stage,
            when(a.opened_at),
            a.state,
            when(a.updated_at)
        );
    }
    let outbox = store.outbox_stats()?;
    let dropped: Vec<String> = outbox
        .dropped
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    println!(
        "outbox: {} messages ({:.1} kB) waiting for the server; dropped by policy: {}",
        outbox.rows,
        outbox.bytes as f64 / 1e3,
        if dropped.is_empty() {
            "none".into()
        } else {
            dropped.join(", ")
        }
    );
    if let Some(server) = &ctx.config.server {
        let ttl: Vec<String> = server
            .ttl_hours
            .iter()
            .map(|(k, h)| format!("{k} {h} h"))
            .collect();
        let expired: Vec<String> = outbox
            .expired
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        println!(
            "outbox: delivered over {} to {}, alerts first; time to live: {}; expired: {}",
            match server.transport {
                hydrowatch_config::Transport::Https => "HTTPS",
                hydrowatch_config::Transport::Mqtt => "MQTT",
            },
            server.url,
            if ttl.is_empty() {
                "none".into()
            } else {
                ttl.join(", ")
            },
            if expired.is_empty() {
                "none".into()
            } else {
                expired.join(", ")
            }
        );
    }
    if outbox.set_aside > 0 {
        println!(
            "outbox: {} messages set aside: the server holds their ids with other content (table outbox_set_aside)",
            outbox.set_aside
        );
    }
    let jobs = store.jobs().context("cannot read the jobs")?;
    if jobs.is_empty() {
        println!("jobs: none has run yet (the daemon, `hydrowatch run`, runs them)");
    }
    for (name, run) in jobs {
        println!(
            "job {name}: {} at {}{}",
            if run.ok { "ok" } else { "FAILED" },
            when(run.at),
            if run.message.is_empty() {
                String::new()
            } else {
                format!(": {}", run.message)
            }
        );
    }
    Ok(())
}

/// The running daemon's `/health`, if it answers within a second (a degraded daemon answers
/// 503 with the same body).
fn daemon_health(listen: &str) -> Option<serde_json::Value> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(1))
        .build()
        .ok()?;
    client
        .get(format!("http://{listen}/health"))
        .send()
        .ok()?
        .json()
        .ok()
}

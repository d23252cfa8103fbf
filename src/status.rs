//! `hydrowatch status`: what the device holds and how it is doing, for a person: each series'
//! readings and default forecaster, the open alarms, the outbox, the newest forecasts, the jobs.

use anyhow::Context as _;
use hydrowatch_core::time::format_local;

use crate::cli::Global;
use crate::context::Context;

/// `hydrowatch status`
pub fn run(global: &Global) -> anyhow::Result<()> {
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
    for s in store.series()? {
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
            || "none chosen (`hydrowatch backtest --select`)".into(),
            |m| m.name,
        );
        let forecast = store
            .latest_forecast(s.id)?
            .map_or_else(|| "none yet".into(), |t| format!("issued {}", when(t)));
        println!("  {} ({unit}): {count} readings, {span}", s.name);
        println!("      default forecaster: {forecaster}; newest forecast {forecast}");
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

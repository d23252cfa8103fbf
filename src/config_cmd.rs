//! `hydrowatch config check|example`.

use std::path::PathBuf;

use anyhow::bail;
use hydrowatch_config::{Config, EXAMPLE};

use crate::global::Global;

/// Validates a configuration file and summarises it.
pub(crate) fn check(global: &Global, file: Option<PathBuf>) -> anyhow::Result<()> {
    let Some(file) = file.or_else(|| global.config.clone()) else {
        bail!("name the file to check: `hydrowatch config check hydrowatch.toml`");
    };
    let c = Config::load(&file)?;
    let series: Vec<String> = c
        .series
        .iter()
        .map(|s| {
            // What is not configured is learned from the series' history.
            let limit = |x: Option<f64>| x.map_or("learned".to_string(), |x| x.to_string());
            let range = match (s.min, s.max) {
                (None, None) => "learned".to_string(),
                (min, max) => format!("{} to {}", limit(min), limit(max)),
            };
            let rate = s
                .max_rate
                .map_or("learned".to_string(), |r| format!("{r}/min"));
            format!(
                "{} ({}, range {range}, largest change {rate})",
                s.name, s.unit
            )
        })
        .collect();
    println!("{}: valid", file.display());
    println!("  device    {} in {}", c.device.id, c.device.timezone);
    println!(
        "  database  {} (keeps {} days)",
        c.storage.database.display(),
        c.storage.retention_days
    );
    println!("  series    {}", series.join(", "));
    println!(
        "  schedule  forecast {}, criteria {}, retention {}, retrain {} {}",
        c.schedule.forecast_at,
        c.schedule.criteria_at,
        c.schedule.retention_at,
        c.schedule.retrain_at.weekday,
        c.schedule.retrain_at.time
    );
    let calendar = hydrowatch_ops::forecasting::calendar(&c, c.device.timezone)?;
    let today = chrono::Utc::now()
        .with_timezone(&c.device.timezone)
        .date_naive();
    let last_listed = calendar.holidays.entries().last().map(|h| h.date);
    let ran_out = match (calendar.ended(today), calendar.known_until, last_listed) {
        (Some(until), ..) => {
            format!(" (the national calendar ended {until}: list the coming holidays)")
        }
        (None, None, Some(last)) if last < today => " (all past: list the coming years)".into(),
        _ => String::new(),
    };
    println!("  holidays  {}{ran_out}", calendar.describe());
    match &c.server {
        Some(s) => println!("  server    {}", s.url),
        None => println!("  server    none (everything stays on the device)"),
    }
    let sources: Vec<&str> = c.source.iter().map(|s| s.kind()).collect();
    if sources.is_empty() {
        println!("  sources   none (`hydrowatch run` needs at least one [[source]])");
    } else {
        println!("  sources   {}", sources.join(", "));
    }
    Ok(())
}

/// Prints the documented example.
pub(crate) fn example() -> anyhow::Result<()> {
    print!("{EXAMPLE}");
    Ok(())
}

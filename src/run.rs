//! `hydrowatch run`: the device daemon (hydrowatch-edge) on the configuration.

use anyhow::Context as _;
use clap::Args;

use crate::context::Context;
use crate::global::Global;

/// `hydrowatch run`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
hydrowatch run --config /etc/hydrowatch/hydrowatch.toml          (what the systemd unit runs)\n  \
hydrowatch run --config replay.toml --until-sources-end --log-json\n\n\
Readings come from the [[source]]s of the configuration (simulator, csv_replay, stdin, tcp, \
serial, modbus); each is committed to the database before it is acknowledged or judged. Every \
reading is judged at once; criteria are refitted daily, every series is forecast at \
schedule.forecast_at, old data deleted at schedule.retention_at, models retrained weekly at \
schedule.retrain_at (in the background, at low priority, a new model kept only when it backtests \
better). Alarms, forecasts and heartbeats go to [server] through the outbox. A job missed while \
the daemon was down runs once at start-up. GET /health and /metrics on daemon.health_listen \
(default 127.0.0.1:9187). SIGTERM or Ctrl-C: finish what was received, then exit 0. \
Logs go to standard error; HYDROWATCH_LOG=debug says more.")]
pub(crate) struct RunArgs {
    /// Logs as JSON lines (for journald, Loki, ...) instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// Stop once every source has ended (a replayed file, a finite simulation), after every
    /// reading is judged, the due jobs ran and the outbox is delivered (or --drain-seconds passed).
    #[arg(long)]
    pub until_sources_end: bool,
    /// With --until-sources-end: how long to keep trying to deliver the outbox before stopping
    /// (what is not delivered waits for the next start).
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    pub drain_seconds: f64,
}

/// Runs the daemon until it is stopped.
pub(crate) fn run(global: &Global, args: RunArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    if let Some(parent) = ctx.db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let summary = hydrowatch_edge::Daemon {
        config: ctx.config.clone(),
        db: ctx.db.clone(),
        until_sources_end: args.until_sources_end,
        drain: std::time::Duration::try_from_secs_f64(args.drain_seconds)
            .context("--drain-seconds: give a number of seconds, 0 or more")?,
        worker: Some(std::env::current_exe().context("cannot find this program's own file")?),
    }
    .run()?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

//! `hydrowatch simulate`: writes the simulator's minute data and its labelled events.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use hydrowatch_sim::{EventPlan, SimConfig, Simulator};

use crate::context::Context;
use crate::global::Global;

/// `hydrowatch simulate --days N --seed S --out FILE [--labels FILE] [--start YYYY-MM-DD]`
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  hydrowatch simulate --days 365 --seed 1 --out year.csv --labels events.csv\n\n\
The data file is `time,flow_rate,pressure`, one row a minute, in the device's local time \
(`YYYY-MM-DD HH:MM`); a silent sensor leaves its cell empty. The events file has rows \
`start,end,kind,series` with kind one of burst, leak, stuck, silent, spike."
)]
pub(crate) struct SimulateArgs {
    /// Number of days to simulate.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// Seed: the same seed gives the same data and events.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Where to write the minute data (CSV).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Where to write the labelled events (CSV).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Local date of the first minute.
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2024-01-01")]
    pub start: chrono::NaiveDate,
    /// Time zone of the output (default: the device's, Asia/Seoul without a configuration).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
    /// Mean flow of the DMA over a year, m3/h.
    #[arg(long, value_name = "M3H", default_value_t = 120.0)]
    pub mean_flow: f64,
    /// Simulate a clean network: no events.
    #[arg(long)]
    pub no_events: bool,
}

/// Runs the command.
pub(crate) fn run(global: &Global, args: SimulateArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    anyhow::ensure!(
        args.mean_flow.is_finite() && args.mean_flow > 0.0,
        "--mean-flow {}: give a positive flow in m3/h",
        args.mean_flow
    );
    let config = SimConfig {
        start: args.start,
        days: args.days,
        seed: args.seed,
        timezone: ctx.timezone(args.timezone.as_deref())?,
        mean_flow: args.mean_flow,
        events: if args.no_events {
            EventPlan::None
        } else {
            EventPlan::Random
        },
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(config);
    if let Some(path) = &args.labels {
        let mut out = BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        );
        sim.write_labels(&mut out)
            .and_then(|()| out.flush())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let events = sim.events().len();
    let path = &args.out;
    let mut out = BufWriter::new(
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let rows = sim
        .write_csv(&mut out)
        .and_then(|n| out.flush().map(|()| n))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} minutes of flow_rate and pressure to {}{}",
        rows,
        path.display(),
        match &args.labels {
            Some(l) => format!(", {events} labelled events to {}", l.display()),
            None => format!(" ({events} events; --labels FILE writes them)"),
        }
    );
    Ok(())
}

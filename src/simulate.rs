//! `hydrowatch simulate`: writes the simulator's minute data and its labelled events.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::Context as _;
use hydrowatch_sim::{EventPlan, SimConfig, Simulator};

use crate::cli::{Global, SimulateArgs};
use crate::context::Context;

/// Runs the command.
pub fn run(global: &Global, args: SimulateArgs) -> anyhow::Result<()> {
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

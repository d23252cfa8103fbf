//! `hydrowatch export`: the prototype's table, readings with the day-ahead forecast beside them.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Args;
use hydrowatch_core::Timestamp;
use hydrowatch_ops::export::write_table;
use hydrowatch_store::SeriesInfo;

use crate::context::Context;
use crate::global::Global;
use crate::output::Output;

/// `hydrowatch export [--db FILE] [--from T] [--to T] [--out FILE]`
#[derive(Debug, Args)]
#[command(
    after_help = "The table is the prototype's: `time,flow_rate,pressure,flow_rate_predict,pressure_predict` \
(one value column per series, then one forecast column per series). A `*_predict` cell holds the \
day-ahead forecast of that hour: the latest one issued on the previous local day; it is empty \
where none was issued. Times are local (`YYYY-MM-DD HH:MM`)."
)]
pub(crate) struct ExportArgs {
    /// First time to export (inclusive), e.g. `2024-07-01` or `2024-07-01 06:00`.
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// Time to stop before (exclusive).
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// Output file (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Export only these series (repeat for several; default: all).
    #[arg(long, value_name = "NAME")]
    pub series: Vec<String>,
    /// One row per hour (hourly means) instead of one per reading.
    #[arg(long)]
    pub hourly: bool,
    /// Time zone of --from/--to and of the output (default: the database's).
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
}

/// Runs the command.
pub(crate) fn run(global: &Global, args: ExportArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    let store = ctx.open_existing_store("import or record readings first")?;
    let tz = match &args.timezone {
        Some(_) => ctx.timezone(args.timezone.as_deref())?,
        None => store.timezone(),
    };
    let all = store.series()?;
    let series: Vec<SeriesInfo> = if args.series.is_empty() {
        all
    } else {
        let mut picked = Vec::new();
        for name in &args.series {
            let id = store.series_id(name)?;
            picked.extend(all.iter().filter(|s| s.id == id).cloned());
        }
        picked
    };
    anyhow::ensure!(
        !series.is_empty(),
        "{}: the database holds no series yet",
        ctx.db.display()
    );

    let bound = |text: &Option<String>, name: &str| -> anyhow::Result<Option<Timestamp>> {
        text.as_deref()
            .map(|t| crate::context::parse_local_time(t, tz, name))
            .transpose()
    };
    let from = bound(&args.from, "from")?.unwrap_or(Timestamp::MIN);
    let to = bound(&args.to, "to")?.unwrap_or(Timestamp::MAX);
    anyhow::ensure!(from < to, "--from must be before --to");

    let rows = match &args.out {
        Some(path) => {
            let mut out = Output::create(path)?;
            let rows = write_table(&store, &series, from, to, tz, args.hourly, &mut out)?;
            out.finish()?;
            rows
        }
        None => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            let rows = write_table(&store, &series, from, to, tz, args.hourly, &mut out)?;
            out.flush()?;
            rows
        }
    };
    if let Some(path) = &args.out {
        println!(
            "wrote {rows} rows of {} series to {}",
            series.len(),
            path.display()
        );
    }
    Ok(())
}

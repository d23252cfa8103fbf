//! `hydrowatch demo`: the whole system on embedded defaults, in one process, for a newcomer. A
//! central server (hydrowatch-server, SQLite) and up to three simulated devices (district
//! metered areas of different sizes in different time zones) start on temporary files; each
//! device gets seven weeks of history imported (by default) and then two weeks replayed at high speed through
//! its real daemon (hydrowatch-edge: ingest, detection, forecast models trained and run on
//! schedule, weekly retraining, the uplink), with a pipe burst and a slow leak in them. It prints
//! where to watch the dashboard, then a summary (readings, alarms by stage, how soon each event
//! was alarmed, day-ahead forecast accuracy as the server scores it), and serves until Ctrl-C.
//!
//! Invariants: nothing is read from or written to the working directory (a temporary directory,
//! removed at the end, unless `--dir`); the simulated days end last midnight, so the dashboard
//! shows the present; everything the summary reports was read back from the server or the device databases.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

mod replay;
mod summary;

use chrono_tz::Tz;
use clap::Args;
use hydrowatch_config::{ReplaySource, SourceConfig};
use hydrowatch_core::time::{DAY, HOUR, for_people, local_day_start};
use hydrowatch_ops::import::{ImportRequest, import};
use hydrowatch_sim::{Event, EventKind, EventPlan, SERIES, SimConfig, Simulator};
use hydrowatch_store::Store;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or directory of the demo.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The demo's directory could not be made.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No local port to listen on.
    #[error("cannot listen on a local port: {0}")]
    Listen(std::io::Error),
    /// The server's database.
    #[error("the server's database: {0}")]
    Server(#[from] hydrowatch_server::DbError),
    /// The demo's user.
    #[error("the demo's user: {0}")]
    Account(#[from] hydrowatch_server::accounts::AccountError),
    /// The server did not start.
    #[error("the server: {0}")]
    Start(#[from] hydrowatch_server::ServerError),
    /// A device's database.
    #[error("a device's database: {0}")]
    Store(#[from] hydrowatch_store::StoreError),
    /// A device's configuration does not pass its checks.
    #[error("{device}: {problems}")]
    Config {
        /// The device.
        device: &'static str,
        /// What its checks said.
        problems: String,
    },
    /// A device's history did not import.
    #[error("importing {device}'s history: {source}")]
    Import {
        /// The device.
        device: &'static str,
        /// Why.
        source: hydrowatch_ops::import::ImportError,
    },
    /// A device's daemon failed.
    #[error("{device}'s daemon failed: {source}")]
    Daemon {
        /// The device.
        device: &'static str,
        /// Why.
        source: hydrowatch_edge::DaemonError,
    },
    /// A device's daemon panicked.
    #[error("{0}'s daemon panicked")]
    Panicked(&'static str),
}

/// Options of `hydrowatch demo`.
#[derive(Debug, Args)]
#[command(
    after_help = "Runs from any directory and needs no configuration: its files go to a \
temporary directory (or --dir). Open the printed address in a browser while it runs; the pages \
refresh by themselves. Ctrl-C stops it."
)]
pub struct DemoArgs {
    /// Stop once the replay is done and the summary printed, instead of serving the dashboard
    /// until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Simulated devices, 1 to 3.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub devices: u8,
    /// Days replayed through each device's daemon (after its imported history), with a burst
    /// and a leak in them.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(4..=28))]
    pub days: u32,
    /// Days of history imported into each device before the replay (its forecasting networks
    /// need 46; with fewer, a device forecasts with its best baseline).
    #[arg(long, default_value_t = 49, value_parser = clap::value_parser!(u32).range(8..=365))]
    pub history_days: u32,
    /// Seconds of wall-clock time the replay takes (it runs the days that much faster than
    /// real time).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(5..=3600))]
    pub replay_seconds: u32,
    /// Where the dashboard listens; another free port is taken when this one is busy.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: String,
    /// Keep the demo's files (databases, models, CSV files) in DIR instead of a temporary
    /// directory removed at the end.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// One simulated district metered area.
struct Dma {
    id: &'static str,
    tz: Tz,
    mean_flow: f64,
    static_pressure: f64,
}

const DMAS: [Dma; 3] = [
    Dma {
        id: "dma-north",
        tz: chrono_tz::Europe::Berlin,
        mean_flow: 120.0,
        static_pressure: 5.0,
    },
    Dma {
        id: "dma-harbour",
        tz: chrono_tz::America::New_York,
        mean_flow: 320.0,
        static_pressure: 4.4,
    },
    Dma {
        id: "dma-hill",
        tz: chrono_tz::Asia::Seoul,
        mean_flow: 45.0,
        static_pressure: 6.2,
    },
];

/// A device of the demo, ready to run.
struct Device {
    dma: &'static Dma,
    db: PathBuf,
    config: hydrowatch_config::Config,
    replay_start: i64,
    replay_end: i64,
    events: Vec<Event>,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<(), DemoError> {
    let started = Instant::now();
    let (_temp, dir) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|source| DemoError::Dir {
                path: d.clone(),
                source,
            })?;
            (None, std::path::absolute(d)?)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("hydrowatch-demo-")
                .tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    // A fresh start every time, also in a kept directory.
    for stale in ["server.db", "server.db-wal", "server.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }

    println!(
        "hydrowatch demo: a central server and {} devices, {} days of history each, then {} days replayed through each device's daemon",
        args.devices, args.history_days, args.days
    );
    println!("files: {}", dir.display());
    let server_db = Arc::new(hydrowatch_server::Db::open(&dir.join("server.db"))?);
    let listener = std::net::TcpListener::bind(&args.listen)
        .or_else(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(DemoError::Listen)?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut devices = Vec::new();
    for dma in &DMAS[..usize::from(args.devices)] {
        let token = server_db.create_token(dma.id, chrono::Utc::now().timestamp())?;
        devices.push(prepare(dma, &dir, &url, &token, &args)?);
    }
    // Someone to log in as: a password of this run only.
    let password = hydrowatch_server::db::random_token();
    let password = &password[..12];
    server_db.add_user(
        "demo",
        hydrowatch_server::Role::Admin,
        password,
        chrono::Utc::now().timestamp(),
    )?;
    let server =
        hydrowatch_server::Server::new(server_db.clone(), Default::default()).spawn(listener)?;
    println!(
        "\n  dashboard: {url}/   (log in as demo, password {password}; open it now: it fills while the replay runs)\n"
    );
    for d in &devices {
        let r = d.replay_start;
        println!(
            "  {:<12} {:>5.0} m3/h  {:<17} events: {}",
            d.dma.id,
            d.dma.mean_flow,
            d.dma.tz.name(),
            d.events
                .iter()
                .map(|e| format!(
                    "{} from day {:.1} for {}",
                    e.kind.label(),
                    (e.start - r) as f64 / DAY as f64,
                    for_people((e.end.min(d.replay_end) - e.start) as f64)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!();

    // Ctrl-C during the replay: the demo ends after the summary, too.
    let (replay, interrupted) = replay::replay(&devices, args.days)?;
    if interrupted {
        println!("\nThe replay was stopped (Ctrl-C): the summary covers what was replayed.");
    }
    println!("\nSummary (read back from the server at {url} and the device databases)\n");
    summary::summary(&devices, &server_db)?;
    println!(
        "\nDone in {:.0} s (replay {:.0} s). Dashboard: {url}/",
        started.elapsed().as_secs_f64(),
        replay.as_secs_f64()
    );
    if args.exit || interrupted {
        return Ok(());
    }
    let stop = {
        let _inside = server.runtime.enter();
        hydrowatch_edge::shutdown_signal()
    };
    println!("Serving until Ctrl-C (or SIGTERM).");
    server.runtime.block_on(stop);
    Ok(())
}

/// Simulates a device's days, writes its configuration and imports its history.
fn prepare(
    dma: &'static Dma,
    dir: &Path,
    url: &str,
    token: &str,
    args: &DemoArgs,
) -> Result<Device, DemoError> {
    let home = dir.join(dma.id);
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home)?;
    let days = args.history_days + args.days;
    let today = chrono::Utc::now().with_timezone(&dma.tz).date_naive();
    // The replay ends at the start of today: the newest readings are from last night.
    let start = today - chrono::Days::new(u64::from(days));
    let replay_date = start + chrono::Days::new(u64::from(args.history_days));
    let replay_start = local_day_start(replay_date, dma.tz);
    let replay_end = local_day_start(today, dma.tz);
    let span = replay_end - replay_start;
    // `hour` o'clock on the day `fifths` fifths into the replay.
    let at = |fifths: u32, hour: i64| {
        let date = replay_date + chrono::Days::new(u64::from(args.days * fifths / 5));
        local_day_start(date, dma.tz) + hour * HOUR
    };
    // A burst in the morning of the day a fifth of the way in (half the mean flow more, 4 hours),
    // a slow leak from the afternoon of the day two fifths in (a fifth more flow, growing over
    // 60% of its time).
    let events = vec![
        Event {
            kind: EventKind::Burst,
            start: at(1, 8),
            end: at(1, 12),
            series: SERIES.to_vec(),
            magnitude: 0.5 * dma.mean_flow,
        },
        Event {
            kind: EventKind::Leak,
            start: at(2, 14),
            // Still leaking when the data ends: not "repaired" in its last minute.
            end: replay_end + DAY,
            series: vec![SERIES[0]],
            magnitude: 0.2 * dma.mean_flow,
        },
    ];
    let mut history = std::io::BufWriter::new(std::fs::File::create(home.join("history.csv"))?);
    let mut replay = std::io::BufWriter::new(std::fs::File::create(home.join("replay.csv"))?);
    Simulator::new(SimConfig {
        start,
        days,
        seed: dma.id.len() as u64,
        timezone: dma.tz,
        mean_flow: dma.mean_flow,
        static_pressure: dma.static_pressure,
        events: EventPlan::Fixed(events.clone()),
    })
    .write_csv_split(&mut history, &mut replay, replay_start)?;
    history.flush()?;
    replay.flush()?;
    let speed = span as f64 / f64::from(args.replay_seconds);
    let db = home.join("device.db");
    let mut config = hydrowatch_config::Config::default();
    config.device.id = dma.id.into();
    config.device.timezone = dma.tz;
    config.storage.database = db.clone();
    config.server = Some(hydrowatch_config::ServerConfig::new(url, token));
    config.daemon.health_listen = String::new();
    config.daemon.models_dir = home.join("models");
    config.source = vec![SourceConfig::CsvReplay(ReplaySource {
        path: home.join("replay.csv"),
        speed: speed.round(),
        timezone: None,
        series: None,
    })];
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(DemoError::Config {
            device: dma.id,
            problems: problems.join("; "),
        });
    }
    let mut store = Store::open(&db, dma.tz)?;
    let files = [home.join("history.csv")];
    let request = ImportRequest {
        files: &files,
        options: hydrowatch_csv::ReadOptions {
            timezone: dma.tz,
            series: None,
            clock: None,
        },
        skip_bad: false,
        config: Some(&config),
        new_series: false,
    };
    import(&mut store, &request, &mut |_| {}).map_err(|source| DemoError::Import {
        device: dma.id,
        source,
    })?;
    Ok(Device {
        dma,
        db,
        config,
        replay_start,
        replay_end,
        events,
    })
}

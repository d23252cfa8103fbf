//! `hydrowatch`: one binary for the device and the tools around it. This file only parses the
//! command line and dispatches; each command lives in its own module.

mod backtest;
mod backtest_tables;
mod cli;
mod config_cmd;
mod context;
mod detect;
mod detect_report;
mod export;
mod forecasting;
mod global;
mod import;
mod output;
mod plot;
mod run;
mod serve;
mod simulate;
mod status;
mod train;
mod upload;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if trains(&cli.command) {
        keep_freed_memory();
    } else if matches!(cli.command, cli::Command::Run(_)) {
        one_arena();
    }
    // The daemon says what it does (info); the commands only warn. HYDROWATCH_LOG overrides.
    let (level, json) = match &cli.command {
        cli::Command::Run(args) => ("info", args.log_json),
        _ => ("warn", false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HYDROWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Within a budget whatever happens (hydrowatch_edge::log).
    let stderr = hydrowatch_edge::log::bounded_stderr();
    let logs = tracing_subscriber::fmt()
        .with_writer(move || stderr.clone())
        .with_env_filter(filter);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", explain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause only where the message before it does not already say
/// it (the libraries' errors quote their source in their own message).
fn explain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run(cli: cli::Cli) -> anyhow::Result<()> {
    use cli::{BenchCommand, Command, ConfigCommand};
    let global = cli.global;
    match cli.command {
        Command::Demo(args) => Ok(hydrowatch_demo::run(args)?),
        Command::Simulate(args) => simulate::run(&global, args),
        Command::Import(args) => import::run(&global, args),
        Command::Export(args) => export::run(&global, args),
        Command::Train(args) => train::train(&global, args),
        Command::Forecast(args) => forecasting::forecast(&global, args),
        Command::Backtest(args) => backtest::backtest_cmd(&global, args),
        Command::Detect(args) => detect::run(&global, args),
        Command::Status => status::run(&global),
        Command::Upload => upload::run(&global),
        Command::Run(args) => run::run(&global, args),
        Command::Serve(args) => serve::run(&global, *args),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_cmd::check(&global, file),
        Command::Config {
            command: ConfigCommand::Example,
        } => config_cmd::example(),
        Command::Bench {
            command: BenchCommand::Storage(args),
        } => Ok(hydrowatch_bench::storage::run(args)?),
        Command::Bench {
            command: BenchCommand::LstmStep(args),
        } => Ok(hydrowatch_bench::lstm::run(args)?),
        Command::Bench {
            command: BenchCommand::Fleet(args),
        } => Ok(hydrowatch_bench::fleet::run(args)?),
        Command::Bench {
            command: BenchCommand::Detect(args),
        } => Ok(hydrowatch_bench::detect::run(
            &context::Context::load(&global)?.config,
            args,
        )?),
        Command::Bench {
            command: BenchCommand::Daemon(args),
        } => Ok(hydrowatch_bench::daemon::run(args)?),
        Command::BenchStorageStep(args) => Ok(hydrowatch_bench::storage::run_step(args)?),
        Command::TrainWorker => Ok(hydrowatch_edge::daemon::worker()?),
    }
}

/// One allocator arena for the daemon's threads: glibc gives each thread that allocates its own
/// arena, and the blocks freed in one are not reused by the others; with one arena the threads
/// share them, and a daemon with a year of history holds 11 MB of anonymous memory instead of
/// 21 MB (docs/BENCHMARKS.md, "A year-old device"). Its threads allocate little; they wait on
/// the disk and the network, not on each other's allocations.
fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The commands that train networks in their own process (where [`keep_freed_memory`] pays).
fn trains(command: &cli::Command) -> bool {
    use cli::{BenchCommand, Command};
    matches!(
        command,
        Command::Train(_)
            | Command::Forecast(_)
            | Command::Backtest(_)
            | Command::TrainWorker
            | Command::Bench {
                command: BenchCommand::LstmStep(_)
            }
    )
}

/// Tells glibc's allocator to keep freed blocks of up to 256 MB for reuse instead of handing
/// them back to the OS. By default it returns every large buffer of a training step with
/// `munmap` and page-faults a fresh zeroed one in on the next step: that took half of the fused
/// LSTM's step time (docs/BENCHMARKS.md). mimalloc fixed it as well but tripled the peak memory
/// of a forecast (27 MB against 11 MB); this keeps it at 11 MB. Measured again with windows
/// made per batch: 21.1 against 25.1 ms a step, 3.5 MB more at the peak of a training. Only the
/// commands that train set it ([`trains`]): a daemon that set it kept its training's memory for
/// good, and the daemon trains in a child process (`train-worker`), which sets it and exits.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts
    // (the command line is parsed on this thread only).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

//! `hydrowatch serve`: the central server (hydrowatch-server) on a SQLite file or PostgreSQL, and
//! `hydrowatch serve token create DEVICE_ID`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::global::Global;

/// `hydrowatch serve`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
hydrowatch serve token create dma-017        (prints the device's token once; put it in its [server] token)\n  \
hydrowatch serve --listen 0.0.0.0:8080\n\n\
Devices POST their alarms, forecasts and heartbeats to /api/v1/ingest with their token. People \
open the dashboard at / ; programs read /api/v1/devices, /api/v1/alarms, /api/v1/forecasts and \
/api/v1/accuracy (described at /api/v1/openapi.json). The database is the --db file (default \
hydrowatch-server.db), or PostgreSQL with --database postgres://user:password@host:port/dbname \
(the tables are created on first start; connections without TLS, so keep the database next to the \
server).")]
pub(crate) struct ServeArgs {
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    /// PostgreSQL instead of the SQLite file: postgres://user:password@host:port/dbname (or
    /// key=value form: "host=... user=... dbname=...").
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: String,
    /// Ingest requests per second allowed per device (bursts of three times as many); 0: no
    /// limit. A device over it is answered 429 and comes back later.
    #[arg(long, default_value_t = 20.0, value_name = "N")]
    pub rate_limit: f64,
    /// Connections served at once; one more is answered 503 at once (a client that sends no
    /// request headers within 10 s is closed, a request not done in 30 s is answered 408).
    /// Keep it below the process's file limit (`ulimit -n`).
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServeCommand {
    /// Device tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue a new token for a device (replacing its old one) and print it once.
    Create {
        /// The device's id, as in its `[device] id`.
        device_id: String,
    },
}

/// Runs the command.
pub(crate) fn run(global: &Global, args: ServeArgs) -> anyhow::Result<()> {
    let (db, name) = match (&args.database, &global.db) {
        (Some(_), Some(file)) => anyhow::bail!(
            "both --db {} and --database given: the server uses one database, choose one",
            file.display()
        ),
        (Some(url), None) => {
            anyhow::ensure!(
                url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.contains('='),
                "--database {}: expected postgres://user:password@host:port/dbname",
                without_password(url)
            );
            let db = hydrowatch_server::Db::connect(url)
                .with_context(|| format!("cannot use --database {}", without_password(url)))?;
            (db, without_password(url))
        }
        (None, file) => {
            let path = file
                .clone()
                .unwrap_or_else(|| PathBuf::from("hydrowatch-server.db"));
            let db = hydrowatch_server::Db::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            (db, path.display().to_string())
        }
    };
    match args.command {
        Some(ServeCommand::Token {
            command: TokenCommand::Create { device_id },
        }) => {
            anyhow::ensure!(
                (1..=64).contains(&device_id.len())
                    && device_id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
                "device id {device_id:?}: use 1 to 64 letters, digits, '_', '-' or '.' (as in the device's [device] id)"
            );
            let token = db.create_token(&device_id, chrono::Utc::now().timestamp())?;
            println!("{token}");
            eprintln!(
                "token for {device_id} (shown once; the server keeps only its hash): put it in the device's [server] token"
            );
            Ok(())
        }
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(&args.listen)
                    .await
                    .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
                eprintln!(
                    "hydrowatch server on http://{} ({} database {name})",
                    listener.local_addr()?,
                    db.kind()
                );
                let limit = hydrowatch_server::RateLimit {
                    per_second: args.rate_limit.max(0.0),
                    burst: args.rate_limit.max(0.0) * 3.0,
                };
                hydrowatch_server::serve(
                    listener,
                    hydrowatch_server::router_with(Arc::new(db), limit),
                    hydrowatch_server::Limits {
                        max_connections: args.max_connections as usize,
                        ..hydrowatch_server::Limits::default()
                    },
                    async {
                        let mut term = tokio::signal::unix::signal(
                            tokio::signal::unix::SignalKind::terminate(),
                        )
                        .expect("SIGTERM can be watched");
                        tokio::select! {
                            _ = term.recv() => {}
                            _ = tokio::signal::ctrl_c() => {}
                        }
                    },
                )
                .await;
                Ok(())
            })
        }
    }
}

/// `url` with its password replaced by `***`, for messages.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_part = &url[scheme + 3..at];
            match user_part.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &user_part[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_repeated_in_messages() {
        assert_eq!(
            super::without_password("postgres://hw:s3cret@db.example:5432/fleet"),
            "postgres://hw:***@db.example:5432/fleet"
        );
        assert_eq!(
            super::without_password("postgres://hw@localhost/fleet"),
            "postgres://hw@localhost/fleet"
        );
    }
}

//! The options every command takes.

use std::path::PathBuf;

use clap::Args;

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Device configuration (TOML). Without it: device-1 in Asia/Seoul with flow_rate and
    /// pressure. See `hydrowatch config example`.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The device database (SQLite). Overrides storage.database of the configuration.
    /// Default: hydrowatch.db in the working directory. With `serve`: the server's database
    /// (default hydrowatch-server.db).
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

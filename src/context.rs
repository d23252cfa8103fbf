//! What every command derives from the global options: the configuration and the database.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono_tz::Tz;
use hydrowatch_config::Config;
use hydrowatch_store::Store;

use crate::global::Global;

/// The loaded configuration and where the database is.
pub(crate) struct Context {
    /// The configuration (the defaults without --config).
    pub config: Config,
    /// Whether a configuration file was given.
    pub configured: bool,
    /// The database file: --db, else storage.database.
    pub db: PathBuf,
}

impl Context {
    /// Loads the configuration named by --config, if any.
    pub(crate) fn load(global: &Global) -> anyhow::Result<Context> {
        let (config, configured) = match &global.config {
            Some(path) => (Config::load(path)?, true),
            None => (Config::default(), false),
        };
        let db = global
            .db
            .clone()
            .unwrap_or_else(|| config.storage.database.clone());
        Ok(Context {
            config,
            configured,
            db,
        })
    }

    /// Opens (creating if needed) the device database.
    pub(crate) fn open_store(&self) -> anyhow::Result<Store> {
        Store::open(&self.db, self.config.device.timezone)
            .with_context(|| format!("cannot open the database {}", self.db.display()))
    }

    /// Opens the device database, which must exist already (commands that read it);
    /// `advice` says how to get one.
    pub(crate) fn open_existing_store(&self, advice: &str) -> anyhow::Result<Store> {
        anyhow::ensure!(
            self.db.is_file(),
            "{}: no such database ({advice})",
            self.db.display()
        );
        self.open_store()
    }

    /// The zone named by a `--timezone` option, or the device's.
    pub(crate) fn timezone(&self, option: Option<&str>) -> anyhow::Result<Tz> {
        match option {
            Some(name) => hydrowatch_config::parse_timezone(name)
                .map_err(|e| anyhow::anyhow!("--timezone {e}")),
            None => Ok(self.config.device.timezone),
        }
    }
}

/// Parses a time option (`2024-07-01`, meaning its local midnight, or `2024-07-01 06:00`, or with
/// an offset) in `tz`; errors name the option `--{name}`.
pub(crate) fn parse_local_time(
    text: &str,
    tz: Tz,
    name: &str,
) -> anyhow::Result<hydrowatch_core::Timestamp> {
    let full = if text.trim().len() == 10 {
        format!("{} 00:00", text.trim())
    } else {
        text.to_string()
    };
    hydrowatch_core::LocalTimeParser::new(tz)
        .parse(&full)
        .with_context(|| format!("--{name} {text:?}"))
}

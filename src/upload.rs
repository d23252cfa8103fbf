//! `hydrowatch upload`: sends the outbox to the central server now, oldest first, as the daemon's
//! uplink does; what is not acknowledged stays for the next time.

use std::time::Duration;

use hydrowatch_edge::{Uplink, UplinkConfig};

use crate::context::Context;
use crate::global::Global;

/// `hydrowatch upload`
pub(crate) fn run(global: &Global) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    let Some(server) = &ctx.config.server else {
        anyhow::bail!(
            "no central server is configured: add a [server] section (url, token) to the configuration (see `hydrowatch config example`)"
        );
    };
    let mut store = ctx.open_existing_store("import or record readings first")?;
    let mut uplink = Uplink::new(UplinkConfig {
        batch: 100,
        timeout: Duration::from_secs(30),
        ..UplinkConfig::of(server, &ctx.config.device.id)
    })?;
    let result = uplink.flush(&mut store);
    let waiting = store.outbox_stats()?.rows;
    match result {
        Ok(sent) => {
            println!(
                "{} messages ({:.1} kB) delivered to {}; {waiting} waiting{}",
                sent.delivered,
                sent.bytes as f64 / 1000.0,
                server.url,
                match sent.capped {
                    Some(_) => " (held back by the bandwidth cap: run it again later)",
                    None => "",
                }
            );
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "{waiting} messages wait in the outbox of {} for the next try",
            ctx.db.display()
        ))),
    }
}

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
    let uplink = Uplink::new(UplinkConfig {
        url: server.url.clone(),
        token: server.token.clone(),
        device_id: ctx.config.device.id.clone(),
        batch: 100,
        timeout: Duration::from_secs(30),
    })?;
    let result = uplink.flush(&mut store);
    let waiting = store.outbox_stats()?.rows;
    match result {
        Ok(sent) => {
            println!(
                "{sent} messages delivered to {}; {waiting} waiting",
                server.url
            );
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "{waiting} messages wait in the outbox of {} for the next try",
            ctx.db.display()
        ))),
    }
}

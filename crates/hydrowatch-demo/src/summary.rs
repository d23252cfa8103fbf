//! The demo's summary, read back from the central server and the device databases.

use std::collections::BTreeMap;

use hydrowatch_core::time::{for_people, format_local};
use hydrowatch_protocol::AlarmRecord;
use hydrowatch_sim::SERIES;
use hydrowatch_store::Store;

use super::{DemoError, Device};

/// Prints what the devices stored and delivered, how soon each event was alarmed, and the
/// forecasts' day-ahead accuracy.
pub(super) fn summary(devices: &[Device], server: &hydrowatch_server::Db) -> Result<(), DemoError> {
    let transitions = server.alarms(&hydrowatch_server::db::AlarmFilter::default())?;
    println!(
        "| device | readings | alarms (stage 1 / 2 / 3 / 4) | delivered | forecasts | newest flow model | day-ahead MAE flow | MAPE flow |"
    );
    println!("| --- | ---: | --- | ---: | ---: | --- | ---: | ---: |");
    let mut event_lines = Vec::new();
    for d in devices {
        let store = Store::open(&d.db, d.dma.tz)?;
        let readings: u64 = SERIES
            .iter()
            .map(|s| store.series_id(s).and_then(|id| store.count(id)))
            .sum::<Result<u64, _>>()?;
        let alarms = store.alarms(false)?;
        let highest = highest_stages(&transitions, d.dma.id);
        let mut by_stage = [0u64; 4];
        for stage in highest.values() {
            if let Some(n) = usize::from(*stage)
                .checked_sub(1)
                .and_then(|i| by_stage.get_mut(i))
            {
                *n += 1;
            }
        }
        let forecasts = server.forecasts(d.dma.id, None, 10_000)?;
        let model = forecasts
            .iter()
            .find(|f| f.series == "flow_rate")
            .map_or("-", |f| f.model.as_str());
        let accuracy = server.accuracy(d.dma.id, 7)?;
        let flow = accuracy.iter().find(|a| a.series == "flow_rate");
        let fmt = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.1}{unit}"));
        println!(
            "| {} | {} | {} / {} / {} / {} | {} of {} | {} | {} | {} | {} |",
            d.dma.id,
            readings,
            by_stage[0],
            by_stage[1],
            by_stage[2],
            by_stage[3],
            highest.len(),
            alarms.len(),
            forecasts.len(),
            model,
            fmt(flow.and_then(|a| a.mae), " m3/h"),
            fmt(flow.and_then(|a| a.mape), "%"),
        );
        for e in &d.events {
            let first = alarms
                .iter()
                .filter(|a| {
                    a.opened_at >= e.start && a.opened_at < e.end && a.series == "flow_rate"
                })
                .min_by_key(|a| a.opened_at);
            let found = match first {
                Some(a) => format!(
                    "{} alarm (reached stage {}) {} after it began",
                    a.kind,
                    highest.get(&(a.id as u64)).copied().unwrap_or_default(),
                    for_people((a.opened_at - e.start) as f64)
                ),
                None => "no alarm".into(),
            };
            event_lines.push(format!(
                "  {:<12} {:<6} from {}: {found}",
                d.dma.id,
                e.kind.label(),
                format_local(e.start, d.dma.tz),
            ));
        }
    }
    println!("\nThe injected events and the first alarm raised during each:");
    for line in event_lines {
        println!("{line}");
    }
    Ok(())
}

/// The highest stage each alarm of `device` reached, by alarm id, as the server has it.
fn highest_stages(transitions: &[AlarmRecord], device: &str) -> BTreeMap<u64, u8> {
    let mut highest = BTreeMap::new();
    for t in transitions.iter().filter(|t| t.device_id == device) {
        let s = highest.entry(t.alert.alarm_id).or_default();
        *s = t.alert.outlier_stage.max(*s);
    }
    highest
}

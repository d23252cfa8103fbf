//! PNG plots for people: the learning curve of a training, and the day-ahead forecast against
//! what happened over the test span. Text is drawn with DejaVu Sans embedded in the binary
//! (assets/fonts, with its licence), so plots work on a device without any font installed.

use std::path::Path;
use std::sync::Once;

use anyhow::anyhow;
use chrono_tz::Tz;
use hydrowatch_core::Timestamp;
use hydrowatch_core::time::format_local;
use hydrowatch_forecast::neural::EpochLog;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            unreachable!("the embedded font is a valid TrueType file");
        }
    });
}

fn err(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw {}: {e}", path.display())
}

/// Draws the legend and writes the file.
fn finish<'a, X, Y>(
    mut chart: ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    root: &DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>,
    path: &Path,
) -> anyhow::Result<()>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// Picks one loss out of an epoch's log.
type LossOf = fn(&EpochLog) -> f64;

/// Training and validation loss per epoch, one pair of lines per network.
pub(crate) fn learning_curve(
    log: &[Vec<EpochLog>],
    title: &str,
    path: &Path,
) -> anyhow::Result<()> {
    register_font();
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let epochs = log.iter().map(Vec::len).max().unwrap_or(1).max(2);
    let losses = log
        .iter()
        .flatten()
        .flat_map(|e| [e.train_loss, e.val_loss])
        .filter(|v| v.is_finite());
    let hi = losses.fold(0.0f64, f64::max);
    let hi = if hi > 0.0 { hi * 1.05 } else { 1.0 };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(1usize..epochs, 0.0..hi)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss (of scaled values)")
        .y_labels(10)
        .y_label_formatter(&|v| format!("{v:.4}"))
        .draw()
        .map_err(|e| err(path, e))?;
    for (i, net) in log.iter().enumerate() {
        let label = |what: &str| {
            if log.len() > 1 {
                format!("{what}, day {}", i + 1)
            } else {
                what.to_string()
            }
        };
        let shade = |c: RGBColor| {
            if log.len() > 1 {
                c.mix(0.35 + 0.65 * (i + 1) as f64 / log.len() as f64)
            } else {
                c.mix(1.0)
            }
        };
        let kinds: [(&str, RGBColor, LossOf); 2] = [
            ("training", BLUE, |e| e.train_loss),
            ("validation", RED, |e| e.val_loss),
        ];
        for (what, color, loss) in kinds {
            let color = shade(color);
            chart
                .draw_series(LineSeries::new(
                    net.iter().map(|e| (e.epoch, loss(e))),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(path, e))?
                .label(label(what))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
    }
    finish(chart, &root, path)
}

/// One line of a time plot.
pub(crate) struct Line<'a> {
    /// Legend text.
    pub label: &'a str,
    /// Values at the plot's times (`NaN`: no value).
    pub values: &'a [f64],
    /// Colour.
    pub color: RGBColor,
}

/// Lines over hourly `times` (local dates on the axis), with an optional band.
pub(crate) fn time_plot(
    times: &[Timestamp],
    lines: &[Line<'_>],
    band: Option<(&[f64], &[f64])>,
    tz: Tz,
    title: &str,
    unit: &str,
    path: &Path,
) -> anyhow::Result<()> {
    register_font();
    let (Some(&t0), Some(&t1)) = (times.first(), times.last()) else {
        return Err(err(path, "nothing to plot"));
    };
    let all = lines
        .iter()
        .flat_map(|l| l.values.iter())
        .chain(band.iter().flat_map(|(a, b)| a.iter().chain(b.iter())));
    let (lo, hi) = all
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(t0..t1.max(t0 + 1), (lo - pad)..(hi + pad))
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_labels(12)
        .x_label_formatter(&|t| format_local(*t, tz)[..10].to_string())
        .y_desc(unit)
        .draw()
        .map_err(|e| err(path, e))?;
    if let Some((lower, upper)) = band {
        let color = RED.mix(0.15);
        let polygon: Vec<(Timestamp, f64)> = times
            .iter()
            .zip(upper)
            .map(|(t, u)| (*t, *u))
            .chain(times.iter().zip(lower).rev().map(|(t, l)| (*t, *l)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(polygon, color.filled())))
            .map_err(|e| err(path, e))?
            .label("10-90% band")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], color.filled()));
    }
    for line in lines {
        let color = line.color;
        // Split at missing values so a gap shows as a gap.
        let mut segments: Vec<Vec<(Timestamp, f64)>> = vec![Vec::new()];
        for (t, v) in times.iter().zip(line.values) {
            if v.is_finite() {
                segments.last_mut().expect("one segment").push((*t, *v));
            } else if !segments.last().expect("one segment").is_empty() {
                segments.push(Vec::new());
            }
        }
        let mut first = true;
        for seg in segments.into_iter().filter(|s| !s.is_empty()) {
            let drawn = chart
                .draw_series(LineSeries::new(seg, color.stroke_width(2)))
                .map_err(|e| err(path, e))?;
            if first {
                drawn.label(line.label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
                first = false;
            }
        }
    }
    finish(chart, &root, path)
}

/// The day-ahead forecasts against the actual values (hydrowatch-ops' `day_ahead`).
pub(crate) fn day_ahead(
    d: &hydrowatch_ops::history::DayAhead,
    tz: chrono_tz::Tz,
    title: &str,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    if d.times.is_empty() {
        return Ok(());
    }
    time_plot(
        &d.times,
        &[
            Line {
                label: "actual",
                values: &d.actual,
                color: plotters::style::BLACK,
            },
            Line {
                label: "forecast, 1-24 h ahead",
                values: &d.forecast,
                color: plotters::style::RED,
            },
        ],
        Some((&d.lower, &d.upper)),
        tz,
        &format!("{title}: day-ahead forecasts, RMSE {:.3}", d.rmse),
        "hourly mean",
        path,
    )
}

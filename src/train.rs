//! `hydrowatch train`: fits the combination (or a network alone, or the best of a few sizes),
//! saves it, and shows how it learnt and how it forecast the weeks it did not choose on.

use std::path::PathBuf;

use anyhow::bail;
use chrono_tz::Tz;
use clap::Args;
use hydrowatch_core::time::format_local;
use hydrowatch_forecast::combination::Combination;
use hydrowatch_forecast::neural::{Loss, ModelKind, NeuralConfig, Strategy};
use hydrowatch_forecast::{Fitted, Forecaster, HORIZON, Predict};
use hydrowatch_ops::models;

use crate::context::Context;
use crate::forecasting::{InputArgs, fit_with_bar, model_names, network};
use crate::global::Global;

/// `hydrowatch train`
#[derive(Debug, Args)]
#[command(
    after_help = "Example (the prototype's options):\n  hydrowatch train --input dma_01.csv --timezone Europe/Rome --model-dir models/dma_01 -w 48 -e 30 -b 64\n\n\
The default model is the combination: the seasonal blend, MSTL+ETS and an LSTM, each day ahead \
weighted by how well each forecast the last 4 weeks (the network is trained on the history \
before them). --model lstm|gru|rnn|transformer trains a network alone. Writes into DIR: \
combination.json (members, weights, band) and network/ for a combination, model.json and the \
weights (net*.bpk) for a network, with loss_history.csv, learning_curve.png and \
test_forecast.png (the forecasts 1-24 hours ahead over the weeks no choice was made on, against \
what happened). A network uses the file's windows in time order: 80% to train, 10% to stop \
early, 10% to test; the scores are printed."
)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Folder to write the trained model into.
    #[arg(long, value_name = "DIR")]
    pub model_dir: PathBuf,
    /// The model: the combination (default), or a network alone (the combination's network is
    /// an LSTM, shaped by the options below).
    #[arg(long, default_value = "combination", value_parser = model_names("combination"))]
    pub model: String,
    /// How a network produces the 168 hours.
    #[arg(long, value_enum, default_value = "mimo")]
    pub strategy: Strategy,
    /// Hours of input the network reads.
    #[arg(short = 'w', long, default_value_t = 48, value_parser = clap::value_parser!(u32).range(1..=2016))]
    pub window: u32,
    /// Hours forecast (the device forecasts 168; kept for the prototype's scripts).
    #[arg(short = 'p', long, default_value_t = 168)]
    pub horizon: usize,
    /// Most epochs (training stops earlier when validation stops improving).
    #[arg(short = 'e', long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub epochs: u32,
    /// Windows per mini-batch.
    #[arg(short = 'b', long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch: u32,
    /// The original prototype's network alone: 2 LSTM layers of 50 units, SGD (lr 0.01,
    /// momentum 0.9).
    #[arg(long, conflicts_with_all = ["model", "tune", "loss"])]
    pub prototype: bool,
    /// Try a few sizes and windows of a network alone; keep the best on validation.
    #[arg(long)]
    pub tune: bool,
    /// Seed: the same seed and data give the same model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// What training minimises: l1 (absolute error, what PI1 and PI3 score) or mse (squared
    /// error, the prototype's). --prototype always uses mse.
    #[arg(long, value_enum, default_value = "l1")]
    pub loss: Loss,
}

/// The network configuration the options describe (the combination's network member, or a
/// network alone).
fn neural_config(args: &TrainArgs) -> anyhow::Result<NeuralConfig> {
    let strategy = args.strategy;
    let mut config = if args.prototype {
        NeuralConfig {
            strategy,
            ..NeuralConfig::prototype()
        }
    } else {
        let kind = match args.model.as_str() {
            "combination" => ModelKind::Lstm,
            other => other.parse().map_err(anyhow::Error::msg)?,
        };
        let mut config = NeuralConfig::new(kind, strategy);
        config.train.loss = args.loss;
        config
    };
    config.window = args.window as usize;
    config.train.epochs = args.epochs as usize;
    config.train.batch = args.batch as usize;
    config.train.seed = args.seed;
    Ok(config)
}

/// The forecaster `hydrowatch train` fits: candidates (several with --tune).
fn train_candidates(args: &TrainArgs) -> anyhow::Result<Vec<Forecaster>> {
    let base = neural_config(args)?;
    if args.model == "combination" && !args.prototype {
        if args.tune {
            bail!(
                "--tune tries sizes of a network alone: give --model lstm (or gru, rnn, transformer)"
            );
        }
        return Ok(vec![Forecaster::Combination(Combination {
            network: Some(base),
            ..Combination::default()
        })]);
    }
    if !args.tune {
        return Ok(vec![Forecaster::Network(base)]);
    }
    let mut c = Vec::new();
    for window in [24, 48, 168] {
        for units in [32, 64] {
            c.push(Forecaster::Network(NeuralConfig {
                window,
                units,
                ..base.clone()
            }));
        }
    }
    Ok(c)
}

/// `hydrowatch train`
pub(crate) fn train(global: &Global, args: TrainArgs) -> anyhow::Result<()> {
    let ctx = Context::load(global)?;
    if args.horizon != HORIZON {
        bail!(
            "-p {}: hydrowatch models forecast {HORIZON} hours (7 days); leave -p out or give 168",
            args.horizon
        );
    }
    let (history, source) = args.input.history(&ctx)?;
    let candidates = train_candidates(&args)?;
    let mut best: Option<(f64, Fitted)> = None;
    for (i, candidate) in candidates.iter().enumerate() {
        let label = match (candidates.len(), network(candidate)) {
            (1, _) | (_, None) => candidate.name(),
            (n, Some(c)) => format!(
                "{} w={} units={} ({}/{n})",
                candidate.name(),
                c.window,
                c.units,
                i + 1
            ),
        };
        let fitted = fit_with_bar(candidate, &history, &label)?;
        let score = match &fitted {
            Fitted::Network(n) => n.report.validation.selection(),
            _ => 0.0,
        };
        if candidates.len() > 1 {
            println!("{label}: validation PI1 + PI3 {score:.3}");
        }
        if best.as_ref().is_none_or(|(b, _)| score < *b) {
            best = Some((score, fitted));
        }
    }
    let (_, fitted) = best.expect("at least one candidate");
    models::save_model(&fitted, &history, &args.model_dir)?;
    println!(
        "fitted {} on {} hours of {source}",
        fitted.name(),
        history.series.values.len()
    );
    let from = match &fitted {
        Fitted::Combination(c) => {
            print_combination(c, history.timezone);
            c.report.from
        }
        _ => 0,
    };
    if let Some((net, folder)) = models::network_of(&fitted, &args.model_dir) {
        let title = format!(
            "{} ({} epochs, batch {})",
            net.name(),
            net.report.epochs.iter().max().unwrap_or(&0),
            net.config.train.batch
        );
        crate::plot::learning_curve(
            &net.log,
            &format!("learning curve: {title}"),
            &folder.join("learning_curve.png"),
        )?;
        let r = &net.report;
        println!(
            "trained {} (window {} h, {} units) on {} hours of {} in {:.1} s: {} training, {} validation, {} test windows; epochs {:?}",
            net.name(),
            net.config.window,
            net.config.units,
            (r.to - r.from) / 3600,
            source,
            r.seconds,
            r.windows[0],
            r.windows[1],
            r.windows[2],
            r.epochs
        );
        if !r.network_days.is_empty() {
            let days: Vec<&str> = r
                .network_days
                .iter()
                .enumerate()
                .map(|(day, n)| match (n, day) {
                    (false, _) => "blend",
                    (true, 0) => "network",
                    (true, _) => "network+blend",
                })
                .collect();
            println!(
                "day by day (the network where it beat the seasonal blend on validation; after day 1 half each): {}",
                days.join(", ")
            );
        }
        println!(
            "validation: PI1 {:.3}  PI2 {:.3}  PI3 {:.3}  RMSE {:.3}  MAPE {:.1}%",
            r.validation.pi1,
            r.validation.pi2,
            r.validation.pi3,
            r.validation.rmse,
            r.validation.mape
        );
        if let Some(t) = r.test {
            println!(
                "test:       PI1 {:.3}  PI2 {:.3}  PI3 {:.3}  RMSE {:.3}  MAPE {:.1}%",
                t.pi1, t.pi2, t.pi3, t.rmse, t.mape
            );
        }
    }
    let from = match &fitted {
        Fitted::Network(n) => n.report.test_from,
        _ => from,
    };
    crate::plot::day_ahead(
        &hydrowatch_ops::history::day_ahead(&fitted, &history, from)?,
        history.timezone,
        &fitted.name(),
        &args.model_dir.join("test_forecast.png"),
    )?;
    println!("model written to {}", args.model_dir.display());
    Ok(())
}

/// The combination's members, weights and errors, day by day.
fn print_combination(c: &hydrowatch_forecast::combination::FittedCombination, tz: Tz) {
    let r = &c.report;
    println!(
        "combination of {} fitted on the forecasts from {} local midnights, {} to {}",
        c.members.join(", "),
        r.origins,
        format_local(r.from, tz),
        format_local(r.to, tz)
    );
    if let Some(why) = &r.without_network {
        println!("without a network: {why}");
    }
    println!(
        "its 10-90% band: the residuals of those forecasts, widened {:.2}x (what this series' last weeks asked for)",
        r.widening
    );
    let header: Vec<String> = c.members.iter().map(|m| format!("{m:>16}")).collect();
    println!(
        "day   weights {}   MAE {} combination",
        header.join(""),
        header.join("")
    );
    for (day, w) in c.weights.iter().enumerate() {
        let weights: Vec<String> = w.iter().map(|w| format!("{w:>16.2}")).collect();
        let mae: Vec<String> = r
            .member_mae
            .iter()
            .map(|m| format!("{:>16.3}", m[day]))
            .collect();
        println!(
            "{:>3}           {}       {} {:>11.3}",
            day + 1,
            weights.join(""),
            mae.join(""),
            r.combined_mae[day]
        );
    }
}

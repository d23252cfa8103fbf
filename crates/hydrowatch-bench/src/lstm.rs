//! `hydrowatch bench lstm-step`: the training step of burn's LSTM and of the fused one, and
//! Keras's in the same run.

use std::path::PathBuf;

use crate::Context as _;
use clap::Args;

/// `hydrowatch bench lstm-step`
#[derive(Debug, Args)]
#[command(
    after_help = "Side by side with Keras (TensorFlow CPU) in one run:\n  \
python3 -m venv .venv-peers && .venv-peers/bin/pip install tensorflow-cpu\n  \
hydrowatch bench lstm-step --python .venv-peers/bin/python --keras-script ../shared/peers/keras_lstm_step.py"
)]
pub struct LstmStepArgs {
    /// Sequence length.
    #[arg(long, default_value_t = 168)]
    pub seq: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Hidden units.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Python with TensorFlow, to time the Keras reference in the same run.
    #[arg(long, value_name = "PYTHON")]
    pub python: Option<PathBuf>,
    /// The Keras reference script.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "../shared/peers/keras_lstm_step.py"
    )]
    pub keras_script: PathBuf,
}

/// `hydrowatch bench lstm-step`: burn's step time, and Keras's in the same run when asked.
pub fn run(args: LstmStepArgs) -> crate::Result<()> {
    use hydrowatch_forecast::bench::{Layer, train_step_ms};
    let step = |layer| train_step_ms(layer, args.batch, args.seq, args.hidden, args.steps);
    let (fused_ms, stock_ms) = (step(Layer::FusedLstm), step(Layer::StockLstm));
    println!(
        "batch={} seq={} hidden={}, mean of {} steps after one warm-up:",
        args.batch, args.seq, args.hidden, args.steps
    );
    println!("burn 0.22.1 nn::Lstm (flex CPU): {stock_ms:.1} ms per training step");
    println!("hydrowatch fused LSTM (flex CPU): {fused_ms:.1} ms per training step");
    println!(
        "ratio stock / fused: {:.2} (the fused cell is that many times faster)",
        stock_ms / fused_ms
    );
    let (fused_gru, stock_gru) = (step(Layer::FusedGru), step(Layer::StockGru));
    println!(
        "GRU, same configuration: burn nn::Gru {stock_gru:.1} ms, hydrowatch fused GRU {fused_gru:.1} ms (ratio {:.2})",
        stock_gru / fused_gru
    );
    if let Some(python) = &args.python {
        let out = std::process::Command::new(python)
            .arg(&args.keras_script)
            .env("SEQ", args.seq.to_string())
            .env("BATCH", args.batch.to_string())
            .env("HIDDEN", args.hidden.to_string())
            .env("STEPS", args.steps.to_string())
            .output()
            .with_context(|| format!("cannot run {}", python.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains("ms")).with_context(|| {
            format!(
                "the Keras script printed no timing: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let keras_ms: f64 = line
            .rsplit(':')
            .next()
            .and_then(|t| t.trim().trim_end_matches("ms").trim().parse().ok())
            .with_context(|| format!("cannot read the Keras timing from {line:?}"))?;
        println!("{line}");
        println!(
            "ratio Keras / fused: {:.2} (above 1: hydrowatch is faster than Keras)",
            keras_ms / fused_ms
        );
        println!(
            "ratio Keras / stock: {:.2} (burn's own nn::Lstm)",
            keras_ms / stock_ms
        );
    }
    Ok(())
}

//! `hydrowatch train-worker` (internal, not in `--help`): carries out one training order for the
//! daemon in a process of its own (hydrowatch-edge's `daemon::training`): the order as JSON on
//! stdin, the answer as JSON on stdout, one line per epoch on stderr. It runs at the lowest
//! priority and is killed by the kernel when the daemon that started it dies.

use std::io::Read;

use anyhow::Context as _;
use hydrowatch_forecast::neural::EpochLog;
use hydrowatch_forecast::{Forecaster, History};
use hydrowatch_ops::training::{Answer, Order, carry_out};

/// The largest order read (ten years of hourly values take 2 MB).
const ORDER_LIMIT: u64 = 64 << 20;

/// Runs the worker.
pub(crate) fn run() -> anyhow::Result<()> {
    follow_parent();
    let mut text = String::new();
    std::io::stdin()
        .take(ORDER_LIMIT)
        .read_to_string(&mut text)
        .context("cannot read the training order on stdin")?;
    let order: Order = serde_json::from_str(&text).with_context(|| {
        format!(
            "the training order on stdin cannot be read: {:?}",
            text.chars().take(40).collect::<String>()
        )
    })?;
    let train = |f: &Forecaster, h: &History| {
        eprintln!(
            "training {} on {} hours",
            f.name(),
            h.series
                .values
                .len()
                .min(hydrowatch_forecast::neural::MAX_TRAINING_HOURS)
        );
        f.fit_with_progress(h, |net, e: &EpochLog| {
            eprintln!(
                "net {} epoch {}: train {:.5} val {:.5} lr {:.1e}",
                net + 1,
                e.epoch,
                e.train_loss,
                e.val_loss,
                e.learning_rate
            );
        })
    };
    let answer = Answer::from(carry_out(&order, &train));
    println!("{}", serde_json::to_string(&answer)?);
    Ok(())
}

/// The lowest priority (nice 19), and death with the parent (`PR_SET_PDEATHSIG`): a daemon
/// killed mid-training leaves no orphan training on.
fn follow_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl and setpriority on this process only, with no pointers; getppid reads.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // The parent may have died before prctl: then this process was handed to init.
        if libc::getppid() == 1 {
            std::process::exit(1);
        }
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

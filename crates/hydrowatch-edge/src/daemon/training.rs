//! Training in a child process, both halves: the jobs thread hands each [`Order`] to `hydrowatch
//! train-worker` (the program in `Daemon::worker`, which calls [`worker`]) on its stdin and reads
//! the [`Answer`] from its stdout. The child trains at the lowest priority on one thread, never opens the database, and
//! writes only the order's fresh folder, which the jobs thread renames into place; its memory
//! (up to 90 MB for two years of history) returns to the system when it exits, where a daemon that
//! trained itself kept 160-200 MB for good.
//!
//! Invariants: at most one child at a time (the jobs thread waits for it); a child killed by
//! anyone, or failing, is a failed job (the model in use stays, the job runs again at its
//! retry); a daemon that stops kills its child; a child whose daemon died is killed by the
//! kernel (`PR_SET_PDEATHSIG`, set by the child).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hydrowatch_forecast::neural::{EpochLog, MAX_TRAINING_HOURS};
use hydrowatch_forecast::{Forecaster, History};
use hydrowatch_ops::error::JobError;
use hydrowatch_ops::training::{Answer, Order, Outcome, carry_out};

use super::Shared;

/// The command of the `hydrowatch` binary that carries out one order.
pub const WORKER_COMMAND: &str = "train-worker";

/// The most a worker's answer may hold (it is a few hundred bytes).
const ANSWER_LIMIT: u64 = 1 << 20;

/// The largest order a worker reads (ten years of hourly values take 2 MB).
const ORDER_LIMIT: u64 = 64 << 20;

/// How a child ended.
struct Ended {
    /// Its exit status, as `waitpid` gives it.
    status: libc::c_int,
    /// Its peak resident memory, bytes.
    peak_bytes: u64,
}

/// Carries out `order` in a child process of `exe`, logging its lines as they come.
pub(super) fn in_child(shared: &Shared, exe: &Path, order: &Order) -> Result<Outcome, JobError> {
    let failed = |why: String| JobError::Worker(format!("training {}: {why}", order.series));
    let request = serde_json::to_vec(order).map_err(|e| failed(e.to_string()))?;
    let mut child = Command::new(exe)
        .arg(WORKER_COMMAND)
        .env("RAYON_NUM_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", exe.display())))?;
    let started = Instant::now();
    let m = &shared.metrics;
    m.training.store(1, Ordering::Relaxed);
    let pid = child.id() as libc::pid_t;
    tracing::info!(series = %order.series, pid, "training in a child process");
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let ended = std::thread::scope(|scope| {
        // The order is written while the child reads it (it may exceed a pipe's 64 KB).
        scope.spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(&request);
            }
        });
        let log = scope.spawn(move || {
            for line in BufReader::new(stderr?).lines().map_while(Result::ok) {
                if line.contains("epoch") {
                    shared
                        .metrics
                        .training_epochs
                        .fetch_add(1, Ordering::Relaxed);
                }
                tracing::info!(series = %order.series, "worker: {line}");
            }
            Some(())
        });
        let answer = scope.spawn(move || {
            let mut text = String::new();
            stdout?.take(ANSWER_LIMIT).read_to_string(&mut text).ok()?;
            Some(text)
        });
        let ended = wait(shared, pid);
        let _ = log.join();
        (ended, answer.join().ok().flatten())
    });
    m.training.store(0, Ordering::Relaxed);
    let (ended, answer) = ended;
    let ended = ended.map_err(|e| failed(format!("cannot wait for the worker: {e}")))?;
    m.training_runs.fetch_add(1, Ordering::Relaxed);
    m.training_peak_bytes
        .store(ended.peak_bytes, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        series = %order.series,
        seconds,
        peak_mb = ended.peak_bytes as f64 / 1e6,
        "the training process ended"
    );
    if libc::WIFSIGNALED(ended.status) {
        return Err(failed(format!(
            "the worker was killed by signal {} after {seconds:.1} s; the model in use (if any) stays",
            libc::WTERMSIG(ended.status)
        )));
    }
    if !libc::WIFEXITED(ended.status) || libc::WEXITSTATUS(ended.status) != 0 {
        return Err(failed(format!(
            "the worker failed (exit status {}); the model in use (if any) stays",
            libc::WEXITSTATUS(ended.status)
        )));
    }
    let answer = answer.unwrap_or_default();
    let answer: Answer = serde_json::from_str(answer.trim()).map_err(|e| {
        failed(format!(
            "the worker's answer cannot be read ({e}): {:?}",
            answer.chars().take(80).collect::<String>()
        ))
    })?;
    answer.into()
}

/// Waits for the child `pid` to end, polling so that a stopping daemon kills it; reaps it with
/// its resource usage.
fn wait(shared: &Shared, pid: libc::pid_t) -> std::io::Result<Ended> {
    let mut killed = false;
    // From 1 ms doubling to 50 ms: a worker that answers at once (a history too short, each day
    // of a young device's first weeks) is not held up by the polling.
    let mut pause = Duration::from_millis(1);
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value of the plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with pointers to locals that outlive the call.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            return Ok(Ended {
                status,
                // ru_maxrss is in kilobytes on Linux.
                peak_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
            });
        }
        if done < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if shared.stopping() && !killed {
            tracing::info!(pid, "stopping: the training process is killed");
            // SAFETY: kill sends a signal to our own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The worker (`hydrowatch train-worker`): at the lowest priority and bound to die with its
/// parent, reads one order on stdin, carries it out with one line per epoch on stderr, and
/// writes the answer on stdout. An order that cannot be read is an error (exit status 1).
pub fn worker() -> Result<(), JobError> {
    follow_parent();
    let mut text = String::new();
    std::io::stdin()
        .take(ORDER_LIMIT)
        .read_to_string(&mut text)
        .map_err(|e| JobError::Worker(format!("cannot read the training order on stdin: {e}")))?;
    let order: Order = serde_json::from_str(&text).map_err(|e| {
        JobError::Worker(format!(
            "the training order on stdin cannot be read: {e}: {:?}",
            text.chars().take(40).collect::<String>()
        ))
    })?;
    let train = |f: &Forecaster, h: &History| {
        let hours = h.series.values.len().min(MAX_TRAINING_HOURS);
        eprintln!("training {} on {hours} hours", f.name());
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
    let answer = serde_json::to_string(&Answer::from(carry_out(&order, &train)))
        .map_err(|e| JobError::Worker(e.to_string()))?;
    println!("{answer}");
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

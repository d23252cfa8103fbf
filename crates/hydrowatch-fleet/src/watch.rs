//! What `bench fleet` watches: each message from its enqueue on a device to the moment it is
//! seen stored in the server's database (polled every 100 ms, so latencies are that coarse),
//! and the CPU and memory of the processes taking part.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The messages enqueued and not yet seen stored, those that left their outbox, and the
/// latencies of those seen.
pub struct Pending {
    waiting: Mutex<HashMap<String, Instant>>,
    seen: Mutex<HashSet<String>>,
    /// Acknowledged (by the server or the broker): gone from their outbox.
    left: Mutex<HashSet<String>>,
    latencies: Mutex<Histogram<u64>>,
    /// Messages enqueued on the devices.
    pub enqueued: AtomicU64,
    /// Messages seen stored.
    pub stored: AtomicU64,
}

impl Default for Pending {
    fn default() -> Pending {
        Pending {
            waiting: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashSet::new()),
            left: Mutex::new(HashSet::new()),
            latencies: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid histogram bounds"),
            ),
            enqueued: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        }
    }
}

impl Pending {
    /// A message enqueued at `at`.
    pub fn add(&self, message_id: &str, at: Instant) {
        self.enqueued.fetch_add(1, Ordering::Relaxed);
        lock(&self.waiting).insert(message_id.to_string(), at);
    }

    /// A message seen stored at `now` (seen again: ignored).
    fn stored(&self, message_id: &str, now: Instant) {
        if !lock(&self.seen).insert(message_id.to_string()) {
            return;
        }
        if let Some(at) = lock(&self.waiting).remove(message_id) {
            self.stored.fetch_add(1, Ordering::Relaxed);
            let ms = now.duration_since(at).as_millis().clamp(1, 3_600_000) as u64;
            let _ = lock(&self.latencies).record(ms);
        }
    }

    /// A message acknowledged: it left its outbox.
    pub fn left_outbox(&self, message_id: &str) {
        lock(&self.left).insert(message_id.to_string());
    }

    /// Messages in the outboxes: enqueued and not yet acknowledged.
    pub fn in_outboxes(&self) -> u64 {
        self.enqueued.load(Ordering::Relaxed) - lock(&self.left).len() as u64
    }

    /// Messages enqueued and not seen stored.
    pub fn missing(&self) -> u64 {
        lock(&self.waiting).len() as u64
    }

    /// Messages lost: acknowledged (gone from their outbox) and not seen stored. The others
    /// missing are still in an outbox.
    pub fn lost(&self) -> u64 {
        let left = lock(&self.left);
        lock(&self.waiting)
            .keys()
            .filter(|id| left.contains(*id))
            .count() as u64
    }

    /// The latency quantile `q` in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> u64 {
        lock(&self.latencies).value_at_quantile(q)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `db` every 100 ms for the messages of this run stored in the last seconds, until
/// `stop`.
pub fn observe(
    db: &hydrowatch_server::Db,
    prefix: &str,
    pending: &Pending,
    stop: &std::sync::atomic::AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let since = chrono::Utc::now().timestamp() - 3;
        match db.message_ids_received_since(since, prefix) {
            Ok(ids) => {
                let now = Instant::now();
                for id in ids {
                    pending.stored(&id, now);
                }
            }
            Err(e) => tracing::warn!("bench fleet: cannot poll the server's database: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CPU seconds and peak memory of a group of processes.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    /// CPU seconds (user + system) over the run.
    pub cpu_seconds: f64,
    /// The largest sum of the group's proportional set sizes (shared pages split among their
    /// users), bytes.
    pub peak_bytes: u64,
    last_ticks: HashMap<u32, u64>,
}

impl Usage {
    /// Samples `pids`: adds the CPU used since the last sample, raises the peak.
    pub fn sample(&mut self, pids: &[u32]) {
        let tick = clock_ticks();
        let mut bytes = 0;
        for &pid in pids {
            let Some(ticks) = cpu_ticks(pid) else {
                continue;
            };
            let before = self.last_ticks.insert(pid, ticks).unwrap_or(0);
            self.cpu_seconds += ticks.saturating_sub(before) as f64 / tick;
            bytes += pss_bytes(pid).unwrap_or(0);
        }
        self.peak_bytes = self.peak_bytes.max(bytes);
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of `pid` in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces), from the third on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The proportional set size of `pid`, bytes.
fn pss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The processes named `name` (their `comm`), e.g. every process of a local PostgreSQL.
pub fn processes_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .collect()
}

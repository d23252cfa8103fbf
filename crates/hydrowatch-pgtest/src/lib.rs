//! A throwaway PostgreSQL cluster for tests, so that the central server's tests run on a real
//! PostgreSQL as well as on SQLite. The first call of [`database`] in a test process runs the
//! installed `initdb` into a fresh directory and starts `postgres` on a free port of 127.0.0.1;
//! every call creates an empty database on it and returns its URL.
//!
//! Invariants: the cluster dies with the test process (it is started from a thread that never
//! ends, with the parent-death signal set, so even a killed test run leaves no server behind);
//! its directory is removed by the next run; as root (CI) the cluster runs as the `postgres`
//! user, since PostgreSQL refuses to run as root. Durability settings are off: tests check
//! behaviour, the benchmarks run on a normally configured server.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const USER: &str = "hw";
const PREFIX: &str = "hydrowatch-pgtest-";

struct Cluster {
    port: u16,
}

/// A new, empty database on this process's cluster (started on first use); its URL.
///
/// Panics with what to install when PostgreSQL is missing, or with PostgreSQL's own output when
/// the cluster cannot start: tests that need it fail, they are not skipped.
pub fn database() -> String {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = CLUSTER.get_or_init(start);
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut admin = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls)
        .expect("the test cluster answers");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("a test database can be created");
    cluster.url(&name)
}

impl Cluster {
    fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }
}

/// The directory of the installed server programs: `HYDROWATCH_PG_BIN`, else the newest
/// /usr/lib/postgresql/*/bin (Debian), else the PATH.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HYDROWATCH_PG_BIN") {
        return Some(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
    })
}

/// (uid, gid) to run the cluster as: ours, or the `postgres` user's when we are root.
fn account() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions; getpwnam returns NULL or a pointer to a static entry
    // read at once, before any other call could overwrite it.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !pw.is_null(),
            "running as root, and there is no `postgres` user to run the test cluster as (apt-get install postgresql creates it)"
        );
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn command(program: &Path, account: Option<(u32, u32)>, die_with_parent: bool) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LC_ALL", "C").env_remove("PGDATA");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = account
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // After setuid, which clears it.
            if die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Removes the directories of earlier runs whose process is gone.
fn remove_stale(tmp: &Path) {
    for e in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn start() -> Cluster {
    let bin = bin_dir().expect(
        "PostgreSQL is not installed, and the server's tests run on it: apt-get install postgresql \
         (.ci/run installs it), or point HYDROWATCH_PG_BIN at the directory holding initdb and postgres",
    );
    let account = account();
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the test cluster's directory can be made");
    if let Some((uid, gid)) = account {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .expect("chown of the cluster directory");
    }
    let data = dir.join("data");
    let out = command(&bin.join("initdb"), account, false)
        .args([
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
            "-U",
            USER,
            "-D",
        ])
        .arg(&data)
        .output()
        .expect("initdb runs");
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log = std::fs::File::create(dir.join("postgres.log")).expect("the cluster's log file");
    let mut server = command(&bin.join("postgres"), account, true);
    server
        .arg("-D")
        .arg(&data)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-k",
        ])
        .arg(&dir)
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ])
        .args(["-c", "max_connections=500"])
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log);
    // The parent-death signal is sent when the *thread* that started the child ends: this one
    // lives as long as the process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let child = server.spawn();
        let ok = child.is_ok();
        tx.send(child.map(|_| ()).map_err(|e| e.to_string())).ok();
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv()
        .expect("the starter thread answers")
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.join("postgres").display()));
    let cluster = Cluster { port };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls) {
            Ok(_) => return cluster,
            Err(e) if Instant::now() > deadline => panic!(
                "the test cluster did not come up ({e}); its log: {}",
                std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_call_gives_an_empty_database_that_takes_writes() {
        let (a, b) = (super::database(), super::database());
        assert_ne!(a, b);
        let mut c = postgres::Client::connect(&a, postgres::NoTls).unwrap();
        c.batch_execute("CREATE TABLE x (v BIGINT); INSERT INTO x VALUES (7)")
            .unwrap();
        let v: i64 = c.query_one("SELECT v FROM x", &[]).unwrap().get(0);
        assert_eq!(v, 7);
        let mut d = postgres::Client::connect(&b, postgres::NoTls).unwrap();
        let n: i64 = d
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'x'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "the other database is empty");
    }
}

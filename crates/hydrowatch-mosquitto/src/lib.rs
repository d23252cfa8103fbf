//! A Mosquitto broker of its own, for the tests and `hydrowatch bench fleet`: the installed
//! `mosquitto` (Debian's package) started on a free port of 127.0.0.1 with a generated
//! configuration in a fresh directory, with persistence, so that a restart keeps the sessions
//! and the messages queued for them.
//!
//! Invariants: the broker dies with the process that started it (the parent-death signal), and
//! is killed when its [`Broker`] is dropped; [`Broker::restart`] stops it with SIGTERM (Mosquitto
//! then writes its persistence file) and starts it again on the same port and directory.

use std::io::Read as _;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the broker is set up.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Mosquitto's password file; without it, anyone may connect.
    pub password_file: Option<PathBuf>,
    /// Mosquitto's ACL file.
    pub acl_file: Option<PathBuf>,
    /// Listen with TLS: the certificate chain and key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Ask for a client certificate signed by this CA (PEM).
    pub require_certificate: Option<PathBuf>,
}

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// `mosquitto` is not installed.
    #[error(
        "mosquitto is not installed (apt-get install mosquitto), or not at /usr/sbin/mosquitto: {0}"
    )]
    Missing(std::io::Error),
    /// Its directory or configuration could not be written.
    #[error("the broker's directory {0}: {1}")]
    Directory(PathBuf, std::io::Error),
    /// It exited or did not listen in time (its log).
    #[error("mosquitto did not start: {0}")]
    Start(String),
}

/// A running Mosquitto.
#[derive(Debug)]
pub struct Broker {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a broker set up as `setup` in a new directory under the system's temporary one.
    pub fn start(setup: &Setup) -> Result<Broker, BrokerError> {
        let dir = std::env::temp_dir().join(format!(
            "hydrowatch-mosquitto-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| BrokerError::Directory(dir.clone(), e))?;
        let port = free_port().map_err(|e| BrokerError::Directory(dir.clone(), e))?;
        let config = configuration(setup, &dir, port);
        std::fs::write(dir.join("mosquitto.conf"), config)
            .map_err(|e| BrokerError::Directory(dir.clone(), e))?;
        let mut broker = Broker {
            dir,
            port,
            child: None,
        };
        broker.launch()?;
        Ok(broker)
    }

    /// Its URL, `mqtt://127.0.0.1:PORT` (`mqtts://localhost:PORT` with TLS).
    pub fn url(&self) -> String {
        let conf = std::fs::read_to_string(self.dir.join("mosquitto.conf")).unwrap_or_default();
        if conf.contains("certfile") {
            format!("mqtts://localhost:{}", self.port)
        } else {
            format!("mqtt://127.0.0.1:{}", self.port)
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it with SIGTERM (it saves its sessions and queued messages) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// Stops it (SIGTERM) and starts it again on the same port and directory.
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.stop();
        self.launch()
    }

    /// Starts it again after [`Broker::stop`].
    pub fn launch(&mut self) -> Result<(), BrokerError> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = self.dir.join("mosquitto.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| BrokerError::Directory(self.dir.clone(), e))?;
        let err_file = log_file
            .try_clone()
            .map_err(|e| BrokerError::Directory(self.dir.clone(), e))?;
        let mut cmd = Command::new(program());
        cmd.arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file);
        // SAFETY: only an async-signal-safe call between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(BrokerError::Missing)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BrokerError::Start(format!(
                    "it exited ({status}): {}",
                    read_log(&log)
                )));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(BrokerError::Start(format!(
                    "not listening on port {} after 10 s: {}",
                    self.port,
                    read_log(&log)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its log so far (the end of it).
    pub fn log(&self) -> String {
        read_log(&self.dir.join("mosquitto.log"))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn program() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("mosquitto"))
}

fn configuration(setup: &Setup, dir: &Path, port: u16) -> String {
    let mut c = format!(
        "listener {port} 127.0.0.1\n\
         persistence true\n\
         persistence_location {}/\n\
         autosave_interval 60\n\
         # Sessions of absent servers keep every message (Mosquitto's default keeps 1000).\n\
         max_queued_messages 0\n\
         max_inflight_messages 100\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_type information\n",
        dir.display()
    );
    // As root Mosquitto would switch to the `mosquitto` user, who cannot write our directory.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        c.push_str("user root\n");
    }
    match &setup.password_file {
        Some(p) => c.push_str(&format!(
            "allow_anonymous false\npassword_file {}\n",
            p.display()
        )),
        None => c.push_str("allow_anonymous true\n"),
    }
    if let Some(acl) = &setup.acl_file {
        c.push_str(&format!("acl_file {}\n", acl.display()));
    }
    if let Some((cert, key)) = &setup.tls {
        c.push_str(&format!(
            "certfile {}\nkeyfile {}\n",
            cert.display(),
            key.display()
        ));
    }
    if let Some(ca) = &setup.require_certificate {
        c.push_str(&format!(
            "cafile {}\nrequire_certificate true\nuse_identity_as_username true\n",
            ca.display()
        ));
    }
    c
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(2000);
    text[text.floor_char_boundary(start)..].to_string()
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

//! `hydrowatch bench fleet`: N simulated devices (hydrowatch-fleet), each with its own outbox,
//! deliver to running servers over HTTPS or through an MQTT broker for S seconds (then deliver
//! what is left); the bench reports what was delivered, lost (acknowledged to a device, so gone
//! from its outbox, and never stored) and duplicated, what was still in the outboxes when the
//! drain ended, the latency from a device's enqueue to the message seen stored, and the CPU and
//! memory of the servers, the broker and the database. It starts what it is not given: `--replicas` `hydrowatch serve` processes (HTTPS
//! with a certificate of its own) on a SQLite file or `--database`, and a Mosquitto with TLS, a
//! password file (every device's token) and the fleet's ACL. The last line is the contract:
//! `delivered=D lost=L duplicated=U p50_ms=A p99_ms=B`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Context as _;
use clap::Args;

use hydrowatch_fleet::device::{self, Device, Fleet};
use hydrowatch_fleet::watch::{self, Pending, Usage};

/// `hydrowatch bench fleet`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
hydrowatch bench fleet --devices 1000 --transport https --seconds 60\n  \
hydrowatch bench fleet --devices 10000 --transport mqtt --seconds 600 --database postgres://hw@127.0.0.1/fleet --replicas 2\n  \
hydrowatch bench fleet --devices 10000 --transport mqtt --seconds 600 --database postgres://... --replicas 2 --kill-replica-at 120\n\n\
Latency is from a device's enqueue to the message seen in the server's database, which the bench \
polls every 100 ms. Lost: enqueued and not stored when the drain ends. Duplicated: stored rows \
beyond one per message id. Resent: messages a device sent again after a failure (stored once).")]
pub struct FleetArgs {
    /// Simulated devices.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    devices: u32,
    /// How they deliver: https (to the servers) or mqtt (through the broker).
    #[arg(long, default_value = "https", value_parser = ["https", "mqtt"])]
    transport: String,
    /// Seconds the devices produce messages; then up to --drain-seconds to deliver the rest.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
    /// The servers' PostgreSQL database (default: a SQLite file in a temporary folder).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// `hydrowatch serve` processes started (more than one needs --database).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    replicas: u32,
    /// A running broker instead of a Mosquitto started here (its devices log in with their id
    /// and token: give it a password file made with `serve token create --mqtt-passwd`, and the
    /// servers' user with --broker-password-file).
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// With --broker: the file holding the servers' password at it (user hydrowatch-server).
    #[arg(long, value_name = "FILE", requires = "broker")]
    broker_password_file: Option<PathBuf>,
    /// Seconds between a device's heartbeats.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    heartbeat_seconds: u64,
    /// Alarm transitions per device per day (opened, then cleared).
    #[arg(long, default_value_t = 4.0)]
    alarms_per_day: f64,
    /// Forecasts per device per day (7 days hourly, about 12 kB each).
    #[arg(long, default_value_t = 2.0)]
    forecasts_per_day: f64,
    /// Kill one server with SIGKILL this many seconds in, and start it again 10 s later (as
    /// systemd would).
    #[arg(long, value_name = "S")]
    kill_replica_at: Option<u64>,
    /// Restart the broker started here (SIGTERM, then start again) this many seconds in.
    #[arg(long, value_name = "S")]
    restart_broker_at: Option<u64>,
    /// The longest wait after the run for the outboxes to empty and everything to be stored.
    #[arg(long, default_value_t = 300)]
    drain_seconds: u64,
}

/// The servers' user at the broker.
const SERVER_USER: &str = "hydrowatch-server";

/// A started `hydrowatch serve`, and how to start it again.
struct Replica {
    child: Child,
    args: Vec<String>,
    port: u16,
}

impl Replica {
    fn start(dir: &Path, args: Vec<String>, port: u16, n: usize) -> crate::Result<Replica> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("replica-{n}.log")))?;
        let child = Command::new(std::env::current_exe()?)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start `hydrowatch serve`")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            crate::ensure(Instant::now() < deadline, || {
                format!(
                    "server {n} did not listen on port {port} within 60 s (its log: {})",
                    dir.join(format!("replica-{n}.log")).display()
                )
            })?;
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Replica { child, args, port })
    }
}

fn free_port() -> crate::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Raises this process's open-file limit to its hard limit (children inherit it): 10,000
/// devices hold 10,000 connections.
fn raise_file_limit() {
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// `hydrowatch bench fleet`: starts the servers, the broker and the simulated devices of the
/// run, drives them at the rate asked, and prints what was stored, how soon, and what it cost.
pub fn run(args: FleetArgs) -> crate::Result<()> {
    crate::ensure(args.replicas == 1 || args.database.is_some(), || {
        format!(
            "--replicas {}: more than one server needs --database postgres://... (a SQLite file is one process's)",
            args.replicas
        )
    })?;
    let mqtt = args.transport == "mqtt";
    raise_file_limit();
    let dir = tempfile::Builder::new()
        .prefix("hydrowatch-fleet-")
        .tempdir()?;
    let d = dir.path();
    let run_id = format!("f{:08x}", rand::random::<u32>());

    // The database and the devices' tokens (written directly: 10,000 `serve token create`
    // processes would take minutes).
    let database: Vec<String> = match &args.database {
        Some(url) => vec!["--database".into(), url.clone()],
        None => vec!["--db".into(), d.join("fleet.db").display().to_string()],
    };
    let db = Arc::new(match &args.database {
        Some(url) => hydrowatch_server::Db::connect(url)?,
        None => hydrowatch_server::Db::open(&d.join("fleet.db"))?,
    });
    let bar = indicatif::ProgressBar::new(u64::from(args.devices)).with_message("device tokens");
    let mut devices = Vec::with_capacity(args.devices as usize);
    for i in 0..args.devices {
        let id = format!("fleet-{i:05}");
        let token = db.create_token(&id, chrono::Utc::now().timestamp())?;
        devices.push(Device::new(id, token));
        bar.inc(1);
    }
    bar.finish_and_clear();

    // TLS for the servers (HTTPS) and the broker: a certificate of this run for "localhost".
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .context("a certificate for the fleet")?;
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    std::fs::write(d.join("cert.pem"), &cert_pem)?;
    std::fs::write(d.join("key.pem"), &key_pem)?;

    // The broker.
    let mut broker = None;
    let broker_url = match (&args.broker, mqtt) {
        (Some(url), _) => Some(url.clone()),
        (None, true) => {
            let passwd = d.join("passwd");
            let server_password = hydrowatch_server::db::random_token();
            std::fs::write(d.join("server.pw"), format!("{server_password}\n"))?;
            let mut lines = vec![hydrowatch_server::mqtt::mosquitto_password_line(
                SERVER_USER,
                &server_password,
            )];
            lines.extend(
                devices
                    .iter()
                    .map(|dv| hydrowatch_server::mqtt::mosquitto_password_line(&dv.id, &dv.token)),
            );
            std::fs::write(&passwd, lines.join("\n") + "\n")?;
            std::fs::write(
                d.join("acl"),
                hydrowatch_server::mqtt::mosquitto_acl(SERVER_USER),
            )?;
            let b = hydrowatch_mosquitto::Broker::start(&hydrowatch_mosquitto::Setup {
                password_file: Some(passwd),
                acl_file: Some(d.join("acl")),
                tls: Some((d.join("cert.pem"), d.join("key.pem"))),
                ..Default::default()
            })?;
            let url = b.url();
            broker = Some(b);
            Some(url)
        }
        (None, false) => None,
    };
    let server_password_file = match &args.broker_password_file {
        Some(f) => f.clone(),
        None => d.join("server.pw"),
    };

    // The servers.
    let mut replicas = Vec::new();
    for n in 0..args.replicas as usize {
        let port = free_port()?;
        let mut a: Vec<String> = vec!["serve".into()];
        a.extend(database.iter().cloned());
        a.extend([
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--tls-cert".into(),
            d.join("cert.pem").display().to_string(),
            "--tls-key".into(),
            d.join("key.pem").display().to_string(),
            "--rate-limit".into(),
            "0".into(),
            "--max-connections".into(),
            "4096".into(),
        ]);
        if let Some(url) = &broker_url {
            a.extend([
                "--mqtt".into(),
                url.clone(),
                "--mqtt-client-id".into(),
                format!("fleet-replica-{n}"),
                "--mqtt-password-file".into(),
                server_password_file.display().to_string(),
            ]);
            if broker.is_some() {
                a.extend(["--mqtt-ca".into(), d.join("cert.pem").display().to_string()]);
            }
        }
        replicas.push(Replica::start(d, a, port, n)?);
    }
    if mqtt {
        // Their shared subscriptions, before the first device publishes.
        std::thread::sleep(Duration::from_secs(2));
    }

    let pending = Arc::new(Pending::default());
    let produce_until = Instant::now() + Duration::from_secs(args.seconds);
    let fleet = Arc::new(Fleet {
        run: run_id.clone(),
        heartbeat: Duration::from_secs(args.heartbeat_seconds),
        alarm_every: 86_400.0 / args.alarms_per_day.max(1e-6),
        forecast_every: 86_400.0 / args.forecasts_per_day.max(1e-6),
        produce_until,
        stop: AtomicBool::new(false),
        pending: pending.clone(),
        resent: AtomicU64::new(0),
        failures: AtomicU64::new(0),
    });
    let observer = {
        let (db, pending, fleet, prefix) =
            (db.clone(), pending.clone(), fleet.clone(), run_id.clone());
        std::thread::spawn(move || watch::observe(&db, &prefix, &pending, &fleet.stop))
    };

    eprintln!(
        "bench fleet: {} devices over {} for {} s into {} server(s) on {}{}",
        args.devices,
        if mqtt { "MQTT" } else { "HTTPS" },
        args.seconds,
        args.replicas,
        db.kind(),
        broker_url
            .as_ref()
            .map(|u| format!(" through {u}"))
            .unwrap_or_default()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    // Devices come up over the first 10 s (or the heartbeat period, if shorter).
    let ramp = Duration::from_secs(args.heartbeat_seconds.min(10));
    {
        let _guard = runtime.enter();
        let servers: Arc<Vec<String>> = Arc::new(
            replicas
                .iter()
                .map(|r| format!("https://localhost:{}", r.port))
                .collect(),
        );
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes())?)
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(30))
            .build()?;
        // The broker's address and the devices' TLS (the run's certificate trusted for the
        // broker started here, the system's roots for one given).
        let (host, port, tls) = match &broker_url {
            Some(url) => {
                let mut s = hydrowatch_mqtt::BrokerSettings::from_url(url, "fleet")?;
                if broker.is_some() {
                    s.ca_file = Some(d.join("cert.pem"));
                }
                let tls = if s.tls {
                    Some(Arc::new(hydrowatch_mqtt::tls_config(&s)?))
                } else {
                    None
                };
                (s.host, s.port, tls)
            }
            None => (String::new(), 0, None),
        };
        let n = devices.len();
        for (i, device) in devices.into_iter().enumerate() {
            let start = started + ramp.mul_f64(i as f64 / n as f64);
            if mqtt {
                let mut o = rumqttc::v5::MqttOptions::new(device.id.clone(), host.clone(), port);
                o.set_keep_alive(Duration::from_secs(60))
                    .set_clean_start(false)
                    .set_session_expiry_interval(Some(u32::MAX))
                    .set_credentials(device.id.clone(), device.token.clone())
                    .set_outgoing_inflight_upper_limit(100);
                if let Some(t) = &tls {
                    o.set_transport(rumqttc::Transport::tls_with_config(
                        rumqttc::TlsConfiguration::Rustls(t.clone()),
                    ));
                }
                runtime.spawn(device::mqtt(fleet.clone(), device, o, start));
            } else {
                runtime.spawn(device::https(
                    fleet.clone(),
                    device,
                    client.clone(),
                    servers.clone(),
                    i % servers.len(),
                    start,
                ));
            }
        }
    }

    // The run: sample the processes every second, kill and restart as asked, then drain.
    let mut usage = [
        Usage::default(),
        Usage::default(),
        Usage::default(),
        Usage::default(),
    ];
    let postgres_pids = || {
        if args.database.is_some() {
            watch::processes_named("postgres")
        } else {
            Vec::new()
        }
    };
    let mut killed: Option<(usize, Instant)> = None;
    let mut broker_restarted = false;
    let bar = indicatif::ProgressBar::new(args.seconds).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} s {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let drain_until = produce_until + Duration::from_secs(args.drain_seconds);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let elapsed = started.elapsed().as_secs();
        usage[0].sample(&replicas.iter().map(|r| r.child.id()).collect::<Vec<_>>());
        usage[1].sample(
            &broker
                .as_ref()
                .and_then(|b| b.pid())
                .into_iter()
                .collect::<Vec<_>>(),
        );
        usage[2].sample(&postgres_pids());
        usage[3].sample(&[std::process::id()]);
        bar.set_position(elapsed.min(args.seconds));
        bar.set_message(format!(
            "{} stored, {} waiting in the outboxes, {} failed sends",
            pending.stored.load(Ordering::Relaxed),
            pending.in_outboxes(),
            fleet.failures.load(Ordering::Relaxed)
        ));
        if let Some(at) = args.kill_replica_at
            && elapsed >= at
            && killed.is_none()
        {
            let victim = replicas.len() - 1;
            replicas[victim].child.kill()?;
            replicas[victim].child.wait()?;
            eprintln!("bench fleet: server {victim} killed with SIGKILL at {elapsed} s");
            killed = Some((victim, Instant::now()));
        }
        if let Some((victim, at)) = killed
            && at.elapsed() >= Duration::from_secs(10)
            && replicas[victim].child.try_wait()?.is_some()
        {
            let (a, port) = (replicas[victim].args.clone(), replicas[victim].port);
            replicas[victim] = Replica::start(d, a, port, victim)?;
            eprintln!(
                "bench fleet: server {victim} started again at {} s",
                started.elapsed().as_secs()
            );
        }
        if let (Some(at), Some(b)) = (args.restart_broker_at, broker.as_mut())
            && elapsed >= at
            && !broker_restarted
        {
            b.restart().context("restarting the broker")?;
            broker_restarted = true;
            eprintln!("bench fleet: broker restarted at {elapsed} s");
        }
        let now = Instant::now();
        if now >= produce_until && pending.in_outboxes() == 0 && pending.missing() == 0 {
            break;
        }
        if now >= drain_until {
            eprintln!("bench fleet: the drain ended with messages not stored");
            break;
        }
    }
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    fleet.stop.store(true, Ordering::Relaxed);
    // A last look at the database.
    std::thread::sleep(Duration::from_millis(300));
    let _ = observer.join();
    runtime.shutdown_timeout(Duration::from_secs(5));
    for r in &mut replicas {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) };
        let _ = r.child.wait();
    }

    let enqueued = pending.enqueued.load(Ordering::Relaxed);
    let stored = pending.stored.load(Ordering::Relaxed);
    let lost = pending.lost();
    let unsent = pending.missing() - lost;
    let (rows, distinct) = db.message_counts(&run_id)?;
    let duplicated = rows.saturating_sub(distinct);
    let (p50, p99) = (pending.quantile_ms(0.5), pending.quantile_ms(0.99));
    println!(
        "{} devices over {}, {} s of messages, {} server(s) on {}: {enqueued} messages enqueued ({:.1}/s), {stored} stored, {unsent} still in the outboxes at the end, {} resent after failures, {} failed sends",
        args.devices,
        if mqtt { "MQTT" } else { "HTTPS" },
        args.seconds,
        args.replicas,
        db.kind(),
        enqueued as f64 / args.seconds as f64,
        fleet.resent.load(Ordering::Relaxed),
        fleet.failures.load(Ordering::Relaxed)
    );
    println!(
        "latency enqueue -> stored (polled every 100 ms): p50 {p50} ms, p90 {} ms, p99 {} ms, max {} ms",
        pending.quantile_ms(0.9),
        p99,
        pending.quantile_ms(1.0)
    );
    for (name, u) in ["servers", "broker", "PostgreSQL", "simulated devices"]
        .iter()
        .zip(&usage)
    {
        if u.peak_bytes > 0 {
            println!(
                "{name}: {:.2} CPU cores on average ({:.0} CPU s over {wall:.0} s), peak {:.0} MB (PSS)",
                u.cpu_seconds / wall,
                u.cpu_seconds,
                u.peak_bytes as f64 / 1e6
            );
        }
    }
    println!("delivered={stored} lost={lost} duplicated={duplicated} p50_ms={p50} p99_ms={p99}");
    Ok(())
}

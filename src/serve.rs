//! `hydrowatch serve`: the central server (hydrowatch-server) on a SQLite file or PostgreSQL;
//! `hydrowatch serve token create DEVICE_ID | --operator NAME`, `hydrowatch serve token revoke`
//! and `hydrowatch serve user
//! add|list|remove`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::global::Global;

/// `hydrowatch serve`
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
hydrowatch serve token create dma-017        (prints the device's token once; put it in its [server] token)\n  \
hydrowatch serve user add ana --role operator   (asks for her password)\n  \
hydrowatch serve token create --operator ana   (an API token acting as ana, for scripts)\n  \
printf '%s\\n' \"$TOKEN\" | hydrowatch serve token revoke   (revokes that one API token)\n  \
hydrowatch serve --mqtt mqtts://broker:8883 --mqtt-client-id hw-a --mqtt-password-file pw   (also ingest over MQTT)\n  \
hydrowatch serve --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem\n  \
hydrowatch serve --retention-days 90 retention   (remove what is older than 90 days now)\n  \
curl -H \"Authorization: Bearer $ADMIN_TOKEN\" -H 'content-type: application/json' -d '{\"name\": \"on call\", \
\"min_stage\": 3, \"channel\": \"email\", \"target\": \"oncall@utility.example\", \"remind_minutes\": 30, \
\"group_seconds\": 60}' https://server:8443/api/v1/rules   (a notification rule)\n\n\
Devices POST their alarms, forecasts and heartbeats to /api/v1/ingest with their token; a device \
token can do nothing else. People log in to the dashboard at / (viewers read; operators \
acknowledge, shelve, comment and assign alarms; admins also manage notification rules); scripts use an \
operator token (Authorization: Bearer) on /api/v1/devices, /api/v1/alarms, /api/v1/alarms/active, \
/api/v1/forecasts, /api/v1/accuracy and the alarm actions (described at /api/v1/openapi.json). \
Admins add notification rules with POST /api/v1/rules (a webhook, signed with HMAC-SHA256, or an \
e-mail address, which needs --smtp and --smtp-from); the server queues notifications in its \
database and retries them until delivered, and raises its own device_silent alarm for a device \
not heard from for --silent-after minutes. Without --tls-cert the server speaks plain HTTP: put \
it behind TLS before it leaves a trusted network. Failed logins are limited per name and address \
in each server process. The database is the --db file (default \
hydrowatch-server.db), or PostgreSQL with --database postgres://user:password@host:port/dbname \
(the tables are created on first start; connections without TLS, so keep the database next to the \
server).")]
pub(crate) struct ServeArgs {
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    /// PostgreSQL instead of the SQLite file: postgres://user:password@host:port/dbname (or
    /// key=value form: "host=... user=... dbname=...").
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    pub listen: String,
    /// Ingest requests per second allowed per device (bursts of three times as many); 0: no
    /// limit. A device over it is answered 429 and comes back later.
    #[arg(long, default_value_t = 20.0, value_name = "N")]
    pub rate_limit: f64,
    /// Connections served at once; one more is answered 503 at once (a client that sends no
    /// request headers within 10 s is closed, a request not done in 30 s is answered 408).
    /// Keep it below the process's file limit (`ulimit -n`).
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Connections served at once from one client address (0: no limit of its own), so that
    /// one client cannot hold every slot. A --trusted-proxy's connections are not limited per
    /// address (they are every client's).
    #[arg(long, default_value_t = 128, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub max_connections_per_address: u32,
    /// A reverse proxy in front of the server (an address, or a network such as 10.0.0.0/8;
    /// repeat for several): its requests count as the client's whose address it forwards in
    /// --client-address-header, for the failed-login limits and the logs. Nobody else's header
    /// is believed. Without it, behind a proxy every client shares the proxy's address and 20
    /// failed logins anywhere lock everybody out for 15 minutes.
    #[arg(long = "trusted-proxy", value_name = "ADDR[/PREFIX]", value_parser = hydrowatch_server::TrustedProxies::parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header in which a --trusted-proxy forwards the client's address: X-Forwarded-For
    /// (a comma-separated list, the client's address the rightmost not a trusted proxy),
    /// X-Real-IP, or Forwarded (RFC 7239, its for= parameter).
    #[arg(
        long,
        default_value = "X-Forwarded-For",
        value_name = "NAME",
        requires = "trusted_proxies"
    )]
    pub client_address_header: String,
    /// Speak HTTPS with this certificate chain (PEM, the server's certificate first); needs
    /// --tls-key. Session cookies are then marked Secure.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The SMTP relay for e-mail notifications: smtp://[user:password@]host[:port] (STARTTLS
    /// required: a relay that does not offer it gets nothing; port 587 by default), smtps://...
    /// (TLS from the start, 465), or smtp+insecure://host[:port] (in clear, port 25: only for a
    /// relay on a trusted network, and never with a user or password).
    #[arg(long, value_name = "URL", requires = "smtp_from")]
    pub smtp: Option<String>,
    /// The sender address of e-mail notifications.
    #[arg(long, value_name = "ADDRESS", requires = "smtp")]
    pub smtp_from: Option<String>,
    /// A certificate (PEM) to trust for the relay besides the public roots.
    #[arg(long, value_name = "FILE", requires = "smtp")]
    pub smtp_ca: Option<PathBuf>,
    /// Let notification rules send webhooks to loopback, link-local and private addresses (a
    /// receiver on the server's own network). Without it, webhooks go to public addresses only:
    /// a rule cannot make the server reach 127.0.0.1, the cloud metadata address
    /// (169.254.169.254) or the internal network.
    #[arg(long)]
    pub private_webhooks: bool,
    /// Raise the server's own `device_silent` alarm on a device not heard from (heartbeats
    /// included) for this many minutes; 0: never.
    #[arg(long, default_value_t = 15, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(0..=10_080))]
    pub silent_after: u32,
    /// Keep messages (by arrival), forecasts (by issue) and actual values (by hour) this many
    /// days; 0: keep everything. Alarm transitions, their acknowledgements and audit records are
    /// always kept. On PostgreSQL a month's partition is dropped once all of it is older, so rows
    /// may stay up to a month longer. Checked every hour (and by `serve retention` at once).
    #[arg(long, default_value_t = 400, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub retention_days: u32,
    /// How long a login lasts, in hours.
    #[arg(long, default_value_t = 12, value_name = "H", value_parser = clap::value_parser!(u32).range(1..=720))]
    pub session_hours: u32,
    #[command(flatten)]
    pub mqtt: MqttArgs,
}

/// `serve --mqtt`: ingest from an MQTT broker besides HTTPS.
#[derive(Debug, Args)]
pub(crate) struct MqttArgs {
    /// Also take the devices' messages from this MQTT broker: mqtts://host:8883 (or
    /// mqtt://host:1883 on a trusted network), through the shared subscription
    /// $share/hydrowatch/hydrowatch/v1/+/+ so that several servers split them. Each is stored,
    /// then acknowledged to the broker.
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// The client id, which names this server's persistent session at the broker: one per
    /// replica, the same across its restarts (messages routed to it while it is down wait for
    /// it). Default: hydrowatch-server-HOSTNAME.
    #[arg(long, value_name = "ID", requires = "mqtt")]
    pub mqtt_client_id: Option<String>,
    /// The user name at the broker.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "hydrowatch-server",
        requires = "mqtt"
    )]
    pub mqtt_user: String,
    /// A file whose first line is the password at the broker (`hydrowatch serve mqtt-user`
    /// makes one); without it, no credentials are sent.
    #[arg(long, value_name = "FILE", requires = "mqtt")]
    pub mqtt_password_file: Option<PathBuf>,
    /// "5" or "3.1.1" (brokers without MQTT 5).
    #[arg(long, value_name = "VERSION", default_value = "5", requires = "mqtt")]
    pub mqtt_version: String,
    /// CA certificates (PEM) to check an mqtts:// broker against (default: the system's roots).
    #[arg(long, value_name = "FILE", requires = "mqtt")]
    pub mqtt_ca: Option<PathBuf>,
    /// A client certificate (PEM) for brokers that authenticate by certificate.
    #[arg(long, value_name = "FILE", requires_all = ["mqtt", "mqtt_key"])]
    pub mqtt_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["mqtt", "mqtt_cert"])]
    pub mqtt_key: Option<PathBuf>,
}

impl MqttArgs {
    /// The broker settings, when --mqtt is given.
    fn settings(&self) -> anyhow::Result<Option<hydrowatch_mqtt::BrokerSettings>> {
        let Some(url) = &self.mqtt else {
            return Ok(None);
        };
        let client_id = match &self.mqtt_client_id {
            Some(id) => id.clone(),
            None => format!(
                "hydrowatch-server-{}",
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .unwrap_or_default()
                    .trim()
            ),
        };
        let mut s = hydrowatch_mqtt::BrokerSettings::from_url(url, &client_id)
            .with_context(|| "--mqtt".to_string())?;
        s.version =
            hydrowatch_mqtt::Version::parse(&self.mqtt_version).context("--mqtt-version")?;
        if let Some(file) = &self.mqtt_password_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("--mqtt-password-file {}: cannot read", file.display()))?;
            let password = text.lines().next().unwrap_or("").trim_end().to_string();
            anyhow::ensure!(
                !password.is_empty(),
                "--mqtt-password-file {}: the first line is empty",
                file.display()
            );
            s.credentials = Some((self.mqtt_user.clone(), password));
        }
        s.ca_file = self.mqtt_ca.clone();
        s.client_cert = self.mqtt_cert.clone().zip(self.mqtt_key.clone());
        // The broker's in-flight window to this server.
        s.inflight = 100;
        Ok(Some(s))
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServeCommand {
    /// Device tokens, and operator API tokens for scripts.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The people who log in to the dashboard.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// A broker user for the servers themselves (`serve --mqtt-user`): a new password, put into
    /// Mosquitto's password file and printed once (save it where --mqtt-password-file reads it).
    MqttUser {
        /// The user name.
        #[arg(default_value = "hydrowatch-server")]
        name: String,
        /// Mosquitto's password file.
        #[arg(long, value_name = "FILE")]
        mqtt_passwd: PathBuf,
    },
    /// Apply --retention-days now (every running server also does it each hour) and say what
    /// was removed; on PostgreSQL also make the months ahead's partitions.
    Retention,
    /// Print Mosquitto's ACL for a fleet: the servers' user reads every device's topics, each
    /// device (its id as user name) publishes only under its own id.
    MqttAcl {
        /// The servers' user name at the broker.
        #[arg(long, value_name = "NAME", default_value = "hydrowatch-server")]
        server_user: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue a new token and print it once: for a device (replacing its old one), or with
    /// --operator an API token acting as that user (with the user's role).
    Create {
        /// The device's id, as in its `[device] id`.
        #[arg(required_unless_present = "operator", conflicts_with = "operator")]
        device_id: Option<String>,
        /// Instead: an API token for scripts acting as this user.
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
        /// Also put the device into Mosquitto's password file FILE (user name: the device id,
        /// password: the token), for devices with `transport = "mqtt"`; Mosquitto reads it
        /// again on SIGHUP.
        #[arg(long, value_name = "FILE", conflicts_with = "operator")]
        mqtt_passwd: Option<PathBuf>,
    },
    /// Revoke one API token (its user's other tokens and sessions stay). The token is read as
    /// the first line of standard input, never from the command line (which others may see):
    /// `printf '%s\n' "$TOKEN" | hydrowatch serve token revoke`.
    Revoke,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user. The password is asked for on the terminal (not shown), or read as the first
    /// line of standard input when that is not a terminal:
    /// `printf '%s\n' "$PW" | hydrowatch serve user add ana --role operator`.
    Add {
        /// The login name: 1 to 64 letters, digits, '_', '-', '.' or '@'.
        name: String,
        /// viewer: reads; operator: also acknowledges, shelves, comments, assigns; admin: also
        /// manages users, tokens and notification rules.
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
    },
    /// List the users and their roles.
    List,
    /// Remove a user with their sessions and API tokens.
    Remove {
        /// The login name.
        name: String,
    },
}

/// The password of a new user: from the terminal without echo (asked twice), or the first
/// line of standard input.
fn read_password(name: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let again = rpassword::prompt_password("the same again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ: nothing changed");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)
            .context("cannot read the password from standard input")?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// Runs the command.
pub(crate) fn run(global: &Global, args: ServeArgs) -> anyhow::Result<()> {
    let (db, name) = match (&args.database, &global.db) {
        (Some(_), Some(file)) => anyhow::bail!(
            "both --db {} and --database given: the server uses one database, choose one",
            file.display()
        ),
        (Some(url), None) => {
            anyhow::ensure!(
                url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.contains('='),
                "--database {}: expected postgres://user:password@host:port/dbname",
                without_password(url)
            );
            let db = hydrowatch_server::Db::connect(url)
                .with_context(|| format!("cannot use --database {}", without_password(url)))?;
            (db, without_password(url))
        }
        (None, file) => {
            let path = file
                .clone()
                .unwrap_or_else(|| PathBuf::from("hydrowatch-server.db"));
            let db = hydrowatch_server::Db::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            (db, path.display().to_string())
        }
    };
    match args.command {
        Some(ServeCommand::Token {
            command:
                TokenCommand::Create {
                    operator: Some(name),
                    ..
                },
        }) => {
            let token = db.create_operator_token(&name, chrono::Utc::now().timestamp())?;
            println!("{token}");
            eprintln!(
                "API token acting as {name} (shown once; the server keeps only its hash): send it as `Authorization: Bearer <token>`"
            );
            Ok(())
        }
        Some(ServeCommand::Token {
            command: TokenCommand::Revoke,
        }) => {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)
                .context("cannot read the token from standard input")?;
            let token = line.trim();
            anyhow::ensure!(
                !token.is_empty(),
                "give the token as the first line of standard input"
            );
            match db.revoke_operator_token(token)? {
                Some(name) => {
                    eprintln!("revoked an API token of {name} (their other tokens stay)");
                    Ok(())
                }
                None => anyhow::bail!(
                    "no such API token (a device's token is replaced with `serve token create DEVICE_ID`)"
                ),
            }
        }
        Some(ServeCommand::User { command }) => match command {
            UserCommand::Add { name, role } => {
                let role = hydrowatch_server::Role::from_name(&role)
                    .context("--role: viewer, operator or admin")?;
                let password = read_password(&name)?;
                db.add_user(&name, role, &password, chrono::Utc::now().timestamp())?;
                eprintln!("added {name} ({})", role.name());
                Ok(())
            }
            UserCommand::List => {
                for u in db.users()? {
                    println!("{}\t{}", u.name, u.role.name());
                }
                Ok(())
            }
            UserCommand::Remove { name } => {
                anyhow::ensure!(db.remove_user(&name)?, "no user {name:?}");
                eprintln!("removed {name} with their sessions and API tokens");
                Ok(())
            }
        },
        Some(ServeCommand::MqttUser { name, mqtt_passwd }) => {
            let password = hydrowatch_server::db::random_token();
            hydrowatch_server::mqtt::set_mosquitto_password(&mqtt_passwd, &name, &password)
                .with_context(|| format!("--mqtt-passwd {}", mqtt_passwd.display()))?;
            println!("{password}");
            eprintln!(
                "password of {name} at the broker (shown once), now in {}: send Mosquitto SIGHUP to read it",
                mqtt_passwd.display()
            );
            Ok(())
        }
        Some(ServeCommand::Retention) => {
            let done = db.retain(
                chrono::Utc::now().timestamp(),
                keep_days(args.retention_days),
            )?;
            println!(
                "kept {}; {} rows deleted, {} partitions dropped{}, {} made{}",
                match args.retention_days {
                    0 => "everything".to_string(),
                    days => format!("the last {days} days"),
                },
                done.rows_deleted,
                done.partitions_dropped.len(),
                listed(&done.partitions_dropped),
                done.partitions_made.len(),
                listed(&done.partitions_made),
            );
            Ok(())
        }
        Some(ServeCommand::MqttAcl { server_user }) => {
            print!("{}", hydrowatch_server::mqtt::mosquitto_acl(&server_user));
            Ok(())
        }
        Some(ServeCommand::Token {
            command:
                TokenCommand::Create {
                    device_id,
                    operator: None,
                    mqtt_passwd,
                },
        }) => {
            let device_id = device_id.context("name the device (or --operator NAME)")?;
            anyhow::ensure!(
                (1..=64).contains(&device_id.len())
                    && device_id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
                "device id {device_id:?}: use 1 to 64 letters, digits, '_', '-' or '.' (as in the device's [device] id)"
            );
            let token = db.create_token(&device_id, chrono::Utc::now().timestamp())?;
            if let Some(file) = &mqtt_passwd {
                hydrowatch_server::mqtt::set_mosquitto_password(file, &device_id, &token)
                    .with_context(|| format!("--mqtt-passwd {}", file.display()))?;
                eprintln!(
                    "{device_id} is in {} (send Mosquitto SIGHUP to read it)",
                    file.display()
                );
            }
            println!("{token}");
            eprintln!(
                "token for {device_id} (shown once; the server keeps only its hash): put it in the device's [server] token"
            );
            Ok(())
        }
        None => {
            let tls = match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => Some(
                    hydrowatch_server::tls_config(cert, key)
                        .context("--tls-cert/--tls-key cannot be used")?,
                ),
                _ => None,
            };
            let trusted_proxies = hydrowatch_server::TrustedProxies::new(
                args.trusted_proxies.clone(),
                &args.client_address_header,
            )
            .context("--client-address-header")?;
            let nobody = db.users()?.is_empty();
            let kind = db.kind();
            let mailer = match (&args.smtp, &args.smtp_from) {
                (Some(url), Some(from)) => {
                    let ca_pem = match &args.smtp_ca {
                        Some(path) => Some(std::fs::read(path).with_context(|| {
                            format!("--smtp-ca {}: cannot read", path.display())
                        })?),
                        None => None,
                    };
                    let mailer =
                        hydrowatch_server::notify::Mailer::new(url, from, ca_pem.as_deref())
                            .with_context(|| {
                                format!("--smtp {} --smtp-from {from}", without_password(url))
                            })?;
                    if mailer.insecure() {
                        eprintln!(
                            "warning: --smtp {}: e-mail goes to the relay in clear (smtp+insecure://): anyone on the way can read the alarms",
                            without_password(url)
                        );
                    }
                    Some(mailer)
                }
                _ => None,
            };
            let mqtt = args.mqtt.settings()?;
            if let Some(broker) = &mqtt {
                eprintln!(
                    "taking the devices' MQTT messages from {} as {} (shared subscription {})",
                    broker.address(),
                    broker.client_id,
                    hydrowatch_mqtt::SHARED_SUBSCRIPTION
                );
            }
            let config = hydrowatch_server::ServerConfig {
                settings: hydrowatch_server::Settings {
                    rate_limit: hydrowatch_server::RateLimit {
                        per_second: args.rate_limit.max(0.0),
                        burst: args.rate_limit.max(0.0) * 3.0,
                    },
                    session_seconds: i64::from(args.session_hours) * 3600,
                    private_webhooks: args.private_webhooks,
                    ..Default::default()
                },
                limits: hydrowatch_server::Limits {
                    max_connections: args.max_connections as usize,
                    max_per_address: args.max_connections_per_address as usize,
                    trusted_proxies,
                    ..hydrowatch_server::Limits::default()
                },
                tls,
                notify: hydrowatch_server::notify::NotifySettings {
                    mailer,
                    silent_after: (args.silent_after > 0)
                        .then(|| std::time::Duration::from_secs(u64::from(args.silent_after) * 60)),
                    ..Default::default()
                },
                mqtt,
                retention_days: keep_days(args.retention_days),
            };
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let server = hydrowatch_server::Server::new(Arc::new(db), config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(&args.listen)
                    .await
                    .with_context(|| format!("--listen {}: cannot listen", args.listen))?;
                eprintln!(
                    "hydrowatch server on {scheme}://{} ({kind} database {name})",
                    listener.local_addr()?,
                );
                if nobody {
                    eprintln!(
                        "nobody can log in yet: add a user with `hydrowatch serve user add NAME --role admin`"
                    );
                }
                server
                    .run(listener, hydrowatch_edge::shutdown_signal())
                    .await?;
                Ok(())
            })
        }
    }
}

/// `url` with its password replaced by `***`, for messages.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_part = &url[scheme + 3..at];
            match user_part.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &user_part[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `--retention-days` as the library takes it (0: keep everything).
fn keep_days(days: u32) -> Option<u32> {
    (days > 0).then_some(days)
}

/// ` (a, b)` for a non-empty list of names.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_repeated_in_messages() {
        assert_eq!(
            super::without_password("postgres://hw:s3cret@db.example:5432/fleet"),
            "postgres://hw:***@db.example:5432/fleet"
        );
        assert_eq!(
            super::without_password("postgres://hw@localhost/fleet"),
            "postgres://hw@localhost/fleet"
        );
    }
}

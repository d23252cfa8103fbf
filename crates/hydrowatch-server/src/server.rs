//! The central server as one product: [`ServerConfig`] says everything it runs with, and
//! [`Server`] runs it: the API and dashboard on a listener, the notifier (with the server's own
//! silent-device alarms), retention, and the MQTT ingest when a broker is configured. `hydrowatch
//! serve`, the tests, the demo and the benches all start it here, the same way.
//!
//! Invariants: each setting is said once (whether webhooks may go to private addresses counts for
//! the rules' check and the notifier's delivery alike; TLS is on when a TLS configuration is
//! given); whatever [`Server::run`] starts is stopped before it returns, and what
//! [`Server::spawn`] starts is stopped when its [`Background`] is dropped.

use std::future::Future;
use std::sync::Arc;

use hydrowatch_mqtt::BrokerSettings;

use crate::db::Db;
use crate::mqtt::MqttIngest;
use crate::notify::{Notifier, NotifySettings};
use crate::periodic::Periodic;
use crate::{Limits, Settings};

/// Everything the server runs with besides its database.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// How requests are handled: the ingest's rate limit, sessions, whether webhooks may go to
    /// private addresses (its `tls` is set from [`Self::tls`]).
    pub settings: Settings,
    /// The listener's bounds: connections, timeouts, trusted proxies.
    pub limits: Limits,
    /// TLS (`serve --tls-cert/--tls-key`); None speaks plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The notifier: the e-mail relay, the silent-device alarm, its rounds.
    pub notify: NotifySettings,
    /// Also take the devices' messages from this MQTT broker.
    pub mqtt: Option<BrokerSettings>,
    /// Remove messages, forecasts and actual values older than this many days, every hour
    /// (None: keep everything, and run no retention).
    pub retention_days: Option<u32>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A thread or the runtime could not start, or the listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The MQTT broker could not be used.
    #[error("MQTT: {0}")]
    Mqtt(#[from] hydrowatch_mqtt::MqttError),
}

/// The server on its database, ready to run.
pub struct Server {
    db: Arc<Db>,
    config: ServerConfig,
}

/// What runs beside the listener; stopped when dropped.
struct Parts {
    _notifier: Notifier,
    _retention: Option<Periodic>,
    mqtt: Option<MqttIngest>,
}

impl Drop for Parts {
    fn drop(&mut self) {
        if let Some(mqtt) = self.mqtt.take() {
            mqtt.stop();
        }
    }
}

/// A server running inside another program (the demo, benchmarks, tests): its runtime serves
/// the routes; everything stops when this is dropped.
pub struct Background {
    _parts: Parts,
    /// Serves the routes.
    pub runtime: tokio::runtime::Runtime,
}

impl Server {
    /// The server on `db` with `config`.
    pub fn new(db: Arc<Db>, mut config: ServerConfig) -> Server {
        config.settings.tls = config.tls.is_some();
        Server { db, config }
    }

    /// Starts what runs beside the listener: the notifier, retention, the MQTT ingest.
    fn start_parts(&self) -> Result<Parts, ServerError> {
        let notifier = crate::notify::start(
            self.db.clone(),
            self.config.notify.clone(),
            self.config.settings.private_webhooks,
        )?;
        let retention = match self.config.retention_days {
            Some(days) => Some(crate::retention::start(self.db.clone(), Some(days))?),
            None => None,
        };
        let mqtt = match &self.config.mqtt {
            Some(broker) => Some(crate::mqtt::start(self.db.clone(), broker.clone())?),
            None => None,
        };
        Ok(Parts {
            _notifier: notifier,
            _retention: retention,
            mqtt,
        })
    }

    /// The routes served on `listener` within the limits until `shutdown` completes.
    fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> impl Future<Output = ()> {
        let app = crate::router_with(self.db, self.config.settings);
        hydrowatch_listen::serve(listener, app, self.config.limits, self.config.tls, shutdown)
    }

    /// Serves on `listener` until `shutdown` completes, then lets open requests finish (for at
    /// most 10 s) and stops everything it started. Runs on a multi-threaded runtime (what runs
    /// beside the listener starts on a thread that may block).
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let parts = tokio::task::block_in_place(|| self.start_parts())?;
        self.serve(listener, shutdown).await;
        drop(parts);
        Ok(())
    }

    /// Serves on `listener` from a runtime of its own (two worker threads) until the
    /// [`Background`] returned is dropped.
    pub fn spawn(self, listener: std::net::TcpListener) -> Result<Background, ServerError> {
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let parts = self.start_parts()?;
        runtime.spawn(self.serve(listener, std::future::pending()));
        Ok(Background {
            _parts: parts,
            runtime,
        })
    }
}

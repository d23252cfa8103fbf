//! MQTT for hydrowatch: the topics devices publish on, the broker's address and credentials, and
//! [`Link`], one connection to a broker over rumqttc's MQTT 5 client or its 3.1.1 client.
//!
//! Topics: a device publishes each message on `hydrowatch/v1/{device}/{kind}` (QoS 1, the
//! envelope as the payload, exactly as HTTPS sends it); the server's replicas share the
//! subscription [`SHARED_SUBSCRIPTION`], so that the broker hands each message to one of them.
//!
//! Invariants: a [`Link`] reports every event of its connection in order on one channel (sent,
//! acknowledged, received, down); a link made with `reconnect = false` ends at its first error
//! (the caller starts again from its own state: the device's outbox), one made with `reconnect =
//! true` reconnects with a growing wait and resumes its persistent session.

mod link;

use std::path::PathBuf;
use std::time::Duration;

pub use link::{Acked, Event, Link, Received, tls_config};

/// The root of every hydrowatch topic.
pub const TOPIC_ROOT: &str = "hydrowatch/v1";

/// The shared subscription of the server's replicas (MQTT 5 and Mosquitto's 3.1.1 alike).
pub const SHARED_SUBSCRIPTION: &str = "$share/hydrowatch/hydrowatch/v1/+/+";

/// The topic of `device`'s messages of `kind`.
pub fn topic(device: &str, kind: &str) -> String {
    format!("{TOPIC_ROOT}/{device}/{kind}")
}

/// The device and kind of a hydrowatch topic, or why it is not one.
pub fn parse_topic(topic: &str) -> Result<(&str, &str), MqttError> {
    let bad = || MqttError::Topic(topic.chars().take(80).collect());
    let rest = topic
        .strip_prefix(TOPIC_ROOT)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(bad)?;
    match rest.split_once('/') {
        Some((device, kind)) if !device.is_empty() && !kind.is_empty() && !kind.contains('/') => {
            Ok((device, kind))
        }
        _ => Err(bad()),
    }
}

/// Which MQTT the broker speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 5 (the default): a refused publish comes back as a reason code in its PUBACK.
    V5,
    /// MQTT 3.1.1, for brokers without 5. A broker that refuses a publish (its ACL) still
    /// acknowledges it, so the device cannot tell: keep the ACL right.
    V311,
}

impl Version {
    /// `"5"` or `"3.1.1"`.
    pub fn parse(text: &str) -> Result<Version, MqttError> {
        match text {
            "5" | "5.0" => Ok(Version::V5),
            "3.1.1" | "3" | "4" => Ok(Version::V311),
            other => Err(MqttError::Settings(format!(
                "MQTT version {:?}: expected \"5\" or \"3.1.1\"",
                other.chars().take(20).collect::<String>()
            ))),
        }
    }
}

/// How to reach and log in to a broker.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// The host name or address.
    pub host: String,
    /// The port (1883 for `mqtt://`, 8883 for `mqtts://` unless the URL says).
    pub port: u16,
    /// Whether to use TLS (`mqtts://`).
    pub tls: bool,
    /// MQTT 5 or 3.1.1.
    pub version: Version,
    /// The client id: also the name of its persistent session at the broker.
    pub client_id: String,
    /// User name and password, if the broker wants them.
    pub credentials: Option<(String, String)>,
    /// CA certificates (PEM) to check the broker's certificate against; the system's roots
    /// (webpki's bundled ones are not used) are not read: name the CA.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for brokers that authenticate by certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Most messages published and not yet acknowledged, each way (ours to the broker; over
    /// MQTT 5 also the broker's to us, as our receive maximum).
    pub inflight: u16,
}

impl BrokerSettings {
    /// Settings for `url` (`mqtt://host[:port]` or `mqtts://host[:port]`) with client id
    /// `client_id`; no credentials, MQTT 5, keep-alive 30 s, 100 in flight.
    pub fn from_url(url: &str, client_id: &str) -> Result<BrokerSettings, MqttError> {
        let bad = |why: &str| {
            MqttError::Settings(format!(
                "broker URL {:?}: {why} (expected mqtt://host:1883 or mqtts://host:8883)",
                url.chars().take(80).collect::<String>()
            ))
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err(bad("unknown scheme"));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('@') {
            return Err(bad(
                "credentials do not belong in the URL (they would show in the process list); give them apart",
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
                host,
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
            ),
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(bad("no host"));
        }
        if client_id.is_empty() || client_id.len() > 128 {
            return Err(MqttError::Settings(format!(
                "client id {:?}: must be 1 to 128 bytes",
                client_id.chars().take(40).collect::<String>()
            )));
        }
        Ok(BrokerSettings {
            host: host.to_string(),
            port,
            tls,
            version: Version::V5,
            client_id: client_id.to_string(),
            credentials: None,
            ca_file: None,
            client_cert: None,
            keep_alive: Duration::from_secs(30),
            inflight: 100,
        })
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.tls { "mqtts" } else { "mqtt" },
            self.host,
            self.port
        )
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A setting is wrong.
    #[error("{0}")]
    Settings(String),
    /// A TLS file cannot be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// A topic that is not `hydrowatch/v1/{device}/{kind}`.
    #[error("topic {0:?} is not hydrowatch/v1/DEVICE/KIND")]
    Topic(String),
    /// The connection is gone (its last error).
    #[error("the broker connection is down: {0}")]
    Down(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_the_device_and_the_kind() {
        let t = topic("dma-017", "alert");
        assert_eq!(t, "hydrowatch/v1/dma-017/alert");
        assert_eq!(parse_topic(&t).unwrap(), ("dma-017", "alert"));
        for bad in [
            "hydrowatch/v1/dma-017",
            "hydrowatch/v1//alert",
            "hydrowatch/v1/a/b/c",
            "other/v1/a/alert",
            "hydrowatch/v2/a/alert",
        ] {
            assert!(parse_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn broker_urls_give_host_port_and_tls() {
        let s = BrokerSettings::from_url("mqtt://broker.example.org", "c").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("broker.example.org", 1883, false)
        );
        let s = BrokerSettings::from_url("mqtts://10.0.0.5:9883/", "c").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.tls), ("10.0.0.5", 9883, true));
        assert_eq!(
            BrokerSettings::from_url("mqtts://b", "c").unwrap().port,
            8883
        );
        for bad in [
            "http://b:1883",
            "mqtt://",
            "mqtt://b:0",
            "mqtt://b:99999",
            "mqtt://user:pw@b:1883",
        ] {
            let e = BrokerSettings::from_url(bad, "c").unwrap_err().to_string();
            assert!(e.contains("broker URL"), "{bad}: {e}");
        }
        assert!(BrokerSettings::from_url("mqtt://b", "").is_err());
        assert_eq!(Version::parse("3.1.1").unwrap(), Version::V311);
        assert!(Version::parse("6").is_err());
    }
}

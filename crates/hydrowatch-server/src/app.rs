//! The server as one axum application: the API's and the dashboard's routes over one state,
//! and a way to run it inside another program.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::{get, post};

use crate::api::{self, MAX_BODY};
use crate::dashboard;
use crate::db::Db;
use crate::limit::Limiter;
use crate::state::{AppState, Settings};

/// The OpenAPI document as written (`openapi.json`), without the values of the protocol's
/// enumerations: [`openapi`] writes those in from the types.
const OPENAPI_SOURCE: &str = include_str!("../openapi.json");

/// The OpenAPI document of these routes, as served (checked against them by the tests): the
/// written document, each of the protocol's enumerations (`components/schemas/AlarmKind`, ...)
/// given its values from its type, so that a new kind, channel or action is never listed by
/// hand.
pub fn openapi() -> &'static str {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use hydrowatch_protocol::{
            AlarmKind, Channel, Direction, Kind, OperatorAction, Transition,
        };
        fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> serde_json::Value {
            all.iter().map(|v| name(*v)).collect()
        }
        let mut doc: serde_json::Value =
            serde_json::from_str(OPENAPI_SOURCE).expect("openapi.json is JSON (tested)");
        let schemas = &mut doc["components"]["schemas"];
        for (schema, values) in [
            ("AlarmKind", names(AlarmKind::ALL, AlarmKind::name)),
            ("Direction", names(Direction::ALL, Direction::name)),
            ("Transition", names(Transition::ALL, Transition::name)),
            ("MessageKind", names(Kind::ALL, Kind::name)),
            ("Channel", names(Channel::ALL, Channel::name)),
            (
                "OperatorAction",
                names(OperatorAction::ALL, OperatorAction::name),
            ),
        ] {
            schemas[schema]["enum"] = values;
        }
        doc.to_string()
    });
    &DOCUMENT
}

/// Every route: (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/ingest"),
    ("get", "/api/v1/devices"),
    ("get", "/api/v1/alarms"),
    ("get", "/api/v1/forecasts"),
    ("get", "/api/v1/accuracy"),
    ("get", "/api/v1/alarms/active"),
    ("get", "/api/v1/alarms/{device}/{alarm_id}"),
    ("post", "/api/v1/alarms/{device}/{alarm_id}/ack"),
    ("post", "/api/v1/alarms/{device}/{alarm_id}/shelve"),
    ("post", "/api/v1/alarms/{device}/{alarm_id}/unshelve"),
    ("post", "/api/v1/alarms/{device}/{alarm_id}/comment"),
    ("post", "/api/v1/alarms/{device}/{alarm_id}/assign"),
    ("get", "/api/v1/rules"),
    ("post", "/api/v1/rules"),
    ("delete", "/api/v1/rules/{id}"),
    ("get", "/api/v1/openapi.json"),
];

/// The routes over `db`, with the default settings.
pub fn router(db: Arc<Db>) -> Router {
    router_with(db, Settings::default())
}

/// The routes over `db`, run with `settings`.
pub fn router_with(db: Arc<Db>, settings: Settings) -> Router {
    let tls = settings.tls;
    let state = Arc::new(AppState {
        db,
        limiter: Limiter::new(settings.rate_limit),
        logins: Default::default(),
        settings,
    });
    let router = Router::new()
        .route("/", get(dashboard::fleet::fleet))
        .route("/devices/{id}", get(dashboard::device::device))
        .route("/alarms/{device}/{alarm_id}", get(dashboard::alarm::alarm))
        .route(
            "/alarms/{device}/{alarm_id}/{action}",
            post(dashboard::alarm::act),
        )
        .route("/load", get(dashboard::load::load))
        .route(
            "/login",
            get(dashboard::login::form).post(dashboard::login::log_in),
        )
        .route("/logout", post(dashboard::login::log_out))
        .route("/api/v1/ingest", post(api::ingest))
        .route("/api/v1/devices", get(api::devices))
        .route("/api/v1/alarms", get(api::alarms))
        .route("/api/v1/alarms/active", get(api::alarms_to_handle))
        .route(
            "/api/v1/alarms/{device}/{alarm_id}",
            get(api::alarm_history),
        )
        .route(
            "/api/v1/alarms/{device}/{alarm_id}/ack",
            post(api::acknowledge),
        )
        .route(
            "/api/v1/alarms/{device}/{alarm_id}/shelve",
            post(api::shelve),
        )
        .route(
            "/api/v1/alarms/{device}/{alarm_id}/unshelve",
            post(api::unshelve),
        )
        .route(
            "/api/v1/alarms/{device}/{alarm_id}/comment",
            post(api::comment),
        )
        .route(
            "/api/v1/alarms/{device}/{alarm_id}/assign",
            post(api::assign),
        )
        .route("/api/v1/rules", get(api::rules).post(api::add_rule))
        .route(
            "/api/v1/rules/{id}",
            axum::routing::delete(api::remove_rule),
        )
        .route("/api/v1/forecasts", get(api::forecasts))
        .route("/api/v1/accuracy", get(api::accuracy))
        .route(
            "/api/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], openapi()) }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    if tls {
        // Under TLS, browsers are told to come back over TLS only (a year).
        router.layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                response.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    axum::http::HeaderValue::from_static(HSTS),
                );
                response
            },
        ))
    } else {
        router
    }
}

/// The `Strict-Transport-Security` of a server that speaks TLS.
const HSTS: &str = "max-age=31536000";

#[cfg(test)]
mod tests {
    use hydrowatch_protocol::{
        Accuracy, Acknowledged, Actual, AlarmActionRecord, AlarmHistory, AlarmKind, AlarmRecord,
        AlarmStatus, AlertBody, AssignRequest, Channel, CommentRequest, DeviceSummary, Direction,
        ErrorBody, ForecastBody, ForecastPoint, HeartbeatBody, Kind, NoteRequest, Notification,
        NotifiedAlarm, OperatorAction, RuleRecord, RuleRequest, ShelveRequest, Transition,
    };
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::openapi;

    fn alert() -> AlertBody {
        AlertBody {
            machine_number: 1,
            time: "2024-07-01T09:00:00+09:00".into(),
            outlier_stage: 2,
            value: Some(1.0),
            series: "flow_rate".into(),
            unit: "m3/h".into(),
            kind: AlarmKind::Outlier,
            direction: Direction::High,
            expected: Some(0.5),
            percentile: Some(99.9),
            alarm_id: 7,
            state: Transition::Opened,
        }
    }

    /// Schema `name` documents exactly the fields `sample` (every optional field present)
    /// serializes to, and lists as required exactly those the type cannot do without.
    fn documented_as<T: serde::Serialize + DeserializeOwned>(doc: &Value, name: &str, sample: T) {
        let schema = &doc["components"]["schemas"][name];
        let value = serde_json::to_value(&sample).unwrap();
        let mut fields: Vec<&String> = value.as_object().unwrap().keys().collect();
        let mut documented: Vec<&String> =
            schema["properties"].as_object().unwrap().keys().collect();
        fields.sort();
        documented.sort();
        assert_eq!(fields, documented, "{name}: properties");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        for field in fields {
            let mut without = value.clone();
            without.as_object_mut().unwrap().remove(field);
            let reads = serde_json::from_value::<T>(without).is_ok();
            assert_eq!(
                reads,
                !required.contains(&field.as_str()),
                "{name}.{field}: required is {}",
                !reads
            );
        }
    }

    fn names<T: serde::Serialize>(all: &[T]) -> Value {
        json!(
            all.iter()
                .map(|v| serde_json::to_value(v).unwrap())
                .collect::<Vec<_>>()
        )
    }

    #[test]
    fn the_openapi_schemas_are_the_protocol_types() {
        let doc: Value = serde_json::from_str(openapi()).unwrap();
        let point = ForecastPoint {
            time: "2024-07-01T00:00:00Z".into(),
            local_time: Some("2024-07-01 09:00".into()),
            value: 1.0,
            lower: 0.5,
            upper: 1.5,
        };
        let actual = Actual {
            time: "2024-06-30T23:00:00Z".into(),
            value: 1.0,
        };
        documented_as(&doc, "AlertBody", alert());
        documented_as(&doc, "ForecastPoint", point.clone());
        documented_as(&doc, "Actual", actual.clone());
        documented_as(
            &doc,
            "ForecastBody",
            ForecastBody {
                series: "flow_rate".into(),
                unit: "m3/h".into(),
                issued_at: "2024-07-01T00:00:00Z".into(),
                model: "lstm".into(),
                points: vec![point],
                actuals: Some(vec![actual]),
            },
        );
        let leak = hydrowatch_protocol::DetectableLeak {
            series: "flow_rate".into(),
            rise: 3.8,
            night_minimum: 47.5,
        };
        documented_as(
            &doc,
            "HeartbeatBody",
            HeartbeatBody {
                version: Some("1".into()),
                uptime_seconds: Some(1),
                readings_ingested: Some(1),
                alarms_open: Some(0),
                outbox_depth: Some(0),
                outbox_dropped: Some(0),
                last_reading: Some("2024-07-01T00:00:00Z".into()),
                detectable_leaks: Some(vec![leak.clone()]),
            },
        );
        documented_as(&doc, "DetectableLeak", leak);
        documented_as(
            &doc,
            "Acknowledged",
            Acknowledged {
                acknowledged: vec!["m1".into()],
            },
        );
        documented_as(
            &doc,
            "Error",
            ErrorBody {
                error: "x".into(),
                conflicting: Some(vec![]),
                invalid: Some(vec![]),
            },
        );
        documented_as(
            &doc,
            "DeviceSummary",
            DeviceSummary {
                id: "dma-1".into(),
                last_seen: Some(1),
                open_alarms: [0; 4],
            },
        );
        documented_as(
            &doc,
            "AlarmRecord",
            AlarmRecord {
                device_id: "dma-1".into(),
                created_at: 1,
                alert: alert(),
            },
        );
        documented_as(
            &doc,
            "Accuracy",
            Accuracy {
                series: "flow_rate".into(),
                hours: 24,
                mae: Some(1.0),
                mape: Some(2.0),
            },
        );
        let status = AlarmStatus {
            device_id: "dma-1".into(),
            alarm_id: 7,
            series: "flow_rate".into(),
            kind: AlarmKind::Outlier,
            stage: 2,
            highest_stage: 3,
            active: true,
            opened_at: 1,
            changed_at: 2,
            arrived_at: 2,
            acknowledged: true,
            acknowledged_by: Some("ana".into()),
            acknowledged_at: Some(3),
            shelved: true,
            shelved_by: Some("ana".into()),
            shelved_until: Some(4),
            shelve_reason: Some("pump test".into()),
            assigned_to: Some("ben".into()),
        };
        let action = AlarmActionRecord {
            at: 3,
            user: "ana".into(),
            action: OperatorAction::Shelved,
            comment: Some("pump test".into()),
            until: Some(4),
            assignee: Some("ben".into()),
        };
        documented_as(&doc, "AlarmStatus", status.clone());
        documented_as(&doc, "AlarmActionRecord", action.clone());
        documented_as(
            &doc,
            "AlarmHistory",
            AlarmHistory {
                status,
                transitions: vec![],
                actions: vec![action],
            },
        );
        documented_as(
            &doc,
            "NoteRequest",
            NoteRequest {
                comment: Some("on it".into()),
            },
        );
        documented_as(
            &doc,
            "CommentRequest",
            CommentRequest {
                comment: "on it".into(),
            },
        );
        documented_as(
            &doc,
            "ShelveRequest",
            ShelveRequest {
                reason: "pump test".into(),
                minutes: Some(60),
            },
        );
        documented_as(
            &doc,
            "AssignRequest",
            AssignRequest {
                user: Some("ben".into()),
            },
        );
        let rule = RuleRequest {
            name: "on call".into(),
            devices: vec!["dma-1".into()],
            series: vec!["flow_rate".into()],
            kinds: vec![AlarmKind::Outlier],
            min_stage: 2,
            channel: Channel::Webhook,
            target: "https://example.org/hook".into(),
            secret: Some("0123456789abcdef".into()),
            remind_minutes: Some(30),
            group_seconds: 60,
        };
        documented_as(&doc, "RuleRequest", rule);
        documented_as(
            &doc,
            "RuleRecord",
            RuleRecord {
                id: 1,
                name: "on call".into(),
                devices: vec![],
                series: vec![],
                kinds: vec![],
                min_stage: 2,
                channel: Channel::Email,
                target: "oncall@example.org".into(),
                remind_minutes: Some(30),
                group_seconds: 0,
            },
        );
        let notified = NotifiedAlarm {
            alarm_id: 1,
            kind: AlarmKind::Outlier,
            series: "flow_rate".into(),
            stage: 3,
            state: Transition::Opened,
            time: "2024-07-01T09:00:00+09:00".into(),
        };
        documented_as(&doc, "NotifiedAlarm", notified.clone());
        documented_as(
            &doc,
            "Notification",
            Notification {
                delivery: "hw-1".into(),
                rule: "on call".into(),
                device_id: "dma-1".into(),
                kind: "alarms".into(),
                count: 1,
                alarms: vec![notified],
            },
        );
        // Each enumeration is served with the values serde writes, and every property of
        // that type refers to it.
        let schemas = &doc["components"]["schemas"];
        for (schema, values) in [
            ("AlarmKind", names(AlarmKind::ALL)),
            ("Direction", names(Direction::ALL)),
            ("Transition", names(Transition::ALL)),
            ("MessageKind", names(Kind::ALL)),
            ("Channel", names(Channel::ALL)),
            ("OperatorAction", names(OperatorAction::ALL)),
        ] {
            assert_eq!(schemas[schema]["enum"], values, "{schema}");
        }
        let refers = |property: &Value, schema: &str| {
            assert_eq!(
                property["$ref"],
                format!("#/components/schemas/{schema}"),
                "{property}"
            );
        };
        refers(&schemas["RuleRequest"]["properties"]["channel"], "Channel");
        refers(
            &schemas["RuleRequest"]["properties"]["kinds"]["items"],
            "AlarmKind",
        );
        refers(
            &schemas["AlarmActionRecord"]["properties"]["action"],
            "OperatorAction",
        );
        refers(&schemas["AlarmStatus"]["properties"]["kind"], "AlarmKind");
        refers(&schemas["Envelope"]["properties"]["kind"], "MessageKind");
        let alert = &schemas["AlertBody"]["properties"];
        refers(&alert["kind"], "AlarmKind");
        refers(&alert["direction"], "Direction");
        refers(&alert["state"], "Transition");
        // The document as written lists no value of them by hand.
        let written: Value = serde_json::from_str(super::OPENAPI_SOURCE).unwrap();
        for schema in ["AlarmKind", "Channel", "OperatorAction"] {
            assert!(written["components"]["schemas"][schema]["enum"].is_null());
        }
        assert!(!super::OPENAPI_SOURCE.contains("night_flow"));
    }
}

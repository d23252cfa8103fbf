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

/// The OpenAPI document of these routes (checked against them by the tests).
pub const OPENAPI: &str = include_str!("../openapi.json");

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
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
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

    use super::OPENAPI;

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
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
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
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["RuleRequest"]["properties"]["channel"]["enum"],
            names(&Channel::ALL)
        );
        assert_eq!(
            schemas["AlarmActionRecord"]["properties"]["action"]["enum"],
            names(&OperatorAction::ALL)
        );
        assert_eq!(
            schemas["AlarmStatus"]["properties"]["kind"]["enum"],
            names(&AlarmKind::ALL)
        );
        assert_eq!(
            schemas["Envelope"]["properties"]["kind"]["enum"],
            names(&Kind::ALL)
        );
        let alert = &schemas["AlertBody"]["properties"];
        assert_eq!(alert["kind"]["enum"], names(&AlarmKind::ALL));
        assert_eq!(alert["direction"]["enum"], names(&Direction::ALL));
        assert_eq!(alert["state"]["enum"], names(&Transition::ALL));
    }
}

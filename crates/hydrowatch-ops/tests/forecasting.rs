//! The daemon's forecast and weekly retraining on a real database: a model is trained and saved
//! when missing, and a retraining records both backtest scores and keeps the better model.

use hydrowatch_core::Reading;
use hydrowatch_forecast::{Fit, Fitted, ForecastError, Forecaster, History, Holidays};
use hydrowatch_ops::forecasting::{forecast_series, retrain_series};
use hydrowatch_ops::training::{Order, carry_out};
use hydrowatch_store::{Kept, Store};

/// The forecaster with a small, quick network (the test is about the job, not the model).
fn quick(forecaster: &Forecaster, history: &History) -> Result<Fitted, ForecastError> {
    let mut f = forecaster.clone();
    let network = match &mut f {
        Forecaster::Network(c) => Some(c),
        Forecaster::Combination(c) => c.network.as_mut(),
        _ => None,
    };
    if let Some(c) = network {
        c.units = 8;
        c.train.epochs = 2;
    }
    f.fit(history)
}

/// Training in this process with [`quick`].
fn here(
    order: &Order,
) -> Result<hydrowatch_ops::training::Outcome, hydrowatch_ops::error::JobError> {
    carry_out(order, &quick)
}

#[test]
fn a_missing_model_is_trained_and_a_retraining_keeps_the_better_one_recording_both_scores() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("h.db"), chrono_tz::UTC).unwrap();
    let id = store.ensure_series("flow_rate", Some("m3/h")).unwrap();
    // 100 days, a reading every 10 minutes: a daily and a weekly pattern (enough for the
    // combination's network, trained on the history before its last 5 weeks).
    let readings: Vec<_> = (0..100 * 144)
        .map(|k| {
            let hour = (k / 6) % 24;
            let day = (k / 144) % 7;
            let value = 100.0
                + 30.0 * (hour as f64 / 24.0 * std::f64::consts::TAU).sin()
                + if day >= 5 { -15.0 } else { 0.0 }
                + (k % 5) as f64;
            (
                id,
                Reading {
                    ts: 1_700_000_000 - 1_700_000_000 % 86_400 + k * 600,
                    value,
                },
            )
        })
        .collect();
    store.insert_readings(&readings).unwrap();
    let models = dir.path().join("models");
    let series = store.series().unwrap().remove(0);
    let holidays = Holidays::default();

    let made = forecast_series(&store, &series, &models, &holidays, &here).unwrap();
    assert!(made.trained, "{}", made.note);
    assert_eq!(made.forecast.points.len(), 168);
    assert!(
        made.note.contains("default model combination"),
        "{}",
        made.note
    );
    assert!(models.join("flow_rate/combination.json").is_file());
    assert!(models.join("flow_rate/network/model.json").is_file());
    assert!(models.join("flow_rate/network/loss_history.csv").is_file());
    // The saved model is used the next time.
    let again = forecast_series(&store, &series, &models, &holidays, &here).unwrap();
    assert!(
        !again.trained && again.note.contains("from"),
        "{}",
        again.note
    );

    let r = retrain_series(&store, &series, &models, &holidays, &here, 42)
        .unwrap()
        .unwrap();
    assert_eq!(r.model, "combination");
    let (current, candidate) = (r.current_score.unwrap(), r.candidate_score.unwrap());
    let expected = if candidate < current {
        Kept::Candidate
    } else {
        Kept::Current
    };
    assert_eq!(r.kept, expected, "{r:?}");
    assert_eq!(store.retrains(series.id).unwrap(), vec![r]);

    // A damaged model in use: the candidate replaces it.
    std::fs::write(models.join("flow_rate/combination.json"), "{").unwrap();
    let r = retrain_series(&store, &series, &models, &holidays, &here, 43)
        .unwrap()
        .unwrap();
    assert_eq!((r.current_score, r.kept), (None, Kept::Candidate));
    assert!(hydrowatch_forecast::artifact::load_fitted(&models.join("flow_rate")).is_ok());
    assert!(!models.join(".flow_rate.new").exists() && !models.join(".flow_rate.old").exists());
}

/// A reading stored far ahead of the clock (a mistyped year, however it got in) does not
/// stretch the forecasters' history to it: 315,576 hours were trained on once.
#[test]
fn a_reading_from_the_future_does_not_stretch_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("h.db"), chrono_tz::UTC).unwrap();
    let id = store.ensure_series("flow_rate", Some("m3/h")).unwrap();
    let now = chrono::Utc::now().timestamp() / 3600 * 3600;
    let mut rows: Vec<_> = (1..=48)
        .map(|h| {
            (
                id,
                Reading {
                    ts: now - h * 3600,
                    value: 100.0,
                },
            )
        })
        .collect();
    rows.push((
        id,
        Reading {
            ts: 2_919_456_000, // 2062-07-07
            value: 100.0,
        },
    ));
    store.insert_readings(&rows).unwrap();
    let history =
        hydrowatch_ops::forecasting::db_history(&store, "flow_rate", &Holidays::default()).unwrap();
    assert!(
        history.series.values.len() <= 48,
        "{} hours",
        history.series.values.len()
    );
}

//! The daemon's forecast and weekly retraining on a real database: a model is trained and saved
//! when missing, and a retraining records both backtest scores and keeps the better model.

use hydrowatch_core::Reading;
use hydrowatch_edge::forecasting::{forecast_series, retrain_series};
use hydrowatch_forecast::neural::{FittedNeural, NeuralConfig};
use hydrowatch_forecast::{Fit, ForecastError, History, Holidays};
use hydrowatch_store::Store;

/// A small, quick network (the test is about the job, not the model).
fn quick(config: &NeuralConfig, history: &History) -> Result<FittedNeural, ForecastError> {
    let mut c = config.clone();
    c.units = 8;
    c.train.epochs = 2;
    c.fit(history)
}

#[test]
fn a_missing_model_is_trained_and_a_retraining_keeps_the_better_one_recording_both_scores() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("h.db"), chrono_tz::UTC).unwrap();
    let id = store.ensure_series("flow_rate", Some("m3/h")).unwrap();
    // 70 days, a reading every 10 minutes: a daily and a weekly pattern.
    let readings: Vec<_> = (0..70 * 144)
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

    let made = forecast_series(&store, &series, &models, &holidays, &quick).unwrap();
    assert!(made.trained, "{}", made.note);
    assert_eq!(made.forecast.points.len(), 168);
    assert!(models.join("flow_rate/model.json").is_file());
    assert!(models.join("flow_rate/loss_history.csv").is_file());
    // The saved model is used the next time.
    let again = forecast_series(&store, &series, &models, &holidays, &quick).unwrap();
    assert!(
        !again.trained && again.note.contains("from"),
        "{}",
        again.note
    );

    let r = retrain_series(&store, &series, &models, &holidays, &quick, 42)
        .unwrap()
        .unwrap();
    assert_eq!(r.model, "lstm/mimo");
    let (current, candidate) = (r.current_score.unwrap(), r.candidate_score.unwrap());
    let expected = if candidate < current {
        "candidate"
    } else {
        "current"
    };
    assert_eq!(r.kept, expected, "{r:?}");
    assert_eq!(store.retrains(series.id).unwrap(), vec![r]);

    // A damaged model in use: the candidate replaces it.
    std::fs::write(models.join("flow_rate/model.json"), "{").unwrap();
    let r = retrain_series(&store, &series, &models, &holidays, &quick, 43)
        .unwrap()
        .unwrap();
    assert_eq!((r.current_score, r.kept.as_str()), (None, "candidate"));
    assert!(hydrowatch_forecast::artifact::load(&models.join("flow_rate")).is_ok());
    assert!(!models.join(".flow_rate.new").exists() && !models.join(".flow_rate.old").exists());
}

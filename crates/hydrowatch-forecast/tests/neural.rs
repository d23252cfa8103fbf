//! Neural forecasters end to end, on small synthetic series (tests run unoptimised code, so the
//! models and data are tiny; see ../shared/burn-notes.md).

use hydrowatch_core::LocalTimeParser;
use hydrowatch_forecast::neural::{FEATURES, ModelKind, NeuralConfig, Strategy, TrainConfig};
use hydrowatch_forecast::{
    Fit, ForecastError, HORIZON, History, Holidays, Predict, Series, WEEK, artifact,
};

/// `weeks` of a noise-free demand-like pattern: a daily cycle whose size differs by weekday.
fn pattern(start: i64, weeks: usize) -> History {
    let values = (0..weeks * WEEK)
        .map(|i| {
            let hour = (i % 24) as f64;
            let day = (i / 24) % 7;
            40.0 + (10.0 + day as f64) * (hour / 24.0 * std::f64::consts::TAU).sin()
        })
        .collect();
    History::hourly(start, values, chrono_tz::UTC)
}

fn small(kind: ModelKind, strategy: Strategy) -> NeuralConfig {
    NeuralConfig {
        window: 24,
        units: 8,
        heads: 2,
        dropout: 0.0,
        train: TrainConfig {
            epochs: 6,
            batch: 32,
            learning_rate: 0.01,
            ..TrainConfig::default()
        },
        ..NeuralConfig::new(kind, strategy)
    }
}

/// The context of the synthetic histories: hourly, UTC, no holidays.
fn utc_context() -> artifact::Context {
    artifact::Context {
        step: 3600,
        timezone: chrono_tz::UTC,
        holidays: Holidays::default(),
    }
}

fn mae(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}

#[test]
fn a_model_fed_a_known_pattern_predicts_it_aligned() {
    let history = pattern(0, 7);
    let fitted = small(ModelKind::Lstm, Strategy::Mimo)
        .fit(&history)
        .unwrap();
    let fc = fitted.predict(&history).unwrap();
    let truth = pattern(0, 8).series.values[7 * WEEK..].to_vec();
    let err = mae(&fc.points, &truth);
    // The pattern's own amplitude is 10-16; a forecast shifted by even one hour errs by ~3.
    assert!(err < 2.0, "MAE {err}");
    let shifted: Vec<f64> = truth
        .iter()
        .cycle()
        .skip(1)
        .take(HORIZON)
        .copied()
        .collect();
    assert!(
        err < mae(&fc.points, &shifted),
        "aligned with the truth, not with a shifted copy"
    );
    assert_eq!(fc.start, history.series.end());
    assert!(fc.lower.iter().zip(&fc.upper).all(|(l, u)| l <= u));
    assert!(fitted.report.windows[0] > fitted.report.windows[1]);
    assert!(fitted.log[0].len() <= 6);
}

#[test]
fn every_model_and_strategy_gives_168_hours_after_the_history_across_dst() {
    // Hourly history ending just before the autumn change in Rome: the forecast's hours are
    // consecutive UTC hours; in local time 02:00 appears twice.
    let rome = chrono_tz::Europe::Rome;
    let end = LocalTimeParser::new(rome)
        .parse("2021-10-30 00:00")
        .unwrap();
    let mut history = pattern(end - 7 * WEEK as i64 * 3600, 7);
    history.timezone = rome;
    for (kind, strategy) in [
        (ModelKind::Lstm, Strategy::Direct),
        (ModelKind::Gru, Strategy::Recursive),
        (ModelKind::Rnn, Strategy::Mimo),
        (ModelKind::Transformer, Strategy::Mimo),
    ] {
        let mut config = small(kind, strategy);
        config.train.epochs = 1;
        let fc = config.fit(&history).unwrap().predict(&history).unwrap();
        assert_eq!(fc.points.len(), HORIZON, "{kind:?}/{strategy:?}");
        assert_eq!(fc.start, end);
        assert!(fc.points.iter().all(|v| v.is_finite()));
        assert_eq!(fc.model, format!("{}/{}", kind.name(), strategy.name()));
        let local: Vec<String> = (0..HORIZON)
            .map(|i| hydrowatch_core::time::format_local(fc.time(i), rome))
            .collect();
        assert_eq!(
            local
                .iter()
                .filter(|t| t.as_str() == "2021-10-31 02:00")
                .count(),
            2
        );
        assert_eq!(local[0], "2021-10-30 00:00");
        assert_eq!(
            local[HORIZON - 1],
            "2021-11-05 22:00",
            "168 hours later, in winter time"
        );
    }
}

#[test]
fn saved_and_loaded_models_forecast_identically() {
    let history = pattern(0, 7);
    let mut config = small(ModelKind::Gru, Strategy::Direct);
    config.train.epochs = 1;
    let fitted = config.fit(&history).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let context = utc_context();
    artifact::save(&fitted, &context, dir.path()).unwrap();
    let (loaded, ctx) = artifact::load(dir.path()).unwrap();
    assert_eq!(ctx.step, 3600);
    let (a, b) = (
        loaded.predict(&history).unwrap(),
        fitted.predict(&history).unwrap(),
    );
    assert!(
        a == b,
        "a loaded model forecasts exactly like the saved one"
    );
    assert_eq!(loaded.nets.len(), 7);
}

#[test]
fn bad_artifacts_are_clear_errors() {
    let history = pattern(0, 7);
    let mut config = small(ModelKind::Lstm, Strategy::Mimo);
    config.train.epochs = 1;
    let fitted = config.fit(&history).unwrap();
    let context = utc_context();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let msg = |e: ForecastError| e.to_string();

    let e = msg(artifact::load(&d.join("nothing")).err().unwrap());
    assert!(
        e.contains("model.json") && e.contains("hydrowatch train"),
        "{e}"
    );

    artifact::save(&fitted, &context, d).unwrap();
    let json = std::fs::read_to_string(d.join("model.json")).unwrap();
    std::fs::write(d.join("model.json"), &json[..json.len() / 2]).unwrap();
    assert!(msg(artifact::load(d).err().unwrap()).contains("corrupt"));

    std::fs::write(
        d.join("model.json"),
        json.replace(&format!("\"features\": {FEATURES}"), "\"features\": 9"),
    )
    .unwrap();
    let e = msg(artifact::load(d).err().unwrap());
    assert!(
        e.contains("9 input features") && e.contains("retrain"),
        "{e}"
    );

    std::fs::write(
        d.join("model.json"),
        json.replace(
            &format!("\"format\": {}", artifact::FORMAT),
            "\"format\": 99",
        ),
    )
    .unwrap();
    assert!(msg(artifact::load(d).err().unwrap()).contains("format"));

    std::fs::write(
        d.join("model.json"),
        json.replace("\"units\": 8", "\"units\": 16"),
    )
    .unwrap();
    let e = msg(artifact::load(d).err().unwrap());
    assert!(e.contains("net0.bpk"), "weights of another shape: {e}");

    std::fs::write(d.join("model.json"), &json).unwrap();
    std::fs::write(d.join("net0.bpk"), b"not weights").unwrap();
    assert!(msg(artifact::load(d).err().unwrap()).contains("net0.bpk"));
}

#[test]
fn too_short_history_and_input_gaps_are_explained() {
    let e = small(ModelKind::Lstm, Strategy::Mimo)
        .fit(&pattern(0, 2))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("too little history"), "{e}");
    let history = pattern(0, 7);
    let mut config = small(ModelKind::Lstm, Strategy::Mimo);
    config.train.epochs = 1;
    let fitted = config.fit(&history).unwrap();
    let mut gappy = history.clone();
    let n = gappy.series.values.len();
    for v in &mut gappy.series.values[n - 20..n - 5] {
        *v = f64::NAN;
    }
    let e = fitted.predict(&gappy).err().unwrap().to_string();
    assert!(e.contains("gap longer than 6 hours"), "{e}");
    let e = Series::resample(&[(0, 1.0), (60, f64::NAN)], 3600, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
}

#[test]
fn the_l1_loss_trains_and_is_recorded_in_the_model() {
    let history = pattern(0, 7);
    let mut config = small(ModelKind::Lstm, Strategy::Mimo);
    config.train.loss = hydrowatch_forecast::neural::Loss::L1;
    let fitted = config.fit(&history).unwrap();
    let truth = pattern(0, 8).series.values[7 * WEEK..].to_vec();
    let err = mae(&fitted.predict(&history).unwrap().points, &truth);
    assert!(err < 3.0, "MAE {err}");
    let dir = tempfile::tempdir().unwrap();
    let context = utc_context();
    artifact::save(&fitted, &context, dir.path()).unwrap();
    let json = std::fs::read_to_string(dir.path().join("model.json")).unwrap();
    assert!(
        json.contains("\"loss\": \"l1\""),
        "the loss is part of the model's record"
    );
    // A model.json written before the option existed reads as MSE.
    std::fs::write(
        dir.path().join("model.json"),
        json.replace(",\n      \"loss\": \"l1\"", ""),
    )
    .unwrap();
    let (loaded, _) = artifact::load(dir.path()).unwrap();
    assert_eq!(
        loaded.config.train.loss,
        hydrowatch_forecast::neural::Loss::Mse
    );
}

#[test]
fn a_listed_holiday_ahead_is_forecast_like_a_sunday_by_every_strategy() {
    // From Thursday 1970-01-01 (UTC): a daily cycle around 40 on working days, around 20 on
    // Sundays. The forecast starts on Thursday, day 49; day 50, a Friday, is a holiday.
    let values = (0..7 * WEEK)
        .map(|i| {
            let level = if (i / 24) % 7 == 3 { 20.0 } else { 40.0 };
            level + 5.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin()
        })
        .collect();
    let plain = History::hourly(0, values, chrono_tz::UTC);
    let mut listed = plain.clone();
    listed.holidays = Holidays::new(vec![chrono::NaiveDate::from_ymd_opt(1970, 2, 20).unwrap()]);
    let holiday_mean = |h: &History, config: &NeuralConfig| {
        let fc = config.fit(h).unwrap().predict(h).unwrap();
        fc.points[24..48].iter().sum::<f64>() / 24.0
    };
    for strategy in [Strategy::Mimo, Strategy::Direct, Strategy::Recursive] {
        let mut config = small(ModelKind::Lstm, strategy);
        config.train.epochs = 2;
        let as_sunday = holiday_mean(&listed, &config);
        let as_friday = holiday_mean(&plain, &config);
        assert!(as_sunday < 30.0, "{strategy:?}: {as_sunday}");
        assert!(as_friday > 35.0, "{strategy:?}: {as_friday}");
    }
}

#!/usr/bin/env python3
"""The statistical peer of hydrowatch's forecasters: Python statsforecast's
MSTL(season_length=[24, 168], trend_forecaster=AutoETS(model="ZZN")) fitted on the last 16 weeks
before each origin, as a user of that library would run it on hourly data.

Writes, for each readings file `time,value` (local times in --timezone), OUT/<stem>.csv with
`origin,time,value,lower,upper` (RFC 3339 with the local offset; lower and upper are the 80%
prediction interval, the 10th and 90th percentiles), for the same origins `hydrowatch backtest`
forecasts from: --origins weekly, every local Monday 00:00 of the last --weeks weeks whose 168
hours lie inside the data (or --origins daily, every local midnight). Score them beside
hydrowatch's forecasters, in one run:

    benches/statsforecast/setup.sh ~/.cache/hydrowatch-peer-venv
    ~/.cache/hydrowatch-peer-venv/bin/python benches/statsforecast/peer.py \
        --timezone Europe/Rome --out /tmp/peer ../shared/data/dma-inflow/dma_*.csv
    hydrowatch backtest --timezone Europe/Rome --origins weekly \
        --external statsforecast=/tmp/peer ../shared/data/dma-inflow/dma_*.csv

The peer sees the series as statsforecast expects it: one value per real (UTC) hour, gaps
interpolated linearly (statsforecast refuses missing values); the hours it forecasts are the 168
real hours after the origin, as hydrowatch's.
"""
import argparse
import os
import sys
import time
from multiprocessing import Pool

import numpy as np
import pandas as pd
from statsforecast.models import MSTL, AutoETS

WEEK = 168
HORIZON = 168


def hourly(path, tz):
    """The file's readings as one value per real hour, from the first reading to the last."""
    df = pd.read_csv(path)
    local = pd.to_datetime(df["time"])
    # The repeated autumn hour appears twice in file order: first summer time, then winter.
    utc = local.dt.tz_localize(tz, ambiguous="infer", nonexistent="raise").dt.tz_convert("UTC")
    s = pd.Series(df["value"].values, index=utc).dropna()
    s = s.groupby(level=0).mean()
    index = pd.date_range(s.index[0], s.index[-1], freq="h")
    return s.reindex(index)


def origins(series, tz, weeks, schedule):
    """Indices of the local midnights (or Mondays 00:00) of the last `weeks` weeks whose 168
    hours lie inside the series: hydrowatch's rule (backtest::origins)."""
    n = len(series)
    first = max(n - weeks * WEEK, 1)
    dates = series.index.tz_convert(tz).date
    out = []
    for i in range(first, n - HORIZON + 1):
        if dates[i] != dates[i - 1] and (schedule == "daily" or dates[i].weekday() == 0):
            out.append(i)
    return out


def forecast(args):
    y, index, tz = args
    model = MSTL(season_length=[24, WEEK], trend_forecaster=AutoETS(model="ZZN"))
    fc = model.forecast(y=y, h=HORIZON, level=[80])
    return [
        (index[0].tz_convert(tz).isoformat(), t.tz_convert(tz).isoformat(), v, lo, hi)
        for t, v, lo, hi in zip(index, fc["mean"], fc["lo-80"], fc["hi-80"])
    ]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--timezone", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--origins", choices=["weekly", "daily"], default="weekly")
    p.add_argument("--weeks", type=int, default=None, help="default 52 weekly, 8 daily")
    p.add_argument("--fit-weeks", type=int, default=16)
    a = p.parse_args()
    weeks = a.weeks or (52 if a.origins == "weekly" else 8)
    os.makedirs(a.out, exist_ok=True)
    started = time.time()
    jobs, names = [], []
    for path in a.files:
        s = hourly(path, a.timezone)
        stem = os.path.splitext(os.path.basename(path))[0]
        for o in origins(s, a.timezone, weeks, a.origins):
            past = s.iloc[max(0, o - a.fit_weeks * WEEK):o].interpolate(limit_direction="both")
            index = pd.date_range(s.index[o], periods=HORIZON, freq="h")
            jobs.append((past.values.astype(float), index, a.timezone))
            names.append(stem)
    with Pool() as pool:
        results = pool.map(forecast, jobs)
    by_file = {}
    for stem, rows in zip(names, results):
        by_file.setdefault(stem, []).extend(rows)
    for stem, rows in by_file.items():
        with open(os.path.join(a.out, f"{stem}.csv"), "w") as f:
            f.write("origin,time,value,lower,upper\n")
            for r in rows:
                f.write(f"{r[0]},{r[1]},{float(r[2])!r},{float(r[3])!r},{float(r[4])!r}\n")
    print(
        f"{len(jobs)} forecasts of {len(by_file)} series in {time.time() - started:.0f} s -> {a.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

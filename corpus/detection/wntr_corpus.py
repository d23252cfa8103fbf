#!/usr/bin/env python3
"""Detection corpus from hydraulic simulations: EPANET (through WNTR) runs of several networks,
with the sensors a utility would install at a DMA's inlet: the inflow (m3/h) and the pressure at
a critical node (metres of head, as EPANET gives it). Nothing here is tuned to hydrowatch: the
hydraulics decide how a burst moves flow and pressure.

Each scenario writes into OUT:
  <name>.csv          time,flow_rate,pressure (local times, to the second where the interval
                      is shorter than a minute)
  <name>.labels.csv   start,end,kind,series (what `hydrowatch detect --labels` scores)
  <name>.toml         the device configuration a utility would write: the zone, the series'
                      names and units, nothing else
  <name>.zone.toml    the zone alone (every series setting at hydrowatch's defaults)

What a scenario holds (seeded, reproducible):
  - demand: every junction follows a realistic diurnal pattern in hourly steps (EPANET's
    pattern step: the flow and pressure step every hour), weekends later and flatter, each day
    scaled by its own random factor (weather), over the network's own patterns where it has
    pumps and tanks switching by their controls;
  - bursts: a pipe opened to an emitter at a junction (its flow depends on the pressure there),
    5-50% of the mean inflow, at different hours, open for 2-8 hours;
  - slow leaks: extra demand at a junction growing over 3 days to 3-8% of the mean inflow, then
    steady until repaired 3-5 days later;
  - sensor faults, applied to the measured values: stuck (the last value repeated for 45
    minutes), silent (no reading for 40 minutes), spikes (1-3 readings), drift (pressure
    creeping 0.5 m a day for 4 days), a unit change (the flow meter reports L/s instead of
    m3/h for 6 hours);
  - measurement noise (flow 1%, pressure 0.1 m) and quantisation (flow 0.01, pressure 0.01).
The first two weeks hold no event: the detector learns the network then.

    corpus/detection/setup.sh ~/.cache/hydrowatch-wntr-venv
    ~/.cache/hydrowatch-wntr-venv/bin/python corpus/detection/wntr_corpus.py --out corpus-out
"""
import argparse
import math
import os
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import wntr

WEEK_H = 168


def library(name):
    """A network shipped with WNTR."""
    return os.path.join(os.path.dirname(wntr.__file__), "library", "networks", f"{name}.inp")


def small_dma(seed):
    """A gravity-fed DMA of 24 junctions on a 4x6 grid of looped mains, fed from a reservoir
    through one inlet main: 40-60 m of head, about 100 m3/h."""
    rng = np.random.default_rng(seed)
    wn = wntr.network.WaterNetworkModel()
    wn.add_reservoir("R", base_head=120.0)
    rows, cols = 4, 6
    for r in range(rows):
        for c in range(cols):
            elev = 60.0 + 3.0 * r + 2.0 * c + rng.uniform(-2, 2)
            # base demand in m3/s: ~100 m3/h in all.
            wn.add_junction(f"J{r}{c}", base_demand=100.0 / 3600 / (rows * cols), elevation=elev)
    wn.add_pipe("inlet", "R", "J00", length=800.0, diameter=0.25, roughness=110.0)
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols:
                wn.add_pipe(f"P{r}{c}h", f"J{r}{c}", f"J{r}{c + 1}", length=150.0,
                            diameter=0.15, roughness=100.0)
            if r + 1 < rows:
                wn.add_pipe(f"P{r}{c}v", f"J{r}{c}", f"J{r + 1}{c}", length=150.0,
                            diameter=0.15, roughness=100.0)
    return wn, "inlet", f"J{rows - 1}{cols - 1}"


def pumped_dma(seed):
    """A DMA fed by a pump from a well into the network, with an elevated tank that fills at
    night and drains by day (the pump runs on the tank's level): pressure swings with the tank
    and steps when the pump switches."""
    wn, inlet, critical = small_dma(seed)
    wn.remove_link("inlet")
    wn.remove_node("R")
    wn.add_reservoir("W", base_head=40.0)
    wn.add_junction("PS", base_demand=0.0, elevation=40.0)
    wn.add_pipe("suction", "W", "PS", length=10.0, diameter=0.3, roughness=120.0)
    wn.add_curve("pumpcurve", "HEAD", [(0.05, 95.0)])
    wn.add_pump("pump", "PS", "J00", pump_type="HEAD", pump_parameter="pumpcurve")
    wn.add_tank("T", elevation=95.0, init_level=4.0, min_level=0.5, max_level=8.0,
                diameter=14.0)
    wn.add_pipe("tankmain", "T", "J05", length=300.0, diameter=0.25, roughness=110.0)
    # The pump runs while the tank is below 3 m, stops above 7.
    tank = wn.get_node("T")
    pump = wn.get_link("pump")
    on = wntr.network.controls.Control(
        wntr.network.controls.ValueCondition(tank, "level", "<", 3.0),
        wntr.network.controls.ControlAction(pump, "status", 1))
    off = wntr.network.controls.Control(
        wntr.network.controls.ValueCondition(tank, "level", ">", 7.0),
        wntr.network.controls.ControlAction(pump, "status", 0))
    wn.add_control("pump_on", on)
    wn.add_control("pump_off", off)
    return wn, "pump", critical


def diurnal(hours, local_hour, rng):
    """Hourly demand multipliers of the simulation's hours (`local_hour(h)`: the local wall-clock
    time of hour h, so demand follows the clock across daylight-saving changes): a morning and
    an evening peak, weekends later and flatter, each day scaled by a random factor (weather,
    events)."""
    weekday = np.array([0.45, 0.35, 0.3, 0.3, 0.35, 0.55, 1.1, 1.6, 1.5, 1.25, 1.1, 1.05,
                        1.1, 1.05, 0.95, 0.9, 0.95, 1.1, 1.35, 1.45, 1.3, 1.05, 0.8, 0.6])
    weekend = np.array([0.55, 0.45, 0.35, 0.3, 0.3, 0.35, 0.5, 0.8, 1.15, 1.4, 1.45, 1.4,
                        1.35, 1.2, 1.05, 1.0, 1.0, 1.1, 1.25, 1.3, 1.2, 1.0, 0.8, 0.65])
    out = np.empty(hours)
    factor = 1.0
    for h in range(hours):
        t = local_hour(h)
        if t.hour == 0 or h == 0:
            # Persistent day factors: warm spells last days.
            factor = 0.7 * factor + 0.3 * rng.normal(1.0, 0.12)
        shape = weekend if t.weekday() >= 5 else weekday
        out[h] = max(0.05, shape[t.hour] * factor)
    return out


def simulate(spec, out_dir, rng):
    """Runs one scenario and writes its files."""
    wn, inlet, critical = spec["network"](spec["seed"])
    tz = ZoneInfo(spec["timezone"])
    # The simulation runs on real seconds from local midnight of the start day.
    start = spec["start"].replace(tzinfo=tz).astimezone(timezone.utc)

    def at(sec):
        """The local wall-clock time `sec` seconds into the simulation."""
        return (start + timedelta(seconds=int(sec))).astimezone(tz).replace(tzinfo=None)
    days = spec["days"]
    step = spec["interval_s"]
    hours = days * 24
    wn.options.time.duration = days * 86400
    wn.options.time.hydraulic_timestep = min(step, 300)
    wn.options.time.report_timestep = step
    wn.options.time.pattern_timestep = 3600
    wn.options.time.quality_timestep = 0
    wn.options.hydraulic.demand_model = "DD"
    demand = diurnal(hours, lambda h: at(h * 3600), rng)
    wn.add_pattern("diurnal", demand.tolist())
    for name, j in wn.junctions():
        if j.demand_timeseries_list and j.demand_timeseries_list[0].base_value > 0:
            j.demand_timeseries_list[0].pattern_name = "diurnal"
    # The mean inflow without events, for sizing them.
    probe = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(out_dir, "probe"))
    mean_flow = float(np.abs(probe.link["flowrate"][inlet]).mean())  # m3/s
    mean_pressure = probe.node["pressure"].mean()
    labels = []
    events_from = 14 * 86400
    junctions = [n for n, j in wn.junctions() if n not in ("PS",)]

    # Bursts: a closed pipe to an emitter node, opened and closed by time controls.
    for k in range(spec["bursts"]):
        size = [0.05, 0.1, 0.2, 0.5, 0.1, 0.3, 0.05, 0.15][k % 8]
        node = junctions[rng.integers(len(junctions))]
        p = max(float(mean_pressure[node]), 5.0)
        t0 = events_from + k * ((days * 86400 - events_from) // (spec["bursts"] + 1))
        # A different hour each time, to the minute.
        t0 += int(rng.integers(0, 24)) * 3600 + int(rng.integers(0, 60)) * 60
        length = int(rng.integers(2, 9)) * 3600
        b = f"burst{k}"
        j = wn.get_node(node)
        wn.add_junction(b, base_demand=0.0, elevation=j.elevation)
        wn.get_node(b).emitter_coefficient = size * mean_flow / math.sqrt(p)
        wn.add_pipe(f"{b}pipe", node, b, length=1.0, diameter=0.3, roughness=120.0,
                    initial_status="CLOSED")
        pipe = wn.get_link(f"{b}pipe")
        for name, status, when in ((f"{b}open", 1, t0), (f"{b}close", 0, t0 + length)):
            c = wntr.network.controls.Control._time_control(wn, when, "SIM_TIME", False,
                                                            wntr.network.controls.ControlAction(pipe, "status", status))
            wn.add_control(name, c)
        for series in ("flow_rate", "pressure"):
            labels.append((at(t0), at(t0 + length), "burst", series))
    # Slow leaks: a demand growing hour by hour over 3 days, steady until repaired.
    for k in range(spec["leaks"]):
        node = junctions[rng.integers(len(junctions))]
        size = [0.04, 0.08, 0.03][k % 3] * mean_flow
        t0h = (events_from // 3600) + 24 * (3 + 9 * k) + int(rng.integers(0, 24))
        grow, hold = 72, int(rng.integers(3, 6)) * 24
        pattern = np.zeros(hours)
        for h in range(t0h, min(hours, t0h + grow + hold)):
            pattern[h] = min(1.0, (h - t0h + 1) / grow)
        wn.add_pattern(f"leak{k}", pattern.tolist())
        wn.get_node(node).add_demand(size, f"leak{k}")
        end_h = min(hours, t0h + grow + hold)
        labels.append((at(t0h * 3600), at(end_h * 3600), "leak", "flow_rate"))
    results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(out_dir, "sim"))
    for f in os.listdir(out_dir):
        if f.startswith(("probe.", "sim.")):
            os.remove(os.path.join(out_dir, f))
    secs = results.link["flowrate"].index.to_numpy().astype(np.int64)
    flow = np.abs(results.link["flowrate"][inlet].to_numpy()) * 3600.0  # m3/h
    pressure = results.node["pressure"][critical].to_numpy()  # m
    keep = secs < days * 86400
    secs, flow, pressure = secs[keep], flow[keep], pressure[keep]
    # Measurement noise and quantisation.
    flow = flow * (1 + rng.normal(0, 0.01, flow.size))
    pressure = pressure + rng.normal(0, 0.1, pressure.size)
    present = np.ones(secs.size, dtype=bool)
    n_per_min = max(1, 60 // step)

    def span(t0, minutes):
        return (secs >= t0) & (secs < t0 + minutes * 60)

    fault_days = list(range(16, days - 1))
    rng.shuffle(fault_days)
    faults = spec["faults"]
    for i, kind in enumerate(faults):
        day = fault_days[i % len(fault_days)]
        t0 = day * 86400 + int(rng.integers(1, 23)) * 3600 + int(rng.integers(0, 60)) * 60
        series = "flow_rate" if kind in ("unit_change",) else ("pressure" if i % 2 else "flow_rate")
        values = flow if series == "flow_rate" else pressure
        if kind == "stuck":
            m = span(t0, 45)
            first = np.argmax(m)
            values[m] = values[first]
            labels.append((at(t0), at(t0 + 45 * 60), "stuck", series))
        elif kind == "silent":
            m = span(t0, 40)
            present &= ~m
            labels.append((at(t0), at(t0 + 40 * 60), "silent", "flow_rate"))
            labels.append((at(t0), at(t0 + 40 * 60), "silent", "pressure"))
        elif kind == "spike":
            m = np.flatnonzero(span(t0, 1 + int(rng.integers(0, 3))))
            values[m] = values[m] * (3.0 if series == "flow_rate" else 0.3)
            end = t0 + (len(m) // n_per_min + 1) * 60
            labels.append((at(t0), at(end), "spike", series))
        elif kind == "drift":
            m = span(t0, 4 * 24 * 60)
            pressure[m] += 0.5 * (secs[m] - t0) / 86400.0
            labels.append((at(t0), at(t0 + 4 * 86400), "drift", "pressure"))
        elif kind == "unit_change":
            m = span(t0, 6 * 60)
            flow[m] = flow[m] / 3.6
            labels.append((at(t0), at(t0 + 6 * 3600), "unit_change", "flow_rate"))
    flow = np.round(flow, 2)
    pressure = np.round(pressure, 2)
    fmt = "%Y-%m-%d %H:%M" if step % 60 == 0 else "%Y-%m-%d %H:%M:%S"
    times = [at(s).strftime(fmt) for s in secs[present]]
    pd.DataFrame({"time": times, "flow_rate": flow[present], "pressure": pressure[present]}).to_csv(
        os.path.join(out_dir, f"{spec['name']}.csv"), index=False)
    labels.sort()
    with open(os.path.join(out_dir, f"{spec['name']}.labels.csv"), "w") as f:
        f.write("start,end,kind,series\n")
        for s, e, k, series in labels:
            f.write(f"{s.strftime('%Y-%m-%d %H:%M:%S')},{e.strftime('%Y-%m-%d %H:%M:%S')},{k},{series}\n")
    with open(os.path.join(out_dir, f"{spec['name']}.zone.toml"), "w") as f:
        f.write(f'[device]\nid = "{spec["name"]}"\ntimezone = "{spec["timezone"]}"\n')
    with open(os.path.join(out_dir, f"{spec['name']}.toml"), "w") as f:
        f.write(
            f'# {spec["name"]}: {spec["about"]}\n'
            f'[device]\nid = "{spec["name"]}"\ntimezone = "{spec["timezone"]}"\n\n'
            '[[series]]\nname = "flow_rate"\nunit = "m3/h"\n\n'
            '[[series]]\nname = "pressure"\nunit = "m"\n')
    return len(times), mean_flow * 3600, float(np.mean(pressure))


def scenarios(weeks, seed):
    days = weeks * 7
    monday = datetime(2024, 3, 4)
    faults = ["stuck", "silent", "spike", "stuck", "silent", "spike", "drift", "unit_change"]
    return [
        dict(name="wntr-net1-1min", about="EPANET example Net1: a pump, a tank, 1-minute data",
             network=lambda s: (wntr.network.WaterNetworkModel(library("Net1")), "9", "32"),
             seed=seed, start=monday, days=days, interval_s=60, bursts=8, leaks=2, faults=faults,
             timezone="America/Chicago"),
        dict(name="wntr-net3-1min", about="EPANET example Net3: two sources, pumps, three tanks",
             network=lambda s: (wntr.network.WaterNetworkModel(library("Net3")), "60", "255"),
             seed=seed + 1, start=monday, days=days, interval_s=60, bursts=8, leaks=2,
             faults=faults, timezone="America/New_York"),
        dict(name="wntr-gravity-dma-1min", about="a gravity-fed looped DMA of 24 junctions",
             network=small_dma, seed=seed + 2, start=monday, days=days, interval_s=60,
             bursts=8, leaks=2, faults=faults, timezone="Europe/Lisbon"),
        dict(name="wntr-pumped-dma-5min", about="a pumped DMA with a tank, 5-minute data",
             network=pumped_dma, seed=seed + 3, start=monday, days=days, interval_s=300,
             bursts=8, leaks=2, faults=faults, timezone="Australia/Perth"),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--weeks", type=int, default=6, help="weeks simulated (the first 2 hold no event)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", help="one scenario by name")
    args = ap.parse_args()
    if args.weeks < 4:
        sys.exit("--weeks: at least 4 (2 to learn, 2 with events)")
    os.makedirs(args.out, exist_ok=True)
    for spec in scenarios(args.weeks, args.seed):
        if args.only and spec["name"] != args.only:
            continue
        rng = np.random.default_rng(spec["seed"])
        rows, q, p = simulate(spec, args.out, rng)
        print(f"{spec['name']}: {rows} rows, mean inflow {q:.1f} m3/h, mean pressure {p:.1f} m")


if __name__ == "__main__":
    main()

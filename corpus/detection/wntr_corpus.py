#!/usr/bin/env python3
"""Detection corpus from hydraulic simulations: EPANET (through WNTR) runs of several networks,
with the sensors a utility would install at a DMA's inlet: the inflow (m3/h) and the pressure at
a critical node (metres of head, as EPANET gives it). Nothing here is tuned to hydrowatch: the
hydraulics decide how a burst moves flow and pressure.

Each scenario writes into OUT:
  <name>.csv          time,<series>... (local times, to the second where the interval is
                      shorter than a minute)
  <name>.twin.csv     its leak-free twin: the same random draws (demand, noise, the timing of
                      everything) simulated without any event, to measure false alarms and the
                      chance of a find on (`hydrowatch detect --twin`); EPANET's solution of
                      the two networks (one holds the closed burst pipes) differs in the last
                      digit, so a tank's level controls may switch a report step apart
  <name>.labels.csv   start,end,kind,series (what `hydrowatch detect --labels` scores)
  <name>.toml         the device configuration a utility would write: the zone, the series'
                      names and units, nothing else
  <name>.zone.toml    the zone alone (every series setting at hydrowatch's defaults)

The scenarios: four of 6 weeks (EPANET's Net1 and Net3, a gravity DMA and a pumped DMA of our
own: inflow in m3/h and the pressure at a critical node in metres), and a pumped town of our own
for a year at 5 and at 15 minutes (two inflow meters, three pressures, and in its `-tank` variant
the hill tank's level and the booster pump's flow; the pump runs on the tank's level, so it
switches at times that move from day to day, and its flow passes through both inflow meters).
With --holdout, the hold-out scenarios instead (the town at 10x12 junctions every 10 minutes, the
gravity DMA with another seed): score them, never choose a default on them.

What a scenario holds (seeded, reproducible):
  - demand: every junction follows a realistic diurnal pattern in hourly steps (EPANET's
    pattern step: the flow and pressure step every hour), weekends later and flatter, each day
    scaled by its own persistent random factor (weather) and, for the town, by the season
    (+-15%), over the network's own patterns where it has pumps and tanks switching by their
    controls;
  - bursts: a pipe opened to an emitter at a junction (its flow depends on the pressure there),
    5-50% of the mean inflow (the town: 10-50%), at different hours, open for 2-8 hours;
  - leaks: the 6-week scenarios' slow leaks grow over 3 days to 3-8% of the mean inflow and are
    repaired 3-5 days later; the town's 8 are 2-20% of the mean inflow, abrupt or incipient
    (growing over 1-3 weeks, labelled from the hour they reach 5% or their full size), a third
    repaired after 1-4 months, the rest never;
  - sensor faults, applied to the measured values: stuck (the last value repeated for 45
    minutes), silent (no reading for 40 minutes), spikes (1-3 readings), drift (pressure
    creeping 0.5 m a day for 4 days), a unit change (the flow meter reports L/s instead of
    m3/h for 6 hours);
  - measurement noise (flow 1%, pressure 0.1 m, a tank's level 1 cm) and quantisation (0.01).
The first two weeks (the town: eight) hold no event: the detector learns the network then.

    corpus/detection/setup.sh ~/.cache/hydrowatch-wntr-venv
    ~/.cache/hydrowatch-wntr-venv/bin/python corpus/detection/wntr_corpus.py --out corpus-out
    ~/.cache/hydrowatch-wntr-venv/bin/python corpus/detection/wntr_corpus.py --out corpus-holdout --holdout
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


def pumped_town(seed, rows=8, cols=10):
    """A town zone of rows x cols looped junctions fed from two reservoirs through two inlet
    mains (two inflow meters), about 190 m3/h in all, with a booster pump at the zone's edge that
    lifts water from the town's mains into an elevated tank on a hill; the tank feeds a high
    district of 12 junctions by gravity. The pump runs on the tank's level (on below 2 m, off
    above 5.5 m), so it switches at times that move from day to day, and its flow passes
    through both inflow meters."""
    rng = np.random.default_rng(seed)
    wn = wntr.network.WaterNetworkModel()
    wn.add_reservoir("R1", base_head=92.0)
    wn.add_reservoir("R2", base_head=90.0)
    low = rows * cols
    for r in range(rows):
        for c in range(cols):
            elev = 20.0 + 1.5 * r + 1.0 * c + rng.uniform(-2, 2)
            wn.add_junction(f"J{r}_{c}", base_demand=150.0 / 3600 / low, elevation=elev)
    for r in range(rows):
        for c in range(cols):
            if c + 1 < cols:
                wn.add_pipe(f"P{r}_{c}h", f"J{r}_{c}", f"J{r}_{c + 1}", length=200.0,
                            diameter=0.2 if r in (0, rows - 1) else 0.15, roughness=100.0)
            if r + 1 < rows:
                wn.add_pipe(f"P{r}_{c}v", f"J{r}_{c}", f"J{r + 1}_{c}", length=200.0,
                            diameter=0.2 if c in (0, cols - 1) else 0.15, roughness=100.0)
    wn.add_pipe("inlet_a", "R1", "J0_0", length=1500.0, diameter=0.3, roughness=110.0)
    wn.add_pipe("inlet_b", "R2", f"J{rows - 1}_{cols - 1}", length=1200.0, diameter=0.3,
                roughness=110.0)
    # The high district and its tank.
    for r in range(3):
        for c in range(4):
            wn.add_junction(f"H{r}_{c}", base_demand=40.0 / 3600 / 12,
                            elevation=62.0 + 2.0 * r + c + rng.uniform(-1, 1))
            if c > 0:
                wn.add_pipe(f"Q{r}_{c}h", f"H{r}_{c - 1}", f"H{r}_{c}", length=150.0,
                            diameter=0.1, roughness=100.0)
            if r > 0:
                wn.add_pipe(f"Q{r}_{c}v", f"H{r - 1}_{c}", f"H{r}_{c}", length=150.0,
                            diameter=0.1, roughness=100.0)
    wn.add_tank("T", elevation=90.0, init_level=3.5, min_level=0.3, max_level=6.5,
                diameter=16.0)
    wn.add_pipe("tankmain", "T", "H0_0", length=400.0, diameter=0.2, roughness=110.0)
    wn.add_junction("PS", base_demand=0.0, elevation=25.0)
    wn.add_pipe("suction", f"J0_{cols - 1}", "PS", length=20.0, diameter=0.25, roughness=120.0)
    wn.add_junction("PD", base_demand=0.0, elevation=25.0)
    wn.add_curve("boost", "HEAD", [(100.0 / 3600, 40.0)])
    wn.add_pump("pump", "PS", "PD", pump_type="HEAD", pump_parameter="boost")
    wn.add_pipe("riser", "PD", "T", length=600.0, diameter=0.2, roughness=110.0)
    tank, pump = wn.get_node("T"), wn.get_link("pump")
    C = wntr.network.controls
    wn.add_control("pump_on", C.Control(C.ValueCondition(tank, "level", "<", 2.0),
                                        C.ControlAction(pump, "status", 1)))
    wn.add_control("pump_off", C.Control(C.ValueCondition(tank, "level", ">", 5.5),
                                         C.ControlAction(pump, "status", 0)))
    sensors = {
        "inflow_a": ("flow", "inlet_a", "m3/h"),
        "inflow_b": ("flow", "inlet_b", "m3/h"),
        "pressure_a": ("pressure", f"J{rows - 1}_0", "m"),
        "pressure_b": ("pressure", f"J{rows // 2}_{cols // 2}", "m"),
        "pressure_c": ("pressure", "H2_3", "m"),
        "tank_level": ("level", "T", "m"),
        "pump_flow": ("flow", "pump", "m3/h"),
    }
    return wn, sensors


def diurnal(hours, local_hour, rng, seasonal=False):
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
        season = 1.0 + 0.15 * math.sin(2 * math.pi * (t.timetuple().tm_yday - 100) / 365.0) \
            if seasonal else 1.0
        out[h] = max(0.05, shape[t.hour] * factor * season)
    return out


def sensors_of(built):
    """The network and its sensors {series: (quantity, element, unit)} of a network builder's
    answer: the older builders give (network, inlet link, critical node)."""
    if len(built) == 2:
        return built
    wn, inlet, critical = built
    return wn, {"flow_rate": ("flow", inlet, "m3/h"), "pressure": ("pressure", critical, "m")}


def plan_events(spec, days, mean_flow, junctions, rng):
    """Every event of a scenario, drawn from `rng` in a fixed order (so that the leak-free twin,
    which draws the same numbers and applies none, shares every other random draw)."""
    events_from = spec.get("learn_days", 14) * 86400
    bursts, leaks = [], []
    year = spec.get("plan") == "year"
    burst_sizes = [0.1, 0.2, 0.5, 0.15, 0.3, 0.1, 0.25, 0.12] if year else \
        [0.05, 0.1, 0.2, 0.5, 0.1, 0.3, 0.05, 0.15]
    for k in range(spec["bursts"]):
        node = junctions[rng.integers(len(junctions))]
        t0 = events_from + k * ((days * 86400 - events_from) // (spec["bursts"] + 1))
        # A different hour each time, to the minute.
        t0 += int(rng.integers(0, 24)) * 3600 + int(rng.integers(0, 60)) * 60
        length = int(rng.integers(2, 9)) * 3600
        bursts.append(dict(node=node, size=burst_sizes[k % len(burst_sizes)], t0=t0,
                           length=length))
    for k in range(spec["leaks"]):
        node = junctions[rng.integers(len(junctions))]
        if year:
            # 2-20% of the mean inflow, abrupt or incipient (growing over 1-3 weeks), repaired
            # after 1-4 months or never; spaced so that their first days do not overlap.
            share = [0.02, 0.05, 0.1, 0.03, 0.08, 0.2, 0.05, 0.04][k % 8]
            gap = (days * 86400 - events_from) // (spec["leaks"] + 1) // 3600
            t0h = events_from // 3600 + k * gap + gap // 2 + int(rng.integers(0, 24))
            grow = 1 if k % 2 == 0 else int(rng.integers(7, 22)) * 24
            repaired = int(rng.integers(30, 121)) * 24 if k % 3 == 1 else None
        else:
            share = [0.04, 0.08, 0.03][k % 3]
            t0h = (events_from // 3600) + 24 * (3 + 9 * k) + int(rng.integers(0, 24))
            grow = 72
            repaired = grow + int(rng.integers(3, 6)) * 24
        leaks.append(dict(node=node, size=share * mean_flow, share=share, t0h=t0h, grow=grow,
                          repaired=repaired, incipient=grow > 1 and year))
    return bursts, leaks


def simulate(spec, out_dir, rng, twin=False):
    """Runs one scenario and writes its files; `twin`: the same draws without any event (the
    leak-free twin, `<name>.twin.csv`), to measure false alarms and chance on."""
    wn, sensors = sensors_of(spec["network"](spec["seed"]))
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
    demand = diurnal(hours, lambda h: at(h * 3600), rng, spec.get("seasonal", False))
    wn.add_pattern("diurnal", demand.tolist())
    for name, j in wn.junctions():
        if j.demand_timeseries_list and j.demand_timeseries_list[0].base_value > 0:
            j.demand_timeseries_list[0].pattern_name = "diurnal"
    inflows = [n for n, (q, _, _) in sensors.items() if q == "flow"][:spec.get("inflows", 1)]
    # The mean inflow without events, for sizing them.
    probe = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(out_dir, "probe"))
    mean_flow = sum(float(np.abs(probe.link["flowrate"][sensors[n][1]]).mean())
                    for n in inflows)  # m3/s
    mean_pressure = probe.node["pressure"].mean()
    junctions = [n for n, j in wn.junctions() if n not in ("PS", "PD")]
    bursts, leaks = plan_events(spec, days, mean_flow, junctions, rng)
    pressures = [n for n, (q, _, _) in sensors.items() if q == "pressure"]
    labels = []
    # Bursts: a closed pipe to an emitter node, opened and closed by time controls.
    for k, e in enumerate(bursts):
        b = f"burst{k}"
        for series in inflows + pressures:
            labels.append((at(e["t0"]), at(e["t0"] + e["length"]), "burst", series))
        if twin:
            continue
        p = max(float(mean_pressure[e["node"]]), 5.0)
        j = wn.get_node(e["node"])
        wn.add_junction(b, base_demand=0.0, elevation=j.elevation)
        wn.get_node(b).emitter_coefficient = e["size"] * mean_flow / math.sqrt(p)
        wn.add_pipe(f"{b}pipe", e["node"], b, length=1.0, diameter=0.3, roughness=120.0,
                    initial_status="CLOSED")
        pipe = wn.get_link(f"{b}pipe")
        for name, status, when in ((f"{b}open", 1, e["t0"]), (f"{b}close", 0, e["t0"] + e["length"])):
            c = wntr.network.controls.Control._time_control(wn, when, "SIM_TIME", False,
                                                            wntr.network.controls.ControlAction(pipe, "status", status))
            wn.add_control(name, c)
    # Leaks: a demand at a junction, at once or growing hour by hour, until repaired (or the
    # end). An incipient leak is labelled from the hour it reaches 5% of the mean inflow (or its
    # full size, if smaller), the moment from which it is to be found within 3 days.
    for k, e in enumerate(leaks):
        t0h, grow = e["t0h"], e["grow"]
        end_h = hours if e["repaired"] is None else min(hours, t0h + e["repaired"])
        reach = min(1.0, 0.05 / e["share"]) if e["incipient"] else 0.0
        label_h = t0h + max(0, math.ceil(reach * grow) - 1)
        for series in inflows:
            labels.append((at(label_h * 3600), at(end_h * 3600), "leak", series))
        if twin:
            continue
        pattern = np.zeros(hours)
        for h in range(t0h, end_h):
            pattern[h] = min(1.0, (h - t0h + 1) / grow)
        wn.add_pattern(f"leak{k}", pattern.tolist())
        wn.get_node(e["node"]).add_demand(e["size"], f"leak{k}")
    results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=os.path.join(out_dir, "sim"))
    for f in os.listdir(out_dir):
        if f.startswith(("probe.", "sim.")):
            os.remove(os.path.join(out_dir, f))
    secs = results.link["flowrate"].index.to_numpy().astype(np.int64)
    keep = secs < days * 86400
    secs = secs[keep]
    values = {}
    for name, (quantity, element, _) in sensors.items():
        if quantity == "flow":
            v = np.abs(results.link["flowrate"][element].to_numpy()) * 3600.0  # m3/h
        elif quantity == "level":
            v = results.node["pressure"][element].to_numpy()  # a tank's pressure is its level
        else:
            v = results.node["pressure"][element].to_numpy()  # m
        values[name] = v[keep]
    # Measurement noise and quantisation (flow 1%, head 0.1 m, a level 1 cm).
    for name, (quantity, _, _) in sensors.items():
        v = values[name]
        if quantity == "flow":
            values[name] = v * (1 + rng.normal(0, 0.01, v.size))
        elif quantity == "level":
            values[name] = v + rng.normal(0, 0.01, v.size)
        else:
            values[name] = v + rng.normal(0, 0.1, v.size)
    present = np.ones(secs.size, dtype=bool)
    n_per_min = max(1, 60 // step)

    def span(t0, minutes):
        return (secs >= t0) & (secs < t0 + minutes * 60)

    flow_series, pressure_series = inflows[0], pressures[0]
    fault_days = list(range(spec.get("learn_days", 14) + 2, days - 1))
    rng.shuffle(fault_days)
    faults = spec["faults"]
    for i, kind in enumerate(faults):
        day = fault_days[i % len(fault_days)]
        t0 = day * 86400 + int(rng.integers(1, 23)) * 3600 + int(rng.integers(0, 60)) * 60
        series = flow_series if kind in ("unit_change",) else (pressure_series if i % 2 else flow_series)
        v = values[series]
        if kind == "stuck":
            m = span(t0, 45)
            first = np.argmax(m)
            if not twin:
                v[m] = v[first]
            labels.append((at(t0), at(t0 + 45 * 60), "stuck", series))
        elif kind == "silent":
            m = span(t0, 40)
            if not twin:
                present &= ~m
            labels.append((at(t0), at(t0 + 40 * 60), "silent", flow_series))
            labels.append((at(t0), at(t0 + 40 * 60), "silent", pressure_series))
        elif kind == "spike":
            m = np.flatnonzero(span(t0, 1 + int(rng.integers(0, 3))))
            if not twin:
                v[m] = v[m] * (3.0 if series == flow_series else 0.3)
            end = t0 + (len(m) // n_per_min + 1) * 60
            labels.append((at(t0), at(end), "spike", series))
        elif kind == "drift":
            m = span(t0, 4 * 24 * 60)
            if not twin:
                values[pressure_series][m] += 0.5 * (secs[m] - t0) / 86400.0
            labels.append((at(t0), at(t0 + 4 * 86400), "drift", pressure_series))
        elif kind == "unit_change":
            m = span(t0, 6 * 60)
            if not twin:
                v[m] = v[m] / 3.6
            labels.append((at(t0), at(t0 + 6 * 3600), "unit_change", flow_series))
    fmt = "%Y-%m-%d %H:%M" if step % 60 == 0 else "%Y-%m-%d %H:%M:%S"
    times = [at(s).strftime(fmt) for s in secs[present]]
    for variant, columns in spec.get("variants", {"": list(sensors)}).items():
        name = spec["name"] + variant
        frame = {"time": times}
        for c in columns:
            frame[c] = np.round(values[c][present], 2)
        csv = f"{name}.twin.csv" if twin else f"{name}.csv"
        pd.DataFrame(frame).to_csv(os.path.join(out_dir, csv), index=False)
        if twin:
            continue
        labels.sort()
        with open(os.path.join(out_dir, f"{name}.labels.csv"), "w") as f:
            f.write("start,end,kind,series\n")
            for s, e, k, series in labels:
                if series in columns:
                    f.write(f"{s.strftime('%Y-%m-%d %H:%M:%S')},{e.strftime('%Y-%m-%d %H:%M:%S')},{k},{series}\n")
        with open(os.path.join(out_dir, f"{name}.zone.toml"), "w") as f:
            f.write(f'[device]\nid = "{name}"\ntimezone = "{spec["timezone"]}"\n')
        with open(os.path.join(out_dir, f"{name}.toml"), "w") as f:
            f.write(f'# {name}: {spec["about"]}\n'
                    f'[device]\nid = "{name}"\ntimezone = "{spec["timezone"]}"\n')
            for c in columns:
                f.write(f'\n[[series]]\nname = "{c}"\nunit = "{sensors[c][2]}"\n')
    return len(times), mean_flow * 3600, float(np.mean(values[pressure_series]))


def scenarios(weeks, seed, holdout=False):
    """The development scenarios, or (`holdout`) the hold-out ones: other seeds, another town's
    size, interval and zone, never used to choose a default."""
    days = weeks * 7
    monday = datetime(2024, 3, 4)
    faults = ["stuck", "silent", "spike", "stuck", "silent", "spike", "drift", "unit_change"]
    meters = ["inflow_a", "inflow_b", "pressure_a", "pressure_b", "pressure_c"]
    town_variants = {"": meters, "-tank": meters + ["tank_level", "pump_flow"]}
    town = dict(about="a town of 92 junctions fed through two inflow meters, a booster pump "
                "refilling a hill tank on its level, seasonal demand, a year",
                start=datetime(2024, 1, 1), days=365, bursts=8, leaks=8, plan="year",
                learn_days=56, seasonal=True, inflows=2, variants=town_variants,
                faults=faults[:6])
    if holdout:
        return [
            dict(town, name="holdout-town-10min", network=lambda s: pumped_town(s, 10, 12),
                 seed=seed + 100, interval_s=600, timezone="America/Denver"),
            dict(name="holdout-gravity-dma-1min", about="a gravity-fed looped DMA, another seed",
                 network=small_dma, seed=seed + 102, start=monday, days=days, interval_s=60,
                 bursts=8, leaks=2, faults=faults, timezone="Asia/Seoul"),
        ]
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
        dict(town, name="town-pumped-5min", network=pumped_town, seed=seed + 4, interval_s=300,
             timezone="Europe/Madrid"),
        dict(town, name="town-pumped-15min", network=pumped_town, seed=seed + 5,
             interval_s=900, timezone="America/Sao_Paulo"),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--weeks", type=int, default=6,
                    help="weeks simulated by the short scenarios (the first 2 hold no event)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", help="scenarios whose name starts with this")
    ap.add_argument("--holdout", action="store_true",
                    help="the hold-out scenarios (score them; never tune on them)")
    args = ap.parse_args()
    if args.weeks < 4:
        sys.exit("--weeks: at least 4 (2 to learn, 2 with events)")
    os.makedirs(args.out, exist_ok=True)
    for spec in scenarios(args.weeks, args.seed, args.holdout):
        if args.only and not spec["name"].startswith(args.only):
            continue
        for twin in (False, True):
            rng = np.random.default_rng(spec["seed"])
            rows, q, p = simulate(spec, args.out, rng, twin)
            what = "leak-free twin" if twin else "with events"
            print(f"{spec['name']} ({what}): {rows} rows, mean inflow {q:.1f} m3/h, "
                  f"mean pressure {p:.1f} m", flush=True)


if __name__ == "__main__":
    main()

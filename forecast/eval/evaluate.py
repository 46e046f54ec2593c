#!/usr/bin/python3
"""Accuracy of `atoll forecast replay` against reference models on real traces.

Run with Debian's Python (numpy, pandas, statsmodels):

    /usr/bin/python3 forecast/eval/evaluate.py --atoll build/tools/atoll \
        --data /work/shared/data --out /tmp/atoll-eval

Data sets (a fixed, documented subset so that it runs in minutes on 2 cores):
  planetlab  VMs present on at least 9 of the 10 PlanetLab days; each VM's
             days are concatenated in date order (the calendar gaps between
             recorded days are collapsed, so the daily phase stays aligned);
             a fixed stride sample of --planetlab-series of them (sorted names,
             starting at --planetlab-offset).
  bitbrains  Bitbrains Rnd VMs (--bitbrains-vms), July-September 2013, four
             series per VM: cpu (CPU usage MHz), memory (usage KB), disk
             (read + write KB/s), network (received + transmitted KB/s).
             Samples are averaged into 5-minute bins on a regular grid; empty
             bins (irregular sampling, the day-long gaps between months) are
             filled with the last value and never scored as targets.

Protocol (the same for every model): the first 70 % of each series is
warm-up, targets in the remaining 30 % are scored; the forecast of target
k at horizon h is issued at origin k - h from data up to the origin only.
  MASE      mean |y - p50| / mean |y_t - y_{t-1}| over the warm-up
  pinball   mean pinball loss of p95 at tau = 0.95, with the same scale
  coverage  fraction of targets with y <= p95
Per-series figures are averaged over series (series whose warm-up is
constant have no scale and are left out and counted).

Reference models (p95 = p50 + the 95 % quantile of the model's own h-step
errors over the warm-up):
  last       last value
  mean12     mean of the last 12 values
  snaive     seasonal naive, daily (288 steps)
  hw         statsmodels ExponentialSmoothing, additive damped trend, additive
             daily season, fitted once on the last --hw-fit-days of the warm-up
             (heuristic initialisation), then run forward with fixed parameters
  ets        statsmodels ETSModel (A,Ad,A) with daily season, refitted on the
             trailing 14-day window every --ets-refit-days days (the window is
             shorter when less history exists), run forward between refits
"""
import argparse
import glob
import json
import math
import os
import pickle
import subprocess
import sys
import time
import warnings
from multiprocessing import Pool

import numpy as np
import pandas as pd

SEASON = 288
HORIZONS = (1, 12, 72)
HORIZON_NAMES = {1: "5 min", 12: "1 h", 72: "6 h"}
WARMUP = 0.7
TAU = 0.95
REFERENCES = ("last", "mean12", "snaive", "hw", "ets")


# ---------------------------------------------------------------- data sets

def load_planetlab(root, count, offset=0):
    days = sorted(glob.glob(os.path.join(root, "planetlab", "wide", "*.csv.gz")))
    frames = [pd.read_csv(d) for d in days]
    present = {}
    for frame in frames:
        for col in frame.columns[1:]:
            present[col] = present.get(col, 0) + 1
    names = sorted(n for n, c in present.items() if c >= len(days) - 1)
    stride = max(1, len(names) // count)
    chosen = names[offset % stride::stride][:count]
    series = {}
    for name in chosen:
        values = np.concatenate([f[name].to_numpy(float) for f in frames if name in f.columns])
        series["pl_" + name] = (values, np.zeros(len(values), bool))
    return series


def load_bitbrains(root, vms):
    series = {}
    for vm in vms:
        parts = []
        for month in sorted(glob.glob(os.path.join(root, "bitbrains_rnd", "2013-*"))):
            path = os.path.join(month, f"{vm}.csv.gz")
            if os.path.exists(path):
                parts.append(pd.read_csv(path, sep=";\t", engine="python"))
        if not parts:
            continue
        frame = pd.concat(parts)
        frame.columns = [c.strip() for c in frame.columns]
        ts = frame["Timestamp [ms]"].to_numpy(np.int64)
        metrics = {
            "cpu": frame["CPU usage [MHZ]"].to_numpy(float),
            "memory": frame["Memory usage [KB]"].to_numpy(float),
            "disk": (frame["Disk read throughput [KB/s]"] + frame["Disk write throughput [KB/s]"]).to_numpy(float),
            "network": (frame["Network received throughput [KB/s]"]
                        + frame["Network transmitted throughput [KB/s]"]).to_numpy(float),
        }
        bins = ts // 300
        grid = np.arange(bins.min(), bins.max() + 1)
        for metric, values in metrics.items():
            binned = pd.Series(values).groupby(bins).mean().reindex(grid)
            filled = binned.isna().to_numpy()
            values = binned.ffill().fillna(0.0).clip(lower=0).to_numpy(float)
            series[f"bb_{vm}_{metric}"] = (values, filled)
    return series


# ---------------------------------------------------------------- models

def lagged(values, lag):
    out = np.full(len(values), np.nan)
    out[lag:] = values[:-lag] if lag else values
    return out


def simple_forecasts(y, h):
    """Forecast of target k (index k) issued at origin k - h."""
    n = len(y)
    last = lagged(y, h)
    csum = np.concatenate([[0.0], np.cumsum(y)])
    mean12 = np.full(n, np.nan)
    for k in range(n):
        o = k - h
        if o >= 0:
            lo = max(0, o - 11)
            mean12[k] = (csum[o + 1] - csum[lo]) / (o + 1 - lo)
    snaive = np.full(n, np.nan)
    # y[k - season] when h <= season (the value one day before the target).
    if h <= SEASON:
        snaive[SEASON:] = y[:-SEASON]
        snaive[: SEASON - 1 + h] = np.nan  # origin needs a full day of history
    return {"last": last, "mean12": mean12, "snaive": snaive}


def run_damped_seasonal(y, start, stop, level, trend, seasons, alpha, beta, gamma, phi, form):
    """Runs the recursion over y[start:stop] from the initial states; returns
    per origin o in [start, stop) the forecasts for each horizon in HORIZONS
    (dict h -> array indexed by target), form 'hw' (statsmodels Holt-Winters)
    or 'ets' (error correction)."""
    n = len(y)
    out = {h: np.full(n, np.nan) for h in HORIZONS}
    damp = {h: sum(phi ** i for i in range(1, h + 1)) for h in HORIZONS}
    s = list(seasons)  # s[i] is the season of y[start + i - SEASON]... index by offset
    base = start - SEASON
    for t in range(start, stop):
        st = s[t - base - SEASON]
        if form == "hw":
            new_level = alpha * (y[t] - st) + (1 - alpha) * (level + phi * trend)
            new_trend = beta * (new_level - level) + (1 - beta) * phi * trend
            s.append(gamma * (y[t] - level - phi * trend) + (1 - gamma) * st)
        else:
            err = y[t] - (level + phi * trend + st)
            new_level = level + phi * trend + alpha * err
            new_trend = phi * trend + beta * err
            s.append(st + gamma * err)
        level, trend = new_level, new_trend
        for h in HORIZONS:
            if t + h < n:
                out[h][t + h] = level + damp[h] * trend + s[t + h - base - SEASON]
    return out


def fit_hw(y, lo, hi):
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    r = ExponentialSmoothing(y[lo:hi], trend="add", damped_trend=True, seasonal="add",
                             seasonal_periods=SEASON, initialization_method="heuristic").fit()
    p = r.params
    return (p["initial_level"], p["initial_trend"], list(p["initial_seasons"]), p["smoothing_level"],
            p["smoothing_trend"], p["smoothing_seasonal"], p["damping_trend"])


def fit_ets(y, lo, hi):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    r = ETSModel(y[lo:hi], error="add", trend="add", damped_trend=True, seasonal="add",
                 seasonal_periods=SEASON, initialization_method="heuristic").fit(disp=False)
    p = dict(zip(r.param_names, r.params))
    return (r.initial_level, r.initial_trend, list(r.initial_seasonal), p["smoothing_level"],
            p["smoothing_trend"], p["smoothing_seasonal"], p["damping_trend"])


def statsmodels_forecasts(y, n_warm, hw_fit_days, ets_refit_days):
    warnings.filterwarnings("ignore")
    n = len(y)
    result = {}
    # Holt-Winters: one fit at the end of the warm-up, then fixed parameters.
    lo = max(0, n_warm - hw_fit_days * SEASON)
    out = {h: np.full(n, np.nan) for h in HORIZONS}
    if n_warm - lo >= 2 * SEASON:
        level, trend, seasons, a, b, g, phi = fit_hw(y, lo, n_warm)
        out = run_damped_seasonal(y, lo, n, level, trend, seasons, a, b, g, phi, "hw")
    result["hw"] = out
    # ETS: refit on the trailing 14 days every ets_refit_days, starting so that
    # the first scored target's origins are covered.
    out = {h: np.full(n, np.nan) for h in HORIZONS}
    refit = max(2 * SEASON, n_warm - max(HORIZONS))
    first = True
    while refit < n:
        lo = max(0, refit - 14 * SEASON)
        stop = min(n, refit + ets_refit_days * SEASON)
        level, trend, seasons, a, b, g, phi = fit_ets(y, lo, refit)
        # Run from the window start so the states at `refit` come from the fit.
        run = run_damped_seasonal(y, lo, stop, level, trend, seasons, a, b, g, phi, "ets")
        for h in HORIZONS:
            begin = lo if first else refit  # in-window forecasts feed the warm-up quantiles
            out[h][begin + h: stop + h] = run[h][begin + h: stop + h]
        first = False
        refit = stop
    result["ets"] = out
    return result


def reference_job(args):
    name, y, n_warm, hw_fit_days, ets_refit_days = args
    forecasts = {h: simple_forecasts(y, h) for h in HORIZONS}
    fitted = statsmodels_forecasts(y, n_warm, hw_fit_days, ets_refit_days)
    for model in ("hw", "ets"):
        for h in HORIZONS:
            forecasts[h][model] = fitted[model][h]
    return name, forecasts


# ---------------------------------------------------------------- metrics

def pinball(y, q, tau=TAU):
    diff = y - q
    return np.where(diff >= 0, tau * diff, (tau - 1) * diff)


def score(y, filled, n_warm, h, p50, p95, scale):
    k = np.arange(n_warm, len(y))
    k = k[~filled[k] & ~np.isnan(p50[k]) & ~np.isnan(p95[k])]
    if len(k) == 0:
        return None
    return {
        "mase": float(np.mean(np.abs(y[k] - p50[k])) / scale),
        "pinball": float(np.mean(pinball(y[k], p95[k])) / scale),
        "coverage": float(np.mean(y[k] <= p95[k])),
        "targets": int(len(k)),
    }


def reference_p95(y, filled, n_warm, p50):
    """p50 + the 95 % quantile of the model's own errors over the warm-up."""
    k = np.arange(0, n_warm)
    k = k[~filled[k] & ~np.isnan(p50[k])]
    if len(k) < 10:
        return p50 + np.nan
    offset = np.quantile(y[k] - p50[k], 0.95)
    return p50 + offset


def run_replay(atoll, series, workdir):
    inputs = os.path.join(workdir, "inputs")
    os.makedirs(inputs, exist_ok=True)
    for old in glob.glob(os.path.join(inputs, "*.csv")):
        os.remove(old)
    for name, (values, _) in series.items():
        ts = 1_300_000_000 + 300 * np.arange(len(values))
        pd.DataFrame({"timestamp": ts, "value": values}).to_csv(
            os.path.join(inputs, name + ".csv"), index=False, float_format="%.9g")
    out = os.path.join(workdir, "replay.csv")
    started = time.time()
    subprocess.run([atoll, "forecast", "replay", "--horizons", ",".join(map(str, HORIZONS)),
                    "--out", out, inputs], check=True)
    elapsed = time.time() - started
    frame = pd.read_csv(out)
    return frame, elapsed


def atoll_forecasts(n, group, h):
    """Atoll's p50 and p95 for horizon h from one series' replay rows, placed
    at their target index (NaN where no origin forecasts it)."""
    gh = group[group["horizon"] == h]
    p50 = np.full(n, np.nan)
    p95 = np.full(n, np.nan)
    target = gh["origin_index"].to_numpy() + h
    keep = target < n
    p50[target[keep]] = gh["p50"].to_numpy()[keep]
    p95[target[keep]] = gh["p95"].to_numpy()[keep]
    return p50, p95


def evaluate(dataset, series, replay, refs):
    per = {}  # (model, h) -> list of per-series dicts
    excluded = 0
    groups = {name: g for name, g in replay.groupby("series")}
    for name, (y, filled) in series.items():
        n = len(y)
        n_warm = int(math.floor(WARMUP * n))
        scale = np.mean(np.abs(np.diff(y[:n_warm])))
        if not scale > 0:
            excluded += 1
            continue
        g = groups[name]
        for h in HORIZONS:
            p50, p95 = atoll_forecasts(n, g, h)
            s = score(y, filled, n_warm, h, p50, p95, scale)
            if s:
                per.setdefault(("atoll", h), []).append(s)
            for model in REFERENCES:
                rp50 = refs[name][h][model]
                rp95 = reference_p95(y, filled, n_warm, rp50)
                s = score(y, filled, n_warm, h, rp50, rp95, scale)
                if s:
                    per.setdefault((model, h), []).append(s)
    summary = {}
    for (model, h), rows in per.items():
        summary.setdefault(model, {})[h] = {
            "series": len(rows),
            "mase": float(np.mean([r["mase"] for r in rows])),
            "mase_median": float(np.median([r["mase"] for r in rows])),
            "pinball": float(np.mean([r["pinball"] for r in rows])),
            "coverage": float(np.sum([r["coverage"] * r["targets"] for r in rows])
                              / np.sum([r["targets"] for r in rows])),
        }
    return {"dataset": dataset, "series": len(series), "excluded_constant_warmup": excluded,
            "models": summary}


def markdown(result):
    lines = [f"#### {result['dataset']}: {result['series']} series "
             f"({result['excluded_constant_warmup']} left out: constant warm-up)", "",
             "| horizon | model | MASE (mean) | MASE (median) | p95 pinball | p95 coverage |",
             "| --- | --- | --- | --- | --- | --- |"]
    models = result["models"]
    for h in HORIZONS:
        for model in ("atoll",) + REFERENCES:
            if model not in models or h not in models[model]:
                continue
            m = models[model][h]
            lines.append(f"| {HORIZON_NAMES[h]} | {model} | {m['mase']:.3f} | {m['mase_median']:.3f} | "
                         f"{m['pinball']:.3f} | {m['coverage']:.3f} |")
        best_mase = min(models[r][h]["mase"] for r in REFERENCES if h in models.get(r, {}))
        best_pin = min(models[r][h]["pinball"] for r in REFERENCES if h in models.get(r, {}))
        ours = models["atoll"][h]
        lines.append(f"| {HORIZON_NAMES[h]} | **atoll vs best reference** | "
                     f"**{100 * (1 - ours['mase'] / best_mase):+.1f} %** | | "
                     f"**{100 * (1 - ours['pinball'] / best_pin):+.1f} %** | |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atoll", required=True, help="the built atoll CLI")
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--out", default="/tmp/atoll-eval", help="work and result folder")
    parser.add_argument("--datasets", default="planetlab,bitbrains")
    parser.add_argument("--planetlab-series", type=int, default=40)
    parser.add_argument("--planetlab-offset", type=int, default=0,
                        help="start of the stride sample: another offset picks other VMs "
                             "(a check that tuning generalises)")
    parser.add_argument("--bitbrains-vms", default="31,37,43,49,55,61,67,73,79,85,91,97")
    parser.add_argument("--hw-fit-days", type=int, default=28)
    parser.add_argument("--ets-refit-days", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reuse-references", action="store_true",
                        help="reuse the reference forecasts cached in --out by an earlier run "
                             "with the same data options")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results = []
    for dataset in args.datasets.split(","):
        started = time.time()
        if dataset == "planetlab":
            series = load_planetlab(args.data, args.planetlab_series, args.planetlab_offset)
        elif dataset == "bitbrains":
            series = load_bitbrains(args.data, [int(v) for v in args.bitbrains_vms.split(",")])
        else:
            sys.exit(f"unknown data set '{dataset}'")
        workdir = os.path.join(args.out, dataset)
        replay, replay_seconds = run_replay(args.atoll, series, workdir)
        jobs = [(name, y, int(math.floor(WARMUP * len(y))), args.hw_fit_days, args.ets_refit_days)
                for name, (y, _) in series.items()]
        cache = os.path.join(workdir, "references.pickle")
        if args.reuse_references and os.path.exists(cache):
            with open(cache, "rb") as f:
                refs = pickle.load(f)
        else:
            with Pool(args.jobs) as pool:
                refs = dict(pool.map(reference_job, jobs))
            with open(cache, "wb") as f:
                pickle.dump(refs, f)
        result = evaluate(dataset, series, replay, refs)
        result["replay_seconds"] = replay_seconds
        result["points"] = int(sum(len(y) for y, _ in series.values()))
        result["seconds"] = time.time() - started
        results.append(result)
        print(markdown(result))
        print(f"\n({result['points']} points, replay {replay_seconds:.1f} s, "
              f"total {result['seconds']:.0f} s)\n", flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

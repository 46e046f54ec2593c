#!/usr/bin/python3
"""Does a direct per-horizon regression carry information atoll's p50 lacks?

Reads what `evaluate.py` left in its --out folders (the series are reloaded
from --data with the same options, atoll's forecasts from replay.csv, the
reference forecasts from references.pickle) and scores, with exactly
evaluate.py's metrics, candidate p50 forecasts built on top of atoll's p50.
Each candidate predicts the correction r = (y - atoll p50) / s (s: the
series' mean absolute one-step change up to the origin) from features known
at the origin, each expressed as (feature - atoll p50) / s: last value, means
over 3/12/36/144/288 steps, medians over 36/144/288 steps, the value one day
before the target, the mean of the target's phase (+-6 steps) over the
previous 1 and 3 days and over all previous days, and a conditional median
by regime (the median of the h-step-ahead values of the 24 past origins,
within the last day, whose mean of 12 was nearest the current one). A pair
(features at origin t, y[t + h]) is used only from time t + h on.

  online     stacking by online L1 regression per series and horizon:
             intercept + mean12, median36, median288, phase3, cond_median,
             one normalised (AdaGrad) subgradient step per observed target,
             from zero weights (= atoll's p50)
  regime     a non-linear correction: the scaled gap (last value - atoll p50)
             at the origin picks one of 7 bins, each bin's correction is an
             online median (sign steps of --regime-rate) of r
  pooled     all features, one set of weights per horizon fitted by least
             absolute deviations on the warm-up pairs of the tuning PlanetLab
             VMs together, applied unchanged to every set (fixed coefficients)
  direct     all features (or --direct-features), per series and horizon,
             refitted once a day by IRLS least absolute deviations with a
             ridge toward zero (toward atoll's p50) on the last 14 days of
             pairs, optionally down-weighted with age, used for the next day
  hindsight  not a forecast: `direct`'s regression fitted per series on the
             scored targets themselves (an upper bound for the feature set)

The p95 of a candidate is atoll's p95 moved by the change of the p50
(the band re-centred on the new p50). Defaults reproduce the figures in
bench/RESULTS.md (about 3 minutes on 2 cores, most of it Bitbrains).

    /usr/bin/python3 forecast/eval/direct_regression_check.py \\
        --planetlab /tmp/h3-eval --planetlab-heldout /tmp/h3-pl2 \\
        --bitbrains /tmp/h3-eval-bb
"""
import argparse
import math
import os
import pickle
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate as ev  # noqa: E402

SEASON = ev.SEASON
SCORED_HORIZONS = (12, 72)
TRAIN_DAYS = 14  # the pairs a daily refit sees (PlanetLab has 10 days: all of them)
FEATURES = ("last", "mean3", "mean12", "mean36", "mean144", "mean288", "median36", "median144",
            "median288", "day_before", "phase1", "phase3", "phase_all", "cond_median")


def load_set(dataset, out, data, offset, vms):
    if dataset == "planetlab":
        series = ev.load_planetlab(data, 40, offset)
    else:
        series = ev.load_bitbrains(data, vms)
    workdir = os.path.join(out, dataset)
    replay = pd.read_csv(os.path.join(workdir, "replay.csv"))
    with open(os.path.join(workdir, "references.pickle"), "rb") as f:
        refs = pickle.load(f)
    return series, replay, refs


def phase_mean(y, days, smooth=6):
    """Per origin-independent target k: mean over d = 1..days (or all when
    days is None) of the +-smooth mean around y[k - d * SEASON]."""
    n = len(y)
    centred = pd.Series(y).rolling(2 * smooth + 1, center=True, min_periods=1).mean().to_numpy()
    total = np.zeros(n)
    count = np.zeros(n)
    d = 1
    while d * SEASON < n and (days is None or d <= days):
        total[d * SEASON:] += centred[:-d * SEASON]
        count[d * SEASON:] += 1
        d += 1
    with np.errstate(invalid="ignore"):
        return total / np.where(count > 0, count, np.nan)


def conditional_median(y, level, h, window=SEASON, neighbours=24, chunk=1024):
    """For origin o: median of y[j + h] over the `neighbours` origins j in
    (o - h - window, o - h] whose level was nearest level[o]."""
    n = len(y)
    out = np.full(n, np.nan)
    for begin in range(window + h, n, chunk):
        origins = np.arange(begin, min(n, begin + chunk))
        j = origins[:, None] - h - window + 1 + np.arange(window)[None, :]
        distance = np.abs(level[j] - level[origins][:, None])
        pick = np.argpartition(distance, neighbours, axis=1)[:, :neighbours]
        out[origins] = np.median(y[np.take_along_axis(j, pick, axis=1) + h], axis=1)
    return out


_FEATURE_CACHE = {}


def feature_matrix(y, h, a):
    key = (hash(y.tobytes()), hash(a.tobytes()), h)
    if key not in _FEATURE_CACHE:
        _FEATURE_CACHE[key] = _feature_matrix(y, h, a)
    return _FEATURE_CACHE[key]


def _feature_matrix(y, h, a):
    """Columns (feature - atoll p50) / s per target k (origin k - h), the
    scale s per target and the scaled residual target."""
    n = len(y)
    s = pd.Series(y)
    at_origin = {
        "last": y.copy(),
        "mean3": s.rolling(3, min_periods=1).mean().to_numpy(),
        "mean12": s.rolling(12, min_periods=1).mean().to_numpy(),
        "mean36": s.rolling(36, min_periods=1).mean().to_numpy(),
        "mean144": s.rolling(144, min_periods=1).mean().to_numpy(),
        "mean288": s.rolling(288, min_periods=1).mean().to_numpy(),
        "median36": s.rolling(36, min_periods=1).median().to_numpy(),
        "median144": s.rolling(144, min_periods=1).median().to_numpy(),
        "median288": s.rolling(288, min_periods=1).median().to_numpy(),
    }
    at_origin["cond_median"] = conditional_median(y, at_origin["mean12"], h)
    columns = {name: ev.lagged(v, h) for name, v in at_origin.items()}
    columns["day_before"] = ev.lagged(y, SEASON)
    # The +-6 smoothing reaches 6 steps past k - SEASON: known at the origin for h <= SEASON - 6.
    columns["phase1"] = phase_mean(y, 1)
    columns["phase3"] = phase_mean(y, 3)
    columns["phase_all"] = phase_mean(y, None)
    absdiff = np.concatenate([[0.0], np.abs(np.diff(y))])
    steps = np.arange(n)
    scale_origin = np.cumsum(absdiff) / np.maximum(steps, 1)
    scale = ev.lagged(scale_origin, h)
    scale = np.where(scale > 0, scale, np.nan)
    X = np.column_stack([(columns[f] - a) / scale for f in FEATURES])
    X = np.where(np.isnan(X), 0.0, X)
    r = (y - a) / scale
    return X, r, scale


def lad_ridge(X, r, weights, ridge, iterations=12):
    """Least absolute deviations with an intercept and a ridge on the slopes,
    by iteratively reweighted least squares."""
    k = X.shape[1]
    A = np.column_stack([np.ones(len(r)), X])
    penalty = np.diag([1e-6] + [ridge] * k)
    coef = np.zeros(k + 1)
    for _ in range(iterations):
        resid = r - A @ coef
        w = weights / np.maximum(np.abs(resid), 0.05)
        Aw = A * w[:, None]
        coef = np.linalg.solve(A.T @ Aw + penalty * np.sum(w) / len(w), Aw.T @ r)
    return coef


def direct_forecast(y, h, a, ridge, half_life_days, features=FEATURES, refit=SEASON, first_fit=2 * SEASON):
    """Daily refit; weights fitted at T apply to origins in [T, T + refit)."""
    n = len(y)
    X, r, scale = feature_matrix(y, h, a)
    X = X[:, [FEATURES.index(f) for f in features]]
    usable = ~np.isnan(r) & ~np.isnan(a)
    out = a.copy()
    T = first_fit
    while T < n:
        train = np.arange(max(0, T + 1 - TRAIN_DAYS * SEASON), T + 1)
        train = train[usable[train]]
        lo, hi = T + h, min(n, T + refit + h)
        if len(train) >= SEASON and lo < n:
            age = (T - train) / SEASON
            weights = 0.5 ** (age / half_life_days) if half_life_days else np.ones(len(train))
            coef = lad_ridge(X[train], r[train], weights, ridge)
            k = np.arange(lo, hi)
            fit = coef[0] + X[k] @ coef[1:]
            out[k] = np.where(np.isnan(scale[k]) | np.isnan(a[k]), a[k], a[k] + fit * scale[k])
        T += refit
    return out


ONLINE_FEATURES = ("mean12", "median36", "median288", "phase3", "cond_median")


def online_forecast(y, h, a, rate, features=ONLINE_FEATURES):
    """Online L1 regression by normalised subgradient steps: the weights after
    the update at time t (which uses the pair whose target is y[t]) make the
    forecasts of the origin t. Starts at zero weights (atoll's p50)."""
    n = len(y)
    X, r, scale = feature_matrix(y, h, a)
    cols = [FEATURES.index(f) for f in features]
    Z = np.column_stack([np.ones(n), X[:, cols]])
    w = np.zeros(Z.shape[1])
    grad_sq = np.full(Z.shape[1], 1e-6)
    out = a.copy()
    for t in range(n):
        if not (np.isnan(r[t]) or np.isnan(a[t])):
            g = -np.sign(r[t] - Z[t] @ w) * Z[t]
            grad_sq += g * g
            w -= rate * g / np.sqrt(grad_sq)
        k = t + h
        if k < n and not (np.isnan(scale[k]) or np.isnan(a[k])):
            out[k] = a[k] + (Z[k] @ w) * scale[k]
    return out


REGIME_EDGES = np.array([-3.0, -1.5, -0.5, 0.5, 1.5, 3.0])


def regime_forecast(y, h, a, rate, feature="last", edges=REGIME_EDGES):
    """Non-linear correction by regime: the scaled gap between `feature` and
    atoll's p50 at the origin picks one of 7 bins; each bin tracks the online
    median of the scaled correction (a step of `rate` toward the sign of its
    error per observed target)."""
    n = len(y)
    X, r, scale = feature_matrix(y, h, a)
    bins = np.searchsorted(edges, X[:, FEATURES.index(feature)])
    correction = np.zeros(len(edges) + 1)
    out = a.copy()
    for t in range(n):
        if not (np.isnan(r[t]) or np.isnan(a[t])):
            correction[bins[t]] += rate * np.sign(r[t] - correction[bins[t]])
        k = t + h
        if k < n and not (np.isnan(scale[k]) or np.isnan(a[k])):
            out[k] = a[k] + correction[bins[k]] * scale[k]
    return out


def hindsight_forecast(y, h, a, ridge):
    """Upper bound, not a forecast: the weights fitted on the scored targets
    themselves (per series)."""
    n = len(y)
    X, r, scale = feature_matrix(y, h, a)
    k = np.arange(int(math.floor(ev.WARMUP * n)), n)
    k = k[~np.isnan(r[k]) & ~np.isnan(a[k])]
    coef = lad_ridge(X[k], r[k], np.ones(len(k)), ridge)
    out = a.copy()
    out[k] = a[k] + (coef[0] + X[k] @ coef[1:]) * scale[k]
    return out


def fit_pooled(series, replay, ridge):
    """Per horizon, one set of weights fitted on the warm-up pairs of all the
    given series together."""
    groups = {name: g for name, g in replay.groupby("series")}
    coefs = {}
    for h in SCORED_HORIZONS:
        Xs, rs = [], []
        for name, (y, _) in series.items():
            a, _ = ev.atoll_forecasts(len(y), groups[name], h)
            X, r, _ = feature_matrix(y, h, a)
            k = np.arange(2 * SEASON, int(math.floor(ev.WARMUP * len(y))))
            k = k[~np.isnan(r[k]) & ~np.isnan(a[k])]
            Xs.append(X[k])
            rs.append(r[k])
        X, r = np.concatenate(Xs), np.concatenate(rs)
        coefs[h] = lad_ridge(X, r, np.ones(len(r)), ridge)
        print(f"pooled weights h={h}: intercept {coefs[h][0]:+.3f} "
              + " ".join(f"{f} {c:+.3f}" for f, c in zip(FEATURES, coefs[h][1:])), flush=True)
    return coefs


def pooled_forecast(y, h, a, coefs):
    X, r, scale = feature_matrix(y, h, a)
    fit = coefs[h][0] + X @ coefs[h][1:]
    return np.where(np.isnan(scale) | np.isnan(a), a, a + fit * scale)


def summarise(rows):
    return {"mase": float(np.mean([x["mase"] for x in rows])),
            "pinball": float(np.mean([x["pinball"] for x in rows])),
            "coverage": float(np.sum([x["coverage"] * x["targets"] for x in rows])
                              / np.sum([x["targets"] for x in rows]))}


def run_set(label, series, replay, refs, candidates):
    groups = {name: g for name, g in replay.groupby("series")}
    per = {}
    for name, (y, filled) in series.items():
        n = len(y)
        n_warm = int(math.floor(ev.WARMUP * n))
        scale = np.mean(np.abs(np.diff(y[:n_warm])))
        if not scale > 0:
            continue
        for h in SCORED_HORIZONS:
            a50, a95 = ev.atoll_forecasts(len(y), groups[name], h)
            per.setdefault(("atoll", h), []).append(ev.score(y, filled, n_warm, h, a50, a95, scale))
            for model in ev.REFERENCES:
                rp50 = refs[name][h][model]
                rp95 = ev.reference_p95(y, filled, n_warm, rp50)
                per.setdefault((model, h), []).append(ev.score(y, filled, n_warm, h, rp50, rp95, scale))
            for cand, make in candidates.items():
                p50 = make(name, y, h, a50)
                per.setdefault((cand, h), []).append(
                    ev.score(y, filled, n_warm, h, p50, a95 + (p50 - a50), scale))
    summary = {key: summarise([x for x in rows if x]) for key, rows in per.items()}
    lines = [f"#### {label}", "",
             "| horizon | atoll MASE | best ref MASE | " + " | ".join(f"{c} MASE" for c in candidates)
             + " | atoll pinball | best ref pinball | " + " | ".join(f"{c} pinball (cov)" for c in candidates)
             + " |", "|" + " --- |" * (5 + 2 * len(candidates))]
    for h in SCORED_HORIZONS:
        best_mase = min(summary[(m, h)]["mase"] for m in ev.REFERENCES)
        best_pin = min(summary[(m, h)]["pinball"] for m in ev.REFERENCES)

        def vs(value, best):
            return f"{value:.3f} ({100 * (1 - value / best):+.1f} %)"
        row = [ev.HORIZON_NAMES[h], vs(summary[("atoll", h)]["mase"], best_mase), f"{best_mase:.3f}"]
        row += [vs(summary[(c, h)]["mase"], best_mase) for c in candidates]
        row += [vs(summary[("atoll", h)]["pinball"], best_pin), f"{best_pin:.3f}"]
        row += [vs(summary[(c, h)]["pinball"], best_pin) + f" {summary[(c, h)]['coverage']:.3f}"
                for c in candidates]
        lines.append("| " + " | ".join(row) + " |")
    print("\n".join(lines) + "\n", flush=True)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--planetlab", default="/tmp/h3-eval", help="evaluate.py --out of the tuning VMs")
    parser.add_argument("--planetlab-heldout", default="/tmp/h3-pl2",
                        help="evaluate.py --out of --planetlab-offset 1")
    parser.add_argument("--bitbrains", default="/tmp/h3-eval-bb", help="evaluate.py --out of Bitbrains")
    parser.add_argument("--bitbrains-vms", default="31,37,43,49,55,61,67,73,79,85,91,97")
    parser.add_argument("--ridge", type=float, default=300.0)
    parser.add_argument("--direct-features", default=",".join(FEATURES))
    parser.add_argument("--regime-feature", default="last", choices=FEATURES)
    parser.add_argument("--single-predictors", action="store_true",
                        help="also score each feature alone and halfway between it and atoll's p50")
    parser.add_argument("--regime-rate", type=float, default=0.005)
    parser.add_argument("--online-rate", type=float, default=0.02)
    parser.add_argument("--pooled-ridge", type=float, default=1.0)
    parser.add_argument("--half-life-days", type=float, default=0.0, help="0: no down-weighting with age")
    parser.add_argument("--sets", default="tuning,heldout,bitbrains")
    args = parser.parse_args()
    sets = {
        "tuning": ("PlanetLab tuning", "planetlab", args.planetlab, 0),
        "heldout": ("PlanetLab held-out", "planetlab", args.planetlab_heldout, 1),
        "bitbrains": ("Bitbrains", "bitbrains", args.bitbrains, 0),
    }
    vms = [int(v) for v in args.bitbrains_vms.split(",")]
    label, dataset, out, offset = sets["tuning"]
    series, replay, _ = load_set(dataset, out, args.data, offset, vms)
    coefs = fit_pooled(series, replay, args.pooled_ridge)
    for key in args.sets.split(","):
        label, dataset, out, offset = sets[key]
        series, replay, refs = load_set(dataset, out, args.data, offset, vms)
        candidates = {
            "online": lambda name, y, h, a: online_forecast(y, h, a, args.online_rate),
            "regime": lambda name, y, h, a: regime_forecast(y, h, a, args.regime_rate, args.regime_feature),
            "pooled": lambda name, y, h, a: pooled_forecast(y, h, a, coefs),
            "direct": lambda name, y, h, a: direct_forecast(y, h, a, args.ridge, args.half_life_days,
                                                                   args.direct_features.split(",")),
            "hindsight": lambda name, y, h, a: hindsight_forecast(y, h, a, 1.0),
        }
        if args.single_predictors:
            for i, feature in enumerate(FEATURES):
                for share in (1.0, 0.5):
                    candidates[f"{feature} x{share}"] = (
                        lambda name, y, h, a, i=i, share=share:
                        a + share * feature_matrix(y, h, a)[0][:, i] * feature_matrix(y, h, a)[2])
        run_set(label, series, replay, refs, candidates)


if __name__ == "__main__":
    main()

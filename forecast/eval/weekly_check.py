#!/usr/bin/python3
"""Would a weekly season help? Scores two weekly models against atoll's own
forecasts on Bitbrains (the only data set with more than two weeks), with
the protocol of evaluate.py (first 70 % warm-up, MASE on the rest):

  weekly-naive    the value 2,016 steps (one week) before the target
  weekly-profile  an hourly weekly profile (168 slots: running mean for a
                  slot's first 12 values, then EW with gain 0.025 per value,
                  about 0.3 per week), as the forecaster would hold it; the
                  forecast is the target's slot as of the target's step
                  (it favours the profile slightly: the slot of the target
                  hour may still move between origin and target)

Run evaluate.py first (it writes the replay this reads), then:

    /usr/bin/python3 forecast/eval/weekly_check.py \
        --replay /tmp/atoll-eval-bb/bitbrains/replay.csv

and it prints, per horizon, the mean MASE of atoll and of each weekly model
and on how many series the weekly model beats atoll.
"""
import argparse
import math
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluate  # noqa: E402

WEEK = 7 * evaluate.SEASON
SLOT_STEPS = 12  # one hour of 5-minute steps
SLOTS = WEEK // SLOT_STEPS
SLOT_GAIN = 0.025


def weekly_profile_forecasts(y, filled):
    profile = np.zeros(SLOTS)
    seen = np.zeros(SLOTS)
    out = np.full(len(y), np.nan)
    for t in range(len(y)):
        slot = (t // SLOT_STEPS) % SLOTS
        if seen[slot] >= 2:
            out[t] = profile[slot]
        if filled[t]:
            continue
        if seen[slot] < SLOT_STEPS:
            profile[slot] += (y[t] - profile[slot]) / (seen[slot] + 1)
        else:
            profile[slot] += SLOT_GAIN * (y[t] - profile[slot])
        seen[slot] += 1
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replay", required=True, help="replay.csv written by evaluate.py")
    parser.add_argument("--data", default="/work/shared/data")
    parser.add_argument("--bitbrains-vms", default="31,37,43,49,55,61,67,73,79,85,91,97")
    args = parser.parse_args()
    series = evaluate.load_bitbrains(args.data, [int(v) for v in args.bitbrains_vms.split(",")])
    groups = {name: g for name, g in pd.read_csv(args.replay).groupby("series")}
    rows = []
    for name, (y, filled) in series.items():
        n = len(y)
        n_warm = int(math.floor(evaluate.WARMUP * n))
        scale = np.mean(np.abs(np.diff(y[:n_warm])))
        if not scale > 0 or name not in groups:
            continue
        profile = weekly_profile_forecasts(y, filled)
        for h in (12, 72):
            gh = groups[name][groups[name]["horizon"] == h]
            p50 = np.full(n, np.nan)
            target = gh["origin_index"].to_numpy() + h
            keep = target < n
            p50[target[keep]] = gh["p50"].to_numpy()[keep]
            k = np.arange(n_warm, n)
            k = k[~filled[k] & (k >= WEEK) & ~np.isnan(p50[k]) & ~np.isnan(profile[k])]
            mase = lambda forecast: float(np.mean(np.abs(y[k] - forecast)) / scale)  # noqa: E731
            rows.append((h, mase(p50[k]), mase(y[k - WEEK]), mase(profile[k])))
    df = pd.DataFrame(rows, columns=["h", "atoll", "naive", "profile"])
    for h, s in df.groupby("h"):
        print(f"{evaluate.HORIZON_NAMES[h]}: {len(s)} series, mean MASE atoll {s.atoll.mean():.3f}, "
              f"weekly-naive {s.naive.mean():.3f} (beats atoll on {(s.naive < s.atoll).sum()}), "
              f"weekly-profile {s.profile.mean():.3f} (beats atoll on {(s.profile < s.atoll).sum()})")


if __name__ == "__main__":
    main()

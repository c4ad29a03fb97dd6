"""One buffalo (kakao's ALS) fit for bench/als.py, run by the python of buffalo's own
virtual environment (it pins numpy 1.24 and scipy 1.10), so it imports nothing of fastals.

    python bench/_buffalo_worker.py --worker '{"mtx": ..., "K": 64, "solver": "cg", ...}'

Reads the MatrixMarket file bench/als.py wrote, lets buffalo build its HDF5 database from
it (not timed), fits `iterations` iterations and prints one JSON line: the seconds of each
iteration (both halves), the peak resident memory and its growth during the fit.
"""
import json
import os
import sys
import tempfile
import time


def rss_bytes():
    """(current, peak) resident set size of this process, from /proc."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value
    return (int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def main(spec):
    from buffalo.algo.als import ALS
    from buffalo.algo.options import ALSOption
    from buffalo.data.mm import MatrixMarketOptions
    from buffalo.misc import aux, log

    log.set_log_level(log.WARN)
    option = ALSOption().get_default_option()
    option.d = spec["K"]
    option.num_iters = spec["iterations"]
    option.num_workers = spec["threads"]
    option.reg_u = option.reg_i = spec["regularization"]
    option.alpha = spec["alpha"]
    # its CG with the same number of steps, or its exact LLT (Cholesky) solve
    option.optimizer = "manual_cg" if spec["solver"] == "cg" else "llt"
    option.num_cg_max_iters = spec["cg_steps"]
    option.compute_loss_on_training = False
    option.evaluation_on_learning = False
    option.validation = aux.Option({})
    with tempfile.TemporaryDirectory() as tmp:
        data_opt = MatrixMarketOptions().get_default_option()
        data_opt.input.main = spec["mtx"]
        data_opt.data.path = os.path.join(tmp, "db.h5py")
        data_opt.data.tmp_dir = tmp + "/"
        data_opt.data.validation = aux.Option({})
        model = ALS(option, data_opt=data_opt)
        model.initialize()
        stamps = []
        iterate = model._iterate

        def timed(buf, group="rowwise"):
            if group == "rowwise" and not stamps:
                stamps.append(time.perf_counter())
            result = iterate(buf, group=group)
            if group == "colwise":
                stamps.append(time.perf_counter())
            return result

        model._iterate = timed
        reset_peak_rss()
        before, _ = rss_bytes()
        model.train()
        _, peak = rss_bytes()
    seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    print(json.dumps({"seconds": seconds, "peak_extra": peak - before, "peak_rss": peak,
                      "input_bytes": spec["input_bytes"], "factor_bytes": spec["factor_bytes"]}))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--worker":
        sys.exit(__doc__)
    main(json.loads(sys.argv[2]))

"""The ``fastals`` command: demo, fit, recommend, similar, evaluate, tune, serve, bench, models.

``fastals demo`` is the first thing to run on a fresh machine: it generates the embedded
synthetic data set (or reads ``--data movielens-100k PATH``), fits ImplicitALS, and prints
the training time, ranking metrics against a popularity baseline, and sample
recommendations and similar items by name.

Exit codes: 0 success, 1 an error (bad file, unknown id, ...), 2 a usage error. Errors are
one line on stderr naming the file, column or id; ``--debug`` adds the traceback. Progress
bars go to stderr and are off with ``--quiet`` or when stderr is not a terminal.

Models are looked up by name in :data:`MODELS`, which maps each to the name of its class on
the ``fastals`` module (every registered model ships; ``fastals models`` lists them).

``fastals bench`` is a self-check that needs nothing beyond fastals' own dependencies: a
small fit on the compiled kernels timed against the in-package numpy reference, the two
checked to agree, and the instruction-set build that ran. Comparisons with other libraries
are the scripts of the repository's bench/ folder.

``fastals tune DATA --model NAME --budget 60s`` searches the model's hyper-parameters
(:func:`fastals.tune`), prints the leaderboard and writes ``best.json``, which
``fastals fit --params best.json`` (and ``evaluate``) reuse.

The package's modules: this one holds :func:`main` (the entry point, exit codes and
one-line errors) and the argument parser; :mod:`~fastals.cli.registry` the model registry
and the constructor arguments built from the flags; :mod:`~fastals.cli.loading` reading DATA,
weighting it and the model files; :mod:`~fastals.cli.commands` the commands but the bench;
:mod:`~fastals.cli.bench` the bench self-check; :mod:`~fastals.cli.serving` the ``serve``
command (the HTTP service of :mod:`fastals.serve`); :mod:`~fastals.cli.console` the exit codes,
errors, output and formatting they share. The names of the submodules that callers use
(``main``, ``MODELS``, ``resolve_model``, ``CLIError``, ``cmd_*``, ...) are re-exported here.

Imports: the standard library and the other modules of ``fastals.cli``; those import numpy at
load time and, inside the commands, the ``fastals`` package (its models, ``data``,
``datasets``, ``evaluation`` and ``reference``, ``_threads`` and the kernel dispatcher for the
build's name), and ``fastals.tuning`` to read ``--budget``. Never a peer library.
"""
from __future__ import annotations

import argparse
import math
import sys
import traceback
import warnings

from fastals.cli.bench import (BENCH_CG_STEPS, BENCH_REGULARIZATION, BENCH_SAMPLE,
                               BENCH_SHAPE, BENCH_TOLERANCE, cmd_bench)
from fastals.cli.commands import (cmd_demo, cmd_evaluate, cmd_fit, cmd_models, cmd_recommend,
                                  cmd_similar, cmd_tune)
from fastals.cli.console import (EXIT_ERROR, EXIT_OK, EXIT_USAGE, CLIError, Console,
                                 UsageError, _one_line)
from fastals.cli.loading import _detect_dataset, load_data
from fastals.cli.registry import MODELS, ModelSpec, resolve_model
from fastals.cli.serving import cmd_serve

# the names fastals.cli had when it was one module (tests use _detect_dataset)
__all__ = ["main", "build_parser", "MODELS", "ModelSpec", "resolve_model", "load_data",
           "CLIError", "UsageError", "Console", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE",
           "cmd_models", "cmd_fit", "cmd_recommend", "cmd_similar", "cmd_evaluate", "cmd_demo",
           "cmd_bench", "cmd_tune", "BENCH_SHAPE", "BENCH_REGULARIZATION", "BENCH_CG_STEPS",
           "BENCH_SAMPLE", "BENCH_TOLERANCE", "_detect_dataset", "cmd_serve"]


# --- argument parsing ------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2)."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def _checked(convert, accept, what):
    """An argparse type: `convert` the text, then require `accept(value)`."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
_fraction = _checked(float, lambda v: 0 < v < 1, "a number in (0, 1)")
_number = _checked(float, math.isfinite, "a finite number")
_port = _checked(int, lambda v: 0 <= v <= 65535, "a port from 0 to 65535")


def _budget(text):
    """--budget: seconds, or a number with s, m or h (fastals.tune's own reading)."""
    from fastals.tuning import _parse_budget

    try:
        value = _parse_budget(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected seconds or e.g. 60s, 5m, 1h, got {text!r}")
    return value


def build_parser():
    common = _Parser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or notes")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of errors")
    common.add_argument("--threads", type=_non_negative_int, default=argparse.SUPPRESS,
                        help="threads for the kernels (0: all cores)")

    hyper = _Parser(add_help=False)
    group = hyper.add_argument_group("model parameters (only those the model takes)")
    group.add_argument("--factors", type=_positive_int)
    group.add_argument("--iterations", type=_non_negative_int)
    group.add_argument("--regularization", type=_number)
    group.add_argument("--alpha", type=_number)
    group.add_argument("--learning-rate", dest="learning_rate", type=_number)
    group.add_argument("--epochs", type=_non_negative_int)
    group.add_argument("--neighbours", type=_positive_int, help="K of item-knn")
    group.add_argument("--similarity", help="similarity of item-knn (cosine, bm25, ...)")
    group.add_argument("--param", action="append", metavar="NAME=VALUE",
                       help="any other constructor parameter (repeatable)")
    group.add_argument("--seed", type=_non_negative_int, default=0,
                       help="random_state of the model and of the split (default 0)")
    group.add_argument("--params", metavar="BEST.json",
                       help="constructor parameters from a file `fastals tune` wrote (the "
                            "flags above override them)")

    data = _Parser(add_help=False)
    group = data.add_argument_group("reading DATA (a CSV/TSV file, a data set folder, or "
                                    "'synthetic')")
    group.add_argument("--user-col", help="user column: header name or position from 0")
    group.add_argument("--item-col", help="item column: header name or position from 0")
    group.add_argument("--value-col", help="value column (plays, rating); default: found by "
                                           "name, else 1 per row")
    group.add_argument("--time-col", help="timestamp column")
    group.add_argument("--sep", help="field separator (default: from the extension or the "
                                     "first line)")
    group.add_argument("--no-header", dest="header", action="store_false", default=None,
                       help="the first line is data")
    group.add_argument("--encoding", default="utf-8")
    group.add_argument("--duplicates", default="sum",
                       choices=("sum", "mean", "max", "min", "first", "last", "error"),
                       help="how repeated (user, item) rows combine (default sum)")
    group.add_argument("--weighting", choices=("auto", "none", "log", "bm25", "tfidf"),
                       help="confidence weighting of the training values (default auto: "
                            "log(1 + r) for heavy-tailed counts, none otherwise, as ImplicitALS's "
                            "weighting='auto'; bm25/tfidf as implicit's Last.fm example: over "
                            "items x users)")

    parser = _Parser(prog="fastals", parents=[common],
                     description="Fast recommender systems: fit, recommend, evaluate.",
                     epilog="Start with: fastals demo")
    parser.add_argument("--version", action="version",
                        version=f"fastals {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", parents=[common],
                       help="generate data, fit ImplicitALS, show metrics and recommendations")
    p.add_argument("--data", nargs="+", metavar="NAME PATH",
                   help="a real data set instead: e.g. --data movielens-100k PATH")
    p.add_argument("--factors", type=_positive_int)
    p.add_argument("--iterations", type=_non_negative_int)
    p.add_argument("--regularization", type=_number)
    p.add_argument("--alpha", type=_number)
    p.add_argument("-k", type=_positive_int, default=10, help="K of the metrics (default 10)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fit", parents=[common, hyper, data], help="fit a model and save it")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--model", default="implicit-als", help=f"one of {', '.join(MODELS)}")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.npz")
    group = p.add_argument_group("validation while training (iterative models)")
    group.add_argument("--validation-split", dest="validation_split", type=_fraction,
                       help="hold out this fraction of each user's interactions and score "
                            "the model on them after each iteration (the fit uses the rest)")
    group.add_argument("--metric", help="the validation metric: ndcg@10 (default), "
                                        "precision@K, hit_rate@K, mrr@K, ...; rmse for "
                                        "rating models (their default)")
    group.add_argument("--early-stopping-rounds", dest="early_stopping_rounds",
                       type=_positive_int, metavar="N",
                       help="stop after N iterations without improvement; keep the best")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("recommend", parents=[common], help="recommend items to users")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("--user", action="append", required=True, metavar="ID",
                   help="a user id as in the data (repeatable)")
    p.add_argument("-n", type=_positive_int, default=10, help="how many items (default 10)")
    p.add_argument("--include-seen", action="store_true",
                   help="do not filter the items the user already has")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("similar", parents=[common], help="items similar to an item")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("--item", action="append", required=True, metavar="ID",
                   help="an item id as in the data (repeatable)")
    p.add_argument("-n", type=_positive_int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("evaluate", parents=[common, hyper, data],
                       help="fit on a split and print ranking (and rating) metrics")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--model", default="implicit-als", help=f"one of {', '.join(MODELS)}")
    p.add_argument("--split", type=_fraction, default=0.2, help="test fraction (default 0.2)")
    p.add_argument("-k", type=_positive_int, default=10)
    p.add_argument("--no-baseline", action="store_true", help="skip the popularity baseline")
    p.add_argument("--compare", metavar="MODEL2",
                   help="also fit MODEL2 (its defaults, the same seed) on the same split and "
                        "compare the two on the same test users: differences, bootstrap "
                        "intervals, p-values")
    p.add_argument("--compare-param", dest="compare_param", action="append",
                   metavar="NAME=VALUE", help="a constructor parameter of MODEL2 (repeatable)")
    p.add_argument("--bootstrap", type=_positive_int, default=1000, metavar="N",
                   help="bootstrap resamples of the users for --compare (default 1000)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tune", parents=[common, data],
                       help="search a model's hyper-parameters (successive halving), print a "
                            "leaderboard, write best.json for fit --params")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--model", default="implicit-als", help=f"one of {', '.join(MODELS)}")
    p.add_argument("--budget", default="60s", type=_budget,
                   help="wall time, e.g. 60s, 5m (default 60s); the final refit included")
    p.add_argument("--max-trials", dest="max_trials", type=_positive_int,
                   help="stop after this many configurations")
    p.add_argument("--metric", default="ndcg",
                   choices=("ndcg", "precision", "map", "recall", "auc", "rmse", "mae"))
    p.add_argument("-k", type=_positive_int, default=10, help="K of the metric (default 10)")
    p.add_argument("--split", type=_fraction, default=0.2,
                   help="fraction held out for scoring (default 0.2)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--jobs", type=_positive_int, default=1,
                   help="trials run at once (default 1: the same result for the same seed)")
    p.add_argument("--confirm", type=_non_negative_int, default=5,
                   help="refit the best N trials on two more splits and keep the best mean "
                        "(default 5; 0: the single split decides)")
    p.add_argument("-o", "--output", default="best.json", metavar="BEST.json",
                   help="where to write the best parameters (default best.json)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("serve", parents=[common],
                       help="serve a model over HTTP: /recommend, /similar, /health (needs "
                            "the serve extra: pip install 'fastals[serve]')")
    p.add_argument("model", metavar="MODEL.npz")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="default 8000; 0: a free port")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="worker processes sharing the loaded model (default 1)")
    p.add_argument("--max-n", dest="max_n", type=_positive_int, default=1000,
                   help="the largest n a request may ask for (default 1000)")
    p.add_argument("--max-batch", dest="max_batch", type=_positive_int, default=1000,
                   help="the most users in one POST /recommend (default 1000)")
    p.add_argument("--log-level", dest="log_level", default="info",
                   choices=("debug", "info", "warning", "error"))
    p.add_argument("--access-log", dest="access_log", action="store_true",
                   help="log every request (off by default)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", parents=[common],
                       help="self-check: the compiled kernels against the numpy reference "
                            "(speed and agreement); peers are compared by the bench/ scripts")
    p.add_argument("--factors", type=_positive_int, default=32)
    p.add_argument("--iterations", type=_positive_int, default=3)
    p.add_argument("--repeats", type=_positive_int, default=3, help="fits timed (median)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("models", parents=[common], help="list the models")
    p.set_defaults(func=cmd_models)
    return parser


def _version():
    try:
        from fastals import __version__
    except Exception:  # a broken build still answers --version
        return "unknown"
    return __version__


# --- entry point -----------------------------------------------------------------------------
def _error_message(exc):
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def main(argv=None):
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"fastals: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if getattr(args, "func", None) is None:
        print("fastals: error: give a command, e.g. fastals demo (see fastals --help)",
              file=sys.stderr)
        return EXIT_USAGE
    debug = getattr(args, "debug", False) or debug
    if not hasattr(args, "threads"):
        args.threads = None
    console = Console(getattr(args, "quiet", False))

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"fastals: warning: {_one_line(message)}", file=sys.stderr)

    previous = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        return args.func(args, console)
    except UsageError as exc:
        print(f"fastals: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastals: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `fastals recommend ... | head`
        sys.stderr.close()
        return EXIT_OK
    except (CLIError, ValueError, TypeError, OSError, ImportError, ArithmeticError,
            MemoryError, KeyError, IndexError) as exc:
        if debug:
            traceback.print_exc()
        print(f"fastals: error: {_one_line(_error_message(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"fastals: internal error: {type(exc).__name__}: {_one_line(exc)} (run with "
              "--debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.showwarning = previous


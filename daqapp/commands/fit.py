"""``daqapp fit``: BTK fits and model comparison of spectra in an HDF5 run or a text file."""

from __future__ import annotations

import argparse
import json
import sys

from daqapp.commands._types import finite_float, whole_number


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit", help="fit BTK/TK models to dI/dV spectra (HDF5 run or CSV/text)",
        description="Fit normalised conductance spectra with s, d, s+s, s+d, d+s, d+d (or "
        "n-gap, e.g. s+s+s) BTK/Tanaka-Kashiwaya models; 'all' compares the four two-gap "
        "models by AIC/BIC. FILE columns: bias (mV), conductance, optional temperature (K).")
    p.add_argument("file", metavar="FILE", help="HDF5 run file or CSV/text table")
    p.add_argument("--model", default="s+s",
                   help="s, d, s+s, s+d, d+s, d+d, n gaps like s+s+s, or 'all' (default s+s)")
    p.add_argument("--temperature", type=finite_float(0, 1500, "K", low_open=True), default=None,
                   metavar="K",
                   help="temperature for the thermal smearing (default: from the file, else 3)")
    p.add_argument("--dimension", type=whole_number(1, 3), default=2, choices=(1, 2, 3),
                   help="Fermi-surface convention: 1D, 2D (default, the seed's) or 3D")
    p.add_argument("--normalize", action="store_true",
                   help="raw conductance: fit a quadratic normal-state background jointly with "
                        "the BTK model (not divided out beforehand, where the tail is not yet 1)")
    p.add_argument("--bias-window", type=finite_float(), nargs=2, metavar=("MIN", "MAX"),
                   help="fit only biases in [MIN, MAX] mV")
    p.add_argument("--sigma", type=finite_float(0, low_open=True), default=None,
                   help="noise of one point (default: estimated from the scatter)")
    p.add_argument("--json", action="store_true", help="print result objects as JSON")
    p.set_defaults(func=run)


def _load(path: str):
    from daqapp.errors import DataFileError
    from daqapp.storage.spectra import load_spectra

    try:
        return load_spectra(path)
    except DataFileError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise DataFileError(f"{path}: cannot read spectra ({exc})") from None


def _edge_level(bias, g) -> float:
    """Mean conductance of the outer tenth of the sweep on each side: sets the scale near 1."""
    import numpy as np

    from daqapp.errors import DataFileError

    span = np.nanmax(np.abs(bias))
    edge = np.abs(bias) >= 0.9 * span
    level = float(np.nanmean(g[edge])) if np.any(edge) else float("nan")
    if not (np.isfinite(level) and level != 0.0):
        raise DataFileError("cannot normalise: no finite conductance at the sweep's edges")
    return level


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from daqapp.analysis.fit import (
        STANDARD_MODELS,
        BTKModel,
        compare_models,
        fit_spectrum,
        parse_model,
    )
    from daqapp.errors import ConfigError

    models = STANDARD_MODELS if args.model == "all" else (args.model,)
    for m in models:
        try:
            parse_model(m)
        except ValueError as exc:
            raise ConfigError(f"--model: {exc}") from None
    if args.bias_window and not args.bias_window[0] < args.bias_window[1]:
        raise ConfigError(f"--bias-window {args.bias_window[0]:g} {args.bias_window[1]:g}: "
                          "MIN must be below MAX")
    spectra = _load(args.file)
    out = []
    for spec in spectra:
        bias, g = np.asarray(spec.bias_mV, float), np.asarray(spec.conductance, float)
        steps = []
        if not (args.normalize or spec.normalized):
            raise ConfigError(f"{args.file}: spectrum '{spec.label}' is not normalised; "
                              "pass --normalize (the fit then carries a quadratic normal-state "
                              "background) or normalise it first")
        t = args.temperature if args.temperature is not None else (
            spec.temperature_K if spec.temperature_K is not None else 3.0)
        window = tuple(args.bias_window) if args.bias_window else None
        if args.normalize:
            level = _edge_level(bias, g)
            g = g / level
            steps = [f"divided by the outer-edge level {level:.6g} (a constant); quadratic "
                     "background fitted jointly with the model"]
        fit_models = [BTKModel(m, t, args.dimension).free_background() if args.normalize else m
                      for m in models]
        try:
            if len(models) > 1:
                cmp = compare_models(bias, g, fit_models, temperature_K=t,
                                     dimension=args.dimension,
                                     sigma=args.sigma, bias_window=window)
                item = {"label": spec.label, "preparation": steps, **cmp.to_dict()}
                text = cmp.summary()
            else:
                res = fit_spectrum(bias, g, fit_models[0], temperature_K=t,
                                   dimension=args.dimension, sigma=args.sigma,
                                   bias_window=window)
                item = {"label": spec.label, "preparation": steps, "result": res.to_dict()}
                text = res.summary()
        except ValueError as exc:
            raise ConfigError(f"{args.file} '{spec.label}': {exc}") from None
        out.append(item)
        if not args.json:
            print(f"== {spec.label}")
            for s in steps:
                print(f"   ({s})")
            print(text)
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return 0

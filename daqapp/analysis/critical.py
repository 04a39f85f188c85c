"""Critical current from I–V curves and Jc(T) fits (Dew-Hughes, GL, (1−t)^n, (1−t²)^n).

Why a noise-scaled criterion: the seed defines Ic as "the current at which the voltage becomes
non-zero", which on real data means "leaves the noise".  The default criterion is therefore a
voltage threshold of ``noise_factor`` × the voltage noise measured on the lowest-current part of
the same curve (after removing the thermo-emf offset), confirmed by the following points so a
single spike cannot trigger it.  An explicit voltage threshold (e.g. an electric-field criterion
1 µV/cm × voltage-tap distance) or a resistance criterion V/I > R_c are the alternatives.
Currents are returned in the units they are given in (A or mA).

Why several Jc(T) forms and their spread: the pinning mechanism is rarely known, and Jc(0) is
an extrapolation whose value depends on the form; :func:`fit_jc_forms` fits them all and
quotes the spread of Jc(0) between the forms the data do not reject as a systematic error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daqapp.analysis._fitting import check_finite_positive, clean_xy, fit_least_squares

IC_CRITERIA = ("voltage", "resistance")
JC_FORMS = ("dew_hughes_dtc", "dew_hughes_dl", "gl", "power", "power_t2")
FREE_EXPONENT_FORMS = ("power", "power_t2")
"""Forms with a fitted exponent n: (1 − t)^n and (1 − t²)^n."""
JC_FORM_LABELS = {"dew_hughes_dtc": "δTc pinning", "dew_hughes_dl": "δl pinning",
                  "gl": "GL depairing", "power": "(1 − t)ⁿ", "power_t2": "(1 − t²)ⁿ"}
FORMS_AIC_WINDOW = 10.0
"""ΔAIC above the best form beyond which a form is rejected (decisive, physics.md §3)."""
_EXPONENTS = {  # (a, b) of (1 − t²)^a (1 + t²)^b
    "dew_hughes_dtc": (7.0 / 6.0, 5.0 / 6.0),  # δTc pinning
    "dew_hughes_dl": (5.0 / 2.0, -1.0 / 2.0),  # δl pinning
    "gl": (3.0 / 2.0, 1.0 / 2.0),  # GL depairing
}


@dataclass(frozen=True)
class CriticalCurrent:
    """Ic of one I–V curve, both polarities; currents in the units of the input."""

    ic_positive: float | None
    ic_negative: float | None
    ic_mean: float | None
    ic_asymmetry: float | None
    criterion: str
    threshold: float
    offset_V: float
    noise_V: float
    normal_resistance: float | None
    ohmic: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _first_sustained(exceed: np.ndarray, confirm: int) -> int | None:
    """First index from which ``confirm`` consecutive points (or all remaining) exceed."""
    n = exceed.size
    for k in np.nonzero(exceed)[0]:
        end = min(n, k + confirm)
        if np.all(exceed[k:end]):
            return int(k)
    return None


def critical_current(current: object, voltage: object, threshold_V: float | None = None,
                     criterion: str = "voltage", resistance_threshold: float | None = None,
                     noise_factor: float = 5.0, confirm_points: int = 3) -> CriticalCurrent:
    """Ic from an I–V curve: where |V − V0| leaves zero, for I > 0 and I < 0 separately.

    criterion "voltage": |V − V0| > ``threshold_V`` (default ``noise_factor`` × noise, noise =
    1.48·MAD of the residual of a line through the lowest-|I| fifth of the points);
    "resistance": |V − V0| > ``resistance_threshold`` × |I| (V and I units).  The crossing is
    interpolated linearly between the last point inside and the first point outside, and must
    be confirmed by ``confirm_points`` consecutive points.  ``ic_mean`` averages the polarities
    found; ``ic_asymmetry`` is half their difference (a self-field or offset indicator).  A side
    whose voltage never leaves zero within the sweep gives None there (Ic beyond the range); a
    curve that is resistive from the smallest current (e.g. above Tc) gives 0 and ``ohmic``.
    """
    if criterion not in IC_CRITERIA:
        raise ValueError(f"criterion = {criterion!r} is not allowed "
                         f"(allowed: {', '.join(IC_CRITERIA)})")
    I, V, _ = clean_xy(current, voltage, None, "current", "voltage")
    if I.size < 8:
        raise ValueError(f"need at least 8 (current, voltage) points, got {I.size}")
    check_finite_positive("noise_factor", noise_factor)
    if int(confirm_points) < 1:
        raise ValueError("confirm_points must be >= 1")
    absI = np.abs(I)
    low = absI <= np.quantile(absI, 0.2)
    if np.count_nonzero(low) < 3:
        low = np.argsort(absI)[:3]
    coef = np.polyfit(I[low], V[low], 1) if np.ptp(I[low]) > 0 else np.array([0.0, V[low].mean()])
    offset = float(np.median(V[low] - coef[0] * I[low]))
    resid = V[low] - np.polyval(coef, I[low])
    noise = float(1.4826 * np.median(np.abs(resid - np.median(resid))))
    dv = np.abs(V - offset)
    scale = float(dv.max()) if dv.max() > 0 else 1.0
    if criterion == "voltage":
        thr = float(threshold_V) if threshold_V is not None else max(noise_factor * noise,
                                                                     1e-9 * scale)
        check_finite_positive("threshold_V", thr)
        level = np.full(I.shape, thr)
    else:
        if resistance_threshold is None:
            raise ValueError("criterion 'resistance' needs resistance_threshold (> 0, V/I units)")
        thr = check_finite_positive("resistance_threshold", resistance_threshold)
        level = thr * absI
    ics: dict[int, float | None] = {}
    ohmic_sides = []
    for sign in (1, -1):
        sel = np.nonzero(np.sign(I) == sign)[0]
        if sel.size < 2:
            ics[sign] = None
            continue
        order = sel[np.argsort(absI[sel], kind="stable")]
        a, d, lv = absI[order], dv[order], level[order]
        k = _first_sustained(d > lv, int(confirm_points))
        if k is None:
            ics[sign] = None
        elif k == 0:
            ics[sign] = 0.0
            ohmic_sides.append(sign)
        else:
            d0, d1 = d[k - 1] - lv[k - 1], d[k] - lv[k]
            frac = -d0 / (d1 - d0) if d1 != d0 else 1.0
            ics[sign] = float(a[k - 1] + frac * (a[k] - a[k - 1]))
    found = [v for v in ics.values() if v is not None]
    mean = float(np.mean(found)) if found else None
    asym = (0.5 * abs(ics[1] - ics[-1])
            if ics[1] is not None and ics[-1] is not None else None)
    high = absI >= np.quantile(absI, 0.8)
    rn = None  # only meaningful where the highest currents are resistive
    if (np.ptp(I[high]) > 0 and np.count_nonzero(high) >= 3
            and np.median(dv[high] - level[high]) > 0):
        pos = high & (I > 0)
        neg = high & (I < 0)
        slopes = [np.polyfit(I[m], V[m], 1)[0] for m in (pos, neg)
                  if np.count_nonzero(m) >= 2 and np.ptp(I[m]) > 0]
        rn = float(np.mean(slopes)) if slopes else float(np.polyfit(I[high], V[high], 1)[0])
    return CriticalCurrent(ic_positive=ics[1], ic_negative=ics[-1], ic_mean=mean,
                           ic_asymmetry=asym, criterion=criterion, threshold=thr,
                           offset_V=offset, noise_V=noise, normal_resistance=rn,
                           ohmic=len(ohmic_sides) == 2)


def critical_current_density(ic_A: float, width_m: float, thickness_m: float,
                             unit: str = "A/cm2") -> float:
    """Jc = Ic / (width × thickness), in A/cm² (default) or A/m²."""
    check_finite_positive("ic_A", ic_A, allow_zero=True)
    area = check_finite_positive("width_m", width_m) * check_finite_positive("thickness_m",
                                                                              thickness_m)
    jc = float(ic_A) / area
    if unit == "A/cm2":
        return jc * 1e-4
    if unit == "A/m2":
        return jc
    raise ValueError(f"unit = {unit!r} is not allowed (allowed: A/cm2, A/m2)")


def jc_temperature(temperature_K: object, jc0: float, tc_K: float, form: str = "dew_hughes_dtc",
                   n: float = 1.5) -> np.ndarray:
    """Jc(T) of a named form, in the units of ``jc0``; 0 at and above Tc.

    dew_hughes_dtc: (1−t²)^{7/6}(1+t²)^{5/6}; dew_hughes_dl: (1−t²)^{5/2}(1+t²)^{−1/2};
    gl: (1−t²)^{3/2}(1+t²)^{1/2}; power: (1−t)^n; power_t2: (1−t²)^n.
    """
    if form not in JC_FORMS:
        raise ValueError(f"form = {form!r} is not allowed (allowed: {', '.join(JC_FORMS)})")
    T = np.asarray(temperature_K, dtype=float)
    if np.any(~np.isfinite(T)) or np.any(T < 0):
        raise ValueError("temperature_K must be finite and >= 0")
    check_finite_positive("tc_K", tc_K)
    t = np.clip(T / tc_K, 0.0, 1.0)
    if form == "power":
        check_finite_positive("n", n)
        shape = (1.0 - t) ** n
    elif form == "power_t2":
        check_finite_positive("n", n)
        shape = (1.0 - t * t) ** n
    else:
        a, b = _EXPONENTS[form]
        shape = (1.0 - t * t) ** a * (1.0 + t * t) ** b
    return jc0 * shape


@dataclass(frozen=True)
class JcFit:
    """Jc(T) fit: Jc(0) (input units), Tc and the exponent n of (1−t)^n near Tc.

    For "power" and "power_t2" n is the fitted exponent of the form itself ((1−t²)^n also
    goes as (1−t)^n near Tc); for the fixed forms it is their exponent near Tc.
    """

    form: str
    jc0: float
    jc0_err: float
    tc_K: float
    tc_err_K: float
    n: float
    n_err: float
    n_fitted: bool
    chi2_red: float
    n_points: int
    absolute_sigma: bool
    chi2: float = float("nan")
    n_free: int = 0

    def curve(self, temperature_K: object) -> np.ndarray:
        return jc_temperature(temperature_K, self.jc0, self.tc_K, self.form, self.n)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def fit_jc_temperature(temperature_K: object, ic: object, ic_err: object | None = None,
                       form: str = "dew_hughes_dtc", tc_K: float | None = None) -> JcFit:
    """Fit Ic(T) or Jc(T) → Jc(0) (same units as ``ic``), Tc, exponent n, with errors.

    Dew-Hughes δTc / δl pinning, GL depairing, or the empirical (1−t)^n or (1−t²)^n with n
    free.  For the
    fixed forms ``n`` is their exponent near Tc ((1−t²)^a → (1−t)^a).  Pass ``tc_K`` to fix Tc
    (usually the transport value); leave out points where Ic = 0 only because the sample is
    already resistive at the smallest current below Tc.
    """
    if form not in JC_FORMS:
        raise ValueError(f"form = {form!r} is not allowed (allowed: {', '.join(JC_FORMS)})")
    T, J, sig = clean_xy(temperature_K, ic, ic_err, "temperature_K", "ic")
    if np.any(T < 0) or np.any(J < 0):
        raise ValueError("temperature_K and ic must be >= 0")
    if J.max() <= 0:
        raise ValueError("ic must contain at least one value > 0")
    if tc_K is not None:
        check_finite_positive("tc_K", tc_K)
    names = ["jc0"]
    lo, hi = [0.0], [np.inf]
    tc_start = float(tc_K) if tc_K is not None else 1.1 * float(T[J > 0].max())
    starts = [[1.1 * float(J.max())]]
    if tc_K is None:
        # Ic > 0 means superconducting: Tc lies above the warmest such point
        names.append("tc_K")
        lo.append(float(T[J > 0].max()) * (1 + 1e-9))
        hi.append(np.inf)
        starts = [s + [tc_start] for s in starts] + [[1.1 * float(J.max()), 1.5 * tc_start]]
    if form in FREE_EXPONENT_FORMS:
        names.append("n")
        lo.append(1e-3)
        hi.append(20.0)
        starts = [s + [n0] for s in starts for n0 in (1.0, 1.5, 2.5)]
    if T.size < len(names):
        raise ValueError(f"need at least {len(names)} points for form {form!r}, got {T.size}")

    def model(x: np.ndarray, *p: float) -> np.ndarray:
        v = dict(zip(names, p, strict=True))
        return jc_temperature(x, v["jc0"], v.get("tc_K", tc_start), form, v.get("n", 1.5))

    best = None
    for p0 in starts:
        res = fit_least_squares(model, T, J, sig, p0, lo, hi, names)
        if best is None or res.chi2 < best.chi2:
            best = res
    res = best
    if form in FREE_EXPONENT_FORMS:
        n, n_err, fitted = res.value("n"), res.error("n"), True
    else:
        n, n_err, fitted = _EXPONENTS[form][0], 0.0, False
    tc = res.value("tc_K") if tc_K is None else float(tc_K)
    return JcFit(form=form, jc0=res.value("jc0"), jc0_err=res.error("jc0"), tc_K=tc,
                 tc_err_K=res.error("tc_K") if tc_K is None else 0.0, n=n, n_err=n_err,
                 n_fitted=fitted, chi2_red=res.chi2_red, n_points=res.n_points,
                 absolute_sigma=res.absolute_sigma, chi2=res.chi2, n_free=len(names))


@dataclass(frozen=True)
class JcFormsFit:
    """Jc(T) fitted with several pinning forms; Jc(0) with the spread between them.

    ``best_form`` has the lowest AIC; ``accepted_forms`` are those within FORMS_AIC_WINDOW of
    it (χ² in units of the measured errors, or of the best form's residual scatter without
    errors).  ``jc0_systematic`` is half the range of Jc(0) over the accepted forms: quote
    Jc(0) = jc0 ± jc0_err (statistical, best form) ± jc0_systematic (pinning form).
    """

    fits: dict[str, JcFit]
    aic: dict[str, float]
    best_form: str
    accepted_forms: tuple[str, ...]
    jc0: float
    jc0_err: float
    jc0_range: tuple[float, float]
    jc0_systematic: float
    tc_range_K: tuple[float, float]
    failed: dict[str, str]
    notes: list[str]

    @property
    def best(self) -> JcFit:
        return self.fits[self.best_form]

    def to_dict(self) -> dict[str, object]:
        return {"fits": {k: v.to_dict() for k, v in self.fits.items()}, "aic": dict(self.aic),
                "best_form": self.best_form, "accepted_forms": list(self.accepted_forms),
                "jc0": self.jc0, "jc0_err": self.jc0_err, "jc0_range": list(self.jc0_range),
                "jc0_systematic": self.jc0_systematic, "tc_range_K": list(self.tc_range_K),
                "failed": dict(self.failed), "notes": list(self.notes)}


def fit_jc_forms(temperature_K: object, ic: object, ic_err: object | None = None,
                 forms: tuple[str, ...] = JC_FORMS, tc_K: float | None = None) -> JcFormsFit:
    """Fit Ic(T) or Jc(T) with every form in ``forms`` → Jc(0) and its pinning-form spread.

    Forms are ranked by AIC = χ² + 2k; those ΔAIC > FORMS_AIC_WINDOW above the best are named
    in ``notes`` and left out of the spread (the data reject them).
    """
    if not forms:
        raise ValueError("forms must name at least one Jc(T) form "
                         f"(allowed: {', '.join(JC_FORMS)})")
    for f in forms:
        if f not in JC_FORMS:
            raise ValueError(f"form = {f!r} is not allowed (allowed: {', '.join(JC_FORMS)})")
    fits: dict[str, JcFit] = {}
    failed: dict[str, str] = {}
    for f in dict.fromkeys(forms):
        try:
            fits[f] = fit_jc_temperature(temperature_K, ic, ic_err, form=f, tc_K=tc_K)
        except ValueError as exc:
            failed[f] = str(exc)
    if not fits:
        raise ValueError("no Jc(T) form could be fitted: " + "; ".join(failed.values()))
    any_fit = next(iter(fits.values()))
    if any_fit.absolute_sigma:
        unit = 1.0
    else:  # χ² of unweighted fits is in units of the unknown σ²: take the best scatter
        unit = min(v.chi2 / max(v.n_points - v.n_free, 1) for v in fits.values())
        unit = unit if unit > 0 else 1.0
    aic = {k: v.chi2 / unit + 2 * v.n_free for k, v in fits.items()}
    best = min(aic, key=aic.get)
    accepted = tuple(k for k in fits if aic[k] - aic[best] <= FORMS_AIC_WINDOW)
    notes = [f"{JC_FORM_LABELS[k]} rejected by the data (ΔAIC = {aic[k] - aic[best]:.1f})"
             for k in fits if k not in accepted]
    notes += [f"{JC_FORM_LABELS[k]} fit failed: {msg}" for k, msg in failed.items()]
    jc0s = [fits[k].jc0 for k in accepted]
    tcs = [fits[k].tc_K for k in accepted]
    jc0_range = (float(min(jc0s)), float(max(jc0s)))
    syst = 0.5 * (jc0_range[1] - jc0_range[0])
    b = fits[best]
    notes.append(f"Jc(0) = {b.jc0:.4g} ± {b.jc0_err:.2g} (stat., {JC_FORM_LABELS[best]}) "
                 f"± {syst:.2g} (spread over {len(accepted)} pinning forms)")
    return JcFormsFit(fits=fits, aic=aic, best_form=best, accepted_forms=accepted, jc0=b.jc0,
                      jc0_err=b.jc0_err, jc0_range=jc0_range, jc0_systematic=syst,
                      tc_range_K=(float(min(tcs)), float(max(tcs))), failed=failed,
                      notes=notes)

"""Sample presets for the virtual lab: what the sample and its point contact look like.

A preset holds the numbers the sample model turns into spectra, R(T, B) and I–V curves. The
built-in ones follow the seed paper (La3Ni2O7 Cell 2 / Cell 1 at 23–24.5 GPa, Nb foil); a user
preset is a TOML file with the same keys, optionally starting from a built-in one (``base``).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from daqapp.errors import ConfigError


@dataclass(frozen=True)
class GapRow:
    """BTK parameters of every gap at one temperature (meV; Z dimensionless)."""

    temperature_K: float
    delta_meV: tuple[float, ...]
    gamma_meV: tuple[float, ...]
    z: tuple[float, ...]


@dataclass(frozen=True)
class SamplePreset:
    """Everything the sample model needs. Units are in the field names."""

    name: str
    description: str
    # --- superconducting gaps (BTK) -------------------------------------------------------
    tc_K: float                                  # where the gaps close
    gap_rows: tuple[GapRow, ...]                 # measured/fitted table, interpolated in T
    gap_weights: tuple[float, ...]               # conductance weight of each gap channel
    dimension: int = 2                           # BTK angular average (the paper used 2D)
    # --- point-contact junction -----------------------------------------------------------
    junction_normal_resistance_ohm: float = 350.0
    background_linear_per_mV: float = 2e-4       # odd term of the normal-state background
    background_quadratic_per_mV2: float = 1.5e-5
    series_resistance_ohm: float = 25.0          # lead resistance in the 3-terminal path ...
    series_heating_per_A: float = 700.0          # ... whose Joule heating adds a thermovoltage
                                                 # ∝ I²: the spectra's slight asymmetry
    spreading_resistance_ohm: float = 20.0       # superconducting region under the contact
                                                 # (normal-state value at the onset) ...
    spreading_ic0_A: float = 4e-4                # ... and its own Ic(0): it switches where the
                                                 # contact current crosses Ic -> dI/dV dips
    contact_noise_relative: float = 2e-4         # junction (1/f-like) noise relative to signal
    # --- transport: normal state and transition --------------------------------------------
    r0_ohm: float = 0.25                         # R_N(T) = r0 + slope·T (+ curvature above 140 K)
    r_slope_ohm_per_K: float = 0.006
    r_curvature_per_K: float = 0.0015            # sub-linear bend above r_linear_until_K
    r_linear_until_K: float = 140.0
    transition_onset_K: float = 72.0
    transition_zero_K: float = 6.0
    transition_exponent: float = 1.6             # R/R_N = x**p with x = (T - T0)/(Ton - T0)
    hc2_0_T: float = 97.7                        # two-band μ0Hc2(0) of the onset
    hc2_eta: float = 0.2                         # Gurevich D2/D1
    hc2_lambdas: tuple[float, float, float, float] = (0.5, 0.1, 0.1, 0.3)
    # --- critical current (vortex pinning, δTc form) ---------------------------------------
    ic0_A: float = 2.03e-3
    ic_tc_K: float = 32.0                        # Ic vanishes here (paper: V > 0 above ~30 K)
    depairing_current_A: float = 20e-3           # scale of the nonlinear rise to the normal state
    thermal_emf_V: float = 2.0e-6                # offset the delta mode cancels
    thermal_emf_drift_V_per_s: float = 2.0e-9
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.gap_weights)
        if n == 0:
            raise ConfigError(f"preset {self.name}: gap_weights must list at least one gap")
        if abs(sum(self.gap_weights) - 1.0) > 1e-6:
            raise ConfigError(f"preset {self.name}: gap_weights must sum to 1, "
                              f"got {sum(self.gap_weights):g}")
        if not self.gap_rows:
            raise ConfigError(f"preset {self.name}: gap_rows must hold at least one row")
        for row in self.gap_rows:
            if not (len(row.delta_meV) == len(row.gamma_meV) == len(row.z) == n):
                raise ConfigError(f"preset {self.name}: gap row at {row.temperature_K} K must "
                                  f"give {n} values of delta_meV, gamma_meV and z")
            if row.temperature_K >= self.tc_K:
                raise ConfigError(f"preset {self.name}: gap row at {row.temperature_K} K is "
                                  f"not below tc_K = {self.tc_K} K")
        temps = [r.temperature_K for r in self.gap_rows]
        if temps != sorted(temps):
            raise ConfigError(f"preset {self.name}: gap_rows must be sorted by temperature")
        if self.dimension not in (1, 2, 3):
            raise ConfigError(f"preset {self.name}: dimension = {self.dimension} (allowed 1, 2, 3)")
        if not (0 < self.transition_zero_K < self.transition_onset_K):
            raise ConfigError(f"preset {self.name}: need 0 < transition_zero_K < "
                              "transition_onset_K")
        if self.junction_normal_resistance_ohm <= 0:
            raise ConfigError(f"preset {self.name}: junction_normal_resistance_ohm must be > 0")


# Extended Data Table 3 of the seed paper: Cell 2, position 2, 23 GPa. Columns T, Γ1, Γ2, Z1,
# Z2, Δ1, Δ2 (meV). Values are reproduced here because they ARE the sample being emulated.
_CELL2_TABLE = (
    (3, 6.6, 4.0, 0.58, 0.40, 23.0, 6.0),
    (5, 6.63, 4.1, 0.57, 0.40, 22.9, 6.0),
    (10, 6.63, 4.1, 0.557, 0.41, 23.0, 5.98),
    (14, 6.63, 4.1, 0.53, 0.40, 22.8, 5.9),
    (20, 6.4, 3.5, 0.515, 0.38, 22.9, 5.85),
    (26, 6.4, 3.6, 0.485, 0.36, 22.2, 5.8),
    (30, 6.9, 4.0, 0.43, 0.31, 22.1, 5.7),
    (35, 7.0, 4.1, 0.40, 0.30, 21.5, 5.6),
    (40, 7.2, 4.3, 0.35, 0.27, 20.5, 5.3),
)


def _rows(table, delta_scale: float = 1.0) -> tuple[GapRow, ...]:
    return tuple(GapRow(float(t), (d1 * delta_scale, d2 * delta_scale), (g1, g2), (z1, z2))
                 for t, g1, g2, z1, z2, d1, d2 in table)


BUILTIN_PRESETS: dict[str, SamplePreset] = {
    "la3ni2o7-cell2": SamplePreset(
        name="la3ni2o7-cell2",
        description="La3Ni2O7-δ, Cell 2 at 23 GPa: two s-wave gaps (Ext. Data Table 3), "
                    "Tc 72 K, broad transition with zero resistance below ~6 K",
        tc_K=72.0,
        gap_rows=_rows(_CELL2_TABLE),
        # The large gap carries the dominant coherence peaks at ±23 mV in Fig. 2b; the small
        # gap shows as shoulders at ±6 mV, so it gets the smaller share.
        gap_weights=(0.6, 0.4),
    ),
    "la3ni2o7-cell1": SamplePreset(
        name="la3ni2o7-cell1",
        description="La3Ni2O7-δ, Cell 1 at 24.5 GPa: sharper transition, zero resistance "
                    "below ~32 K; gaps scaled from Cell 2 to Tc 70 K",
        tc_K=70.0,
        gap_rows=_rows(_CELL2_TABLE, delta_scale=70.0 / 72.0),
        gap_weights=(0.6, 0.4),
        r0_ohm=0.15,
        r_slope_ohm_per_K=0.004,
        transition_onset_K=70.0,
        transition_zero_K=32.0,
        transition_exponent=1.2,
        series_resistance_ohm=15.0,
        spreading_resistance_ohm=10.0,
        spreading_ic0_A=6e-4,
    ),
    "nb-foil": SamplePreset(
        name="nb-foil",
        description="Nb foil calibration sample: one s-wave gap Δ 1.5 meV, Z 0.43, "
                    "Γ 1.42 meV, Tc 9.2 K",
        tc_K=9.2,
        gap_rows=(GapRow(1.5, (1.5,), (1.42,), (0.43,)),),
        gap_weights=(1.0,),
        junction_normal_resistance_ohm=8.0,
        background_linear_per_mV=2e-3,
        background_quadratic_per_mV2=2e-4,
        series_resistance_ohm=0.5,
        series_heating_per_A=0.0,
        spreading_resistance_ohm=0.0,
        r0_ohm=0.002,
        r_slope_ohm_per_K=2.0e-4,
        r_curvature_per_K=0.0,
        transition_onset_K=9.3,
        transition_zero_K=9.1,
        transition_exponent=1.0,
        hc2_0_T=0.4,
        hc2_eta=1.0,
        hc2_lambdas=(0.5, 0.0, 0.0, 0.5),
        ic0_A=0.1,
        ic_tc_K=9.2,
        depairing_current_A=0.5,
    ),
}


def preset_names() -> list[str]:
    return sorted(BUILTIN_PRESETS)


def load_preset(name_or_path: str | Path) -> SamplePreset:
    """A built-in preset by name, or a TOML file (keys = :class:`SamplePreset` fields).

    A TOML file may say ``base = "la3ni2o7-cell2"`` and override only some keys; gap rows are
    given as ``[[gap_rows]]`` tables with ``temperature_K``, ``delta_meV``, ``gamma_meV``, ``z``.
    """
    key = str(name_or_path)
    if key in BUILTIN_PRESETS:
        return BUILTIN_PRESETS[key]
    path = Path(key)
    if path.suffix.lower() != ".toml":
        raise ConfigError(f"preset {key!r} is unknown (built-in: {', '.join(preset_names())}; "
                          "or give a .toml file)")
    if not path.is_file():
        raise ConfigError(f"preset file {key} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset file {key}: {exc}") from None
    return preset_from_mapping(data, source=key)


def preset_from_mapping(data: dict, source: str = "<mapping>") -> SamplePreset:
    """Build a preset from a parsed TOML/dict, starting from ``base`` if given."""
    data = dict(data)
    base_name = data.pop("base", None)
    if base_name is not None:
        if base_name not in BUILTIN_PRESETS:
            raise ConfigError(f"{source}: base = {base_name!r} is unknown "
                              f"(built-in: {', '.join(preset_names())})")
        values = dataclasses.asdict(BUILTIN_PRESETS[base_name])
        values["gap_rows"] = BUILTIN_PRESETS[base_name].gap_rows
    else:
        values = {}
    names = {f.name for f in dataclasses.fields(SamplePreset)}
    for k in data:
        if k not in names:
            raise ConfigError(f"{source}: key {k!r} is not a preset field "
                              f"(allowed: {', '.join(sorted(names))})")
    values.update(data)
    values.setdefault("name", Path(source).stem)
    values.setdefault("description", f"user preset from {source}")
    rows = values.get("gap_rows")
    if rows is None:
        raise ConfigError(f"{source}: gap_rows missing (or give base = a built-in preset)")
    try:
        values["gap_rows"] = tuple(
            r if isinstance(r, GapRow) else GapRow(
                float(r["temperature_K"]), tuple(map(float, r["delta_meV"])),
                tuple(map(float, r["gamma_meV"])), tuple(map(float, r["z"])))
            for r in rows)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{source}: each gap_rows entry needs temperature_K, delta_meV, "
                          f"gamma_meV and z lists ({exc})") from None
    for tup in ("gap_weights", "hc2_lambdas"):
        if tup in values:
            values[tup] = tuple(float(v) for v in values[tup])
    try:
        return SamplePreset(**values)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None

"""A synthetic hip-mobility cohort with known truth.

:func:`simulate_cohort` draws a randomised cohort (arms, repeated visits, both sides,
several trials, two raters on a reliability subset, a retest visit, a training log
with progressive loads, form faults and pain) from a documented generative model,
and returns a :class:`~hipstats.cohort.Cohort` whose ``truth`` holds every
generating parameter and each participant's latent values, so tests can check
that analyses recover them.

Defaults follow published norms (rounded):

* hip IR, prone, about 36 deg with between-participant SD about 9 (Han et al. 2015,
  J Phys Ther Sci 27:1117; Kouyoumdjian et al. 2012 Orthop Traumatol Surg Res 98:17);
  trial-to-trial SD about 2 and session-to-session SD about 3 deg for goniometry
  (Prather et al. 2010 PM&R 2:888); a rater bias of 1.5 deg for the second rater;
* standing anterior pelvic tilt about 10 +/- 5 deg (Herrington 2011, Man Ther 16:646);
* ASLR angle about 80 +/- 12 deg;
* protocol gains that plateau: gain x (1 - exp(-week / 4));
* 15-25 % dropout that depends on arm; two training sessions a week.

The generative model
--------------------
For participant *i*, side *s*, visit at week *t* (tilt ``T_it``):

``IR_neutral = ir_mean + b0_i + tilt_between_ir (T_i - tilt_mean) + b1_i t + u_is
+ dominant_side_ir [s = dominant] + g_i(t) + e_its`` (session noise ``e``),

``IR_free = IR_neutral + tilt_mask_ir T_it`` (own posture: anterior tilt limits IR),

``ASLR = aslr_mean + aslr_ir_slope (b0_i + tilt_between_ir (T_i - tilt_mean) + u_is) + a_i
+ h_i(t) + aslr_tilt_effect (T_it - tilt_mean) + e'_its``,

each reading = true value + rater bias + trial noise, rounded to 0.1 deg.
``g_i(t) = arm_gain_ir[arm] x adherence_i / adherence_mean x (1 - exp(-t / tau))``.

Examples
--------
>>> import hipstats as hs
>>> cohort = hs.simulate_cohort(n_participants=60, seed=3)
>>> cohort.truth["arm_gain_ir"]["loading"]
6.0
>>> sorted(cohort.measurements["measure"].unique())[:2]
['aslr_deg', 'aslr_fms_score']
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from hipstats.cohort.cohort import Cohort
from hipstats.data import schema
from hipstats.errors import ParameterError

__all__ = ["SimulationParameters", "arm_roles", "simulate_cohort"]


@dataclass(frozen=True)
class SimulationParameters:
    """Generating parameters of :func:`simulate_cohort` (all angles in degrees)."""

    ir_mean: float = 36.0
    ir_sd_between: float = 9.0
    ir_sd_slope: float = 0.15
    ir_sd_side: float = 2.0
    ir_sd_session: float = 3.0
    ir_sd_trial: float = 2.0
    dominant_side_ir: float = -1.0
    rater_bias: dict = field(default_factory=lambda: {"R1": 0.0, "R2": 1.5})
    arm_gain_ir: dict = field(default_factory=lambda: {"control": 0.0, "stretching": 2.0, "loading": 6.0})
    arm_gain_aslr: dict = field(default_factory=lambda: {"control": 0.0, "stretching": 5.0, "loading": 8.0})
    plateau_tau_weeks: float = 4.0
    tilt_mean: float = 10.0
    tilt_sd_between: float = 5.0
    tilt_sd_within: float = 2.5
    tilt_sd_trial: float = 1.5
    tilt_mask_ir: float = -0.3
    tilt_between_ir: float = 0.25
    aslr_mean: float = 80.0
    aslr_sd_between: float = 12.0
    aslr_ir_slope: float = 0.8
    aslr_tilt_effect: float = 0.5
    aslr_sd_side: float = 2.0
    aslr_sd_session: float = 4.0
    aslr_sd_trial: float = 3.0
    ir_deficit_threshold: float = 30.0
    dropout: dict = field(default_factory=lambda: {"control": 0.25, "stretching": 0.20, "loading": 0.15})
    sessions_per_week: int = 2
    load_increment_kg: float = 2.5
    fault_logit_intercept: float = -0.5
    fault_logit_week: float = -0.15
    pain_threshold: float = 5.0
    pain_flag_prob: float = 0.03
    violation_prob: float = 0.3
    adherence_mean: float = 0.85
    adherence_concentration: float = 10.0
    retest_days: int = 3
    fms_cuts: tuple = (70.0, 80.0)
    score_sd: float = 4.0

    @property
    def aslr_sd_resid(self) -> float:
        """SD of the ASLR part not explained by IR, so total between-SD is ``aslr_sd_between``."""
        explained = self.aslr_ir_slope ** 2 * (self.ir_sd_between ** 2 + self.ir_sd_side ** 2
                                               + (self.tilt_between_ir * self.tilt_sd_between) ** 2)
        return math.sqrt(max(self.aslr_sd_between ** 2 - explained, 1.0))


_LOADED = {"loading": [("ffe_split_squat", 3, 8, 10.0), ("staggered_stance_deadlift", 3, 6, 20.0),
                       ("wall_adductor_drill", 2, 10, 0.0)],
           "stretching": [("hold_90_90", 3, 5, 0.0), ("wall_adductor_drill", 2, 10, 0.0)]}
_FAULTS_BY_EXERCISE = {
    "ffe_split_squat": ["back_knee_lean", "front_knee_drift", "pelvic_tilt_loss"],
    "staggered_stance_deadlift": ["lumbar_rounding", "poor_hip_shift", "pelvic_tilt_loss"],
    "wall_adductor_drill": ["pelvic_tilt_loss", "lumbar_rounding"],
    "hold_90_90": ["pelvic_tilt_loss", "lumbar_rounding"],
}


def arm_roles(arms) -> dict[str, str]:
    """Which of the simulator's protocols (``control``, ``stretching``, ``loading``) each arm follows.

    An arm named like a protocol follows it; the other arms take the protocols not yet taken, in that
    order (so ``usual, hiit, yoga`` follow control, stretching and loading); arms beyond the third
    follow none (``""``: no training log, no gain, dropout 0.2). The role sets an arm's training log
    and, unless ``params`` name the arm itself, its gains and dropout.

    >>> arm_roles(["usual", "hiit", "yoga"])
    {'usual': 'control', 'hiit': 'stretching', 'yoga': 'loading'}
    >>> arm_roles(["control", "loading"])
    {'control': 'control', 'loading': 'loading'}
    """
    arms = [str(a) for a in arms]
    free = [r for r in schema.DEFAULT_ARMS if r not in arms]
    return {a: a if a in schema.DEFAULT_ARMS else (free.pop(0) if free else "") for a in arms}


def _gain(gain: np.ndarray, t: np.ndarray, tau: float) -> np.ndarray:
    return gain * (1.0 - np.exp(-np.asarray(t, float) / tau))


def simulate_cohort(n_participants: int = 150, weeks=(0, 3, 6, 9, 12), arms=schema.DEFAULT_ARMS,
                    seed: int | None = 0, *, reliability_fraction: float = 0.2,
                    params: SimulationParameters | None = None, start_date: str = "2026-01-05",
                    sessions: bool = True, **overrides) -> Cohort:
    """Simulate a randomised hip-mobility cohort with known truth.

    Parameters
    ----------
    n_participants : int
        Participants, allocated to arms in equal numbers (as near as possible).
    weeks : sequence of float
        Scheduled visit weeks; the first is baseline (labelled ``baseline``), the others
        ``week_<w>``.
    arms : sequence of str
        Arm labels, reference first. An arm with another name follows one of the default
        arms' protocols (training log, gains and dropout) by :func:`arm_roles`, unless
        ``params`` name the arm itself.
    seed : int or None
        Seed of numpy's default generator; the same seed gives the same cohort bit for bit.
    reliability_fraction : float
        Share of participants with a second rater (R2) at baseline and a retest
        visit ``retest`` by R1 a few days later, before training starts.
    params : SimulationParameters, optional
        Generating parameters; ``**overrides`` replace single fields
        (``simulate_cohort(tilt_mask_ir=0.0)``).
    start_date : str
        First enrolment date; enrolment is spread over 26 weeks.
    sessions : bool
        Whether to simulate the training log.

    Returns
    -------
    Cohort
        With ``truth``: the parameters (as a dict), ``participants`` (per-participant
        latent values) and ``visits`` (true values per participant x visit x side).

    Examples
    --------
    >>> import hipstats as hs
    >>> c = hs.simulate_cohort(40, seed=0)
    >>> c.n_participants, c.arms
    (40, ['control', 'stretching', 'loading'])
    """
    if n_participants < len(arms):
        raise ParameterError(f"need at least one participant per arm ({len(arms)} arms), got {n_participants}")
    weeks = [float(w) for w in weeks]
    if len(weeks) < 2 or weeks[0] != 0 or any(b <= a for a, b in zip(weeks, weeks[1:])):
        raise ParameterError(f"weeks must start at 0 and increase, got {weeks}")
    p = params or SimulationParameters()
    if overrides:
        unknown = set(overrides) - set(SimulationParameters.__dataclass_fields__)
        if unknown:
            raise ParameterError(f"unknown simulation parameter(s): {', '.join(sorted(unknown))}")
        p = replace(p, **overrides)
    arms = [str(a) for a in arms]
    roles = arm_roles(arms)
    rng = np.random.default_rng(seed)
    n = n_participants
    ids = np.array([f"P{i + 1:04d}" for i in range(n)])

    # ---------------------------------------------------------------- participants
    arm = rng.permutation(np.resize(np.array(arms), n))
    female = rng.random(n) < 0.45
    age = np.clip(rng.normal(24, 4.5, n), 16, 45).round(0)
    height = np.where(female, rng.normal(167, 6.5, n), rng.normal(180, 7, n)).round(1)
    bmi = rng.normal(23, 2, n)
    mass = (bmi * (height / 100) ** 2).round(1)
    sport = rng.choice(["football", "rugby", "hockey", "athletics", "basketball"], n)
    site = rng.choice(["site_a", "site_b"], n, p=[0.6, 0.4])
    dominant = np.where(rng.random(n) < 0.85, "right", "left")
    participants = pd.DataFrame({"participant_id": ids, "arm": arm,
                                 "sex": np.where(female, "female", "male"), "age_years": age,
                                 "height_cm": height, "mass_kg": mass, "sport": sport, "site": site,
                                 "dominant_leg": dominant})

    # ---------------------------------------------------------------- latent values
    gain_ir = np.array([p.arm_gain_ir.get(a, p.arm_gain_ir.get(roles[a], 0.0)) for a in arm])
    gain_aslr = np.array([p.arm_gain_aslr.get(a, p.arm_gain_aslr.get(roles[a], 0.0)) for a in arm])
    conc = p.adherence_concentration
    adherence = rng.beta(p.adherence_mean * conc, (1 - p.adherence_mean) * conc, n)
    scale = adherence / p.adherence_mean
    b0 = rng.normal(0, p.ir_sd_between, n)
    b1 = rng.normal(0, p.ir_sd_slope, n)
    tilt_i = rng.normal(p.tilt_mean, p.tilt_sd_between, n)
    a_i = rng.normal(0, p.aslr_sd_resid, n)
    side_u = rng.normal(0, p.ir_sd_side, (n, 2))         # columns: left, right
    side_a = rng.normal(0, p.aslr_sd_side, (n, 2))
    dom_right = dominant == "right"
    dom = np.column_stack([~dom_right, dom_right]).astype(float)

    drop_p = np.array([p.dropout.get(a, p.dropout.get(roles[a], 0.2)) for a in arm])
    drops = rng.random(n) < drop_p
    n_vis = len(weeks)
    first_missed = np.where(drops, rng.integers(1, n_vis, n), n_vis)  # index of first missed visit
    start = pd.Timestamp(start_date) + pd.to_timedelta(rng.integers(0, 26 * 7, n), unit="D")
    rel = rng.random(n) < reliability_fraction

    # ---------------------------------------------------------------- visits (participant x visit)
    vis_rows = []
    for k, w in enumerate(weeks):
        who = np.flatnonzero(first_missed > k)
        jitter = 0 if k == 0 else rng.integers(-3, 4, len(who))
        days = np.round(w * 7).astype(int) + jitter
        vis_rows.append(pd.DataFrame({"i": who, "visit": "baseline" if k == 0 else f"week_{w:g}",
                                      "days": days, "t_eff": w, "kind": "scheduled"}))
    who = np.flatnonzero(rel)
    vis_rows.append(pd.DataFrame({"i": who, "visit": "retest", "days": p.retest_days, "t_eff": 0.0,
                                  "kind": "retest"}))
    visits = pd.concat(vis_rows, ignore_index=True)
    vi = visits["i"].to_numpy()
    nv = len(visits)
    t_eff = visits["t_eff"].to_numpy(float)
    visits["week"] = np.round(visits["days"].to_numpy() / 7.0, 3)
    visits["visit_date"] = start[vi] + pd.to_timedelta(visits["days"].to_numpy(), unit="D")
    tilt_it = tilt_i[vi] + rng.normal(0, p.tilt_sd_within, nv)
    base_ir = (b0[vi, None] + p.tilt_between_ir * (tilt_i[vi, None] - p.tilt_mean) + side_u[vi]
               + p.dominant_side_ir * dom[vi])                                   # (nv, 2)
    ir_neutral = (p.ir_mean + base_ir + b1[vi, None] * t_eff[:, None]
                  + _gain(gain_ir[vi] * scale[vi], t_eff, p.plateau_tau_weeks)[:, None]
                  + rng.normal(0, p.ir_sd_session, (nv, 2)))
    ir_free = ir_neutral + p.tilt_mask_ir * tilt_it[:, None]
    aslr = (p.aslr_mean + p.aslr_ir_slope * base_ir + a_i[vi, None] + side_a[vi]
            + _gain(gain_aslr[vi] * scale[vi], t_eff, p.plateau_tau_weeks)[:, None]
            + p.aslr_tilt_effect * (tilt_it[:, None] - p.tilt_mean)
            + rng.normal(0, p.aslr_sd_session, (nv, 2)))

    # ---------------------------------------------------------------- readings
    raters = np.array(["R1"] * nv, dtype=object)
    is_base_rel = (visits["visit"].to_numpy() == "baseline") & rel[vi]
    blocks = []

    def emit(rows_idx, measure, truth, sides, trials, sd, rater, pelvis, device, position, score=None):
        """Append readings for visits ``rows_idx`` (truth: (nv, 2) or (nv,) array)."""
        if len(rows_idx) == 0:
            return
        bias = p.rater_bias.get(rater, 0.0)
        for s_idx, side in sides:
            base_val = truth[rows_idx, s_idx] if truth.ndim == 2 else truth[rows_idx]
            for trial in range(1, trials + 1):
                if score is None:
                    vals = np.round(base_val + bias + rng.normal(0, sd, len(rows_idx)), 1)
                else:
                    vals = score(base_val + bias + rng.normal(0, sd, len(rows_idx)))
                blocks.append(pd.DataFrame({"v": rows_idx, "measure": measure, "side": side, "trial": trial,
                                            "value": vals, "rater": rater, "device": device,
                                            "position": position, "pelvis": pelvis}))

    both = [(0, "left"), (1, "right")]
    fms = lambda x: np.where(rng.random(len(x)) < 0.01, 0.0,  # noqa: E731
                             1.0 + (x >= p.fms_cuts[0]) + (x >= p.fms_cuts[1]))
    mens = lambda x: np.clip(np.round((90.0 - x) / 10.0), 0, 5)  # noqa: E731
    everyone = np.arange(nv)
    for rater, rows_idx in (("R1", everyone), ("R2", np.flatnonzero(is_base_rel))):
        emit(rows_idx, "hip_ir_deg", ir_free, both, 2, p.ir_sd_trial, rater, "free", "goniometer", "prone")
        if rater == "R1":
            emit(rows_idx, "hip_ir_deg", ir_neutral, both, 2, p.ir_sd_trial, rater, "neutral", "goniometer",
                 "prone")
        emit(rows_idx, "aslr_deg", aslr, both, 2, p.aslr_sd_trial, rater, "free", "inclinometer", None)
        emit(rows_idx, "pelvic_tilt_deg", tilt_it, [(0, None)], 2, p.tilt_sd_trial, rater, None, "inclinometer",
             None)
        emit(rows_idx, "aslr_fms_score", aslr, both, 1, p.score_sd, rater, None, None, None, score=fms)
        emit(rows_idx, "aslr_mens_score", aslr, both, 1, p.score_sd, rater, None, None, None, score=mens)
    del raters
    readings = pd.concat(blocks, ignore_index=True)
    v = readings["v"].to_numpy()
    measurements = pd.DataFrame({
        "participant_id": ids[vi[v]],
        "visit": visits["visit"].to_numpy()[v],
        "week": visits["week"].to_numpy()[v],
        "visit_date": visits["visit_date"].to_numpy()[v],
        "measure": readings["measure"].to_numpy(),
        "side": readings["side"].to_numpy(),
        "value": readings["value"].to_numpy(),
        "trial": readings["trial"].to_numpy(),
        "rater": readings["rater"].to_numpy(),
        "device": readings["device"].to_numpy(),
        "position": readings["position"].to_numpy(),
        "pelvis": readings["pelvis"].to_numpy(),
    })
    for m_name, m in schema.MEASURES.items():   # keep draws inside the plausible ranges
        sel = measurements["measure"].to_numpy() == m_name
        measurements.loc[sel, "value"] = measurements.loc[sel, "value"].clip(*m.plausible)
    order = np.lexsort((measurements["trial"], measurements["side"].fillna(""), measurements["rater"],
                        measurements["pelvis"].fillna(""), measurements["measure"], measurements["week"],
                        measurements["participant_id"]))
    measurements = measurements.iloc[order].reset_index(drop=True)

    # ---------------------------------------------------------------- training log
    session_frame = (_simulate_sessions(rng, p, ids, np.array([roles[a] for a in arm], dtype=object), adherence,
                                        start, weeks, first_missed)
                     if sessions else None)

    latent = pd.DataFrame({"participant_id": ids, "arm": arm, "ir_intercept": p.ir_mean + b0
                           + p.tilt_between_ir * (tilt_i - p.tilt_mean), "ir_slope": b1, "tilt_mean": tilt_i,
                           "aslr_resid": a_i, "adherence": adherence, "ir_gain": gain_ir * scale,
                           "aslr_gain": gain_aslr * scale, "reliability_subset": rel,
                           "dropout_week": np.where(first_missed < n_vis,
                                                    np.asarray(weeks + [np.nan])[first_missed], np.nan)})
    true_visits = pd.DataFrame({"participant_id": np.repeat(ids[vi], 2), "visit": np.repeat(visits["visit"], 2),
                                "week": np.repeat(visits["week"], 2), "side": np.tile(["left", "right"], nv),
                                "ir_neutral": ir_neutral.ravel(), "ir_free": ir_free.ravel(),
                                "aslr": aslr.ravel(), "tilt": np.repeat(tilt_it, 2)})
    truth = asdict(p)
    truth.update({"seed": seed, "weeks": weeks, "arms": arms, "n_participants": n,
                  "aslr_sd_resid": p.aslr_sd_resid, "participants": latent, "visits": true_visits})
    settings = schema.ContractSettings(arms=tuple(arms))
    return Cohort(measurements, participants, session_frame, settings, source=f"simulate_cohort(seed={seed})",
                  truth=truth)


def _simulate_sessions(rng, p: SimulationParameters, ids, arm, adherence, start, weeks, first_missed):
    """Training log: two sessions a week, progressive loads with faults, pain and rule violations."""
    last_week = weeks[-1]
    n_vis = len(weeks)
    stop_week = np.where(first_missed < n_vis, np.asarray(weeks + [np.nan])[np.minimum(first_missed, n_vis - 1)],
                         last_week)
    frames = []
    for arm_label, exercises in _LOADED.items():
        who = np.flatnonzero(arm == arm_label)
        if len(who) == 0:
            continue
        m = len(who)
        n_sessions = int(round(last_week * p.sessions_per_week))
        for ex, sets, reps, start_load in exercises:
            loaded = start_load > 0
            load = (np.round((start_load + rng.normal(0, 2.5, m)) / 2.5) * 2.5).clip(min=2.5) if loaded \
                else np.zeros(m)
            prev_flag = np.zeros(m, bool)
            prev_done = np.zeros(m, bool)
            for k in range(n_sessions):
                week_k = k / p.sessions_per_week + 0.5 / p.sessions_per_week
                active = week_k < stop_week[who]
                if not active.any():
                    continue
                if k > 0 and loaded:
                    ok = prev_done & ~prev_flag
                    violate = prev_done & prev_flag & (rng.random(m) < p.violation_prob)
                    load = load + p.load_increment_kg * (ok | violate)
                done = rng.random(m) < adherence[who]
                logit = p.fault_logit_intercept + p.fault_logit_week * week_k
                has_fault = done & (rng.random(m) < 1 / (1 + np.exp(-logit)))
                pain = np.minimum(rng.poisson(1.0, m), 4).astype(float)
                sharp = done & (rng.random(m) < p.pain_flag_prob)
                pain[sharp] = rng.integers(int(p.pain_threshold), 9, sharp.sum())
                pool = _FAULTS_BY_EXERCISE[ex]
                f1 = rng.integers(0, len(pool), m)
                f2 = (f1 + 1 + rng.integers(0, len(pool) - 1, m)) % len(pool)
                two = rng.random(m) < 0.2
                faults = np.where(has_fault, np.where(two, np.char.add(np.char.add(np.array(pool)[f1], ";"),
                                                                        np.array(pool)[f2]), np.array(pool)[f1]), "")
                day = int(round(week_k * 7))
                frames.append(pd.DataFrame({
                    "participant_id": ids[who][active], "session": k + 1,
                    "date": (start[who] + pd.Timedelta(days=day))[active],
                    "week": round(week_k, 3), "exercise": ex, "sets": sets, "reps": reps,
                    "load_kg": load[active], "rpe": np.clip(np.round(rng.normal(6, 1, m)), 0, 10)[active],
                    "pain_nrs": np.where(done, pain, np.nan)[active], "faults": faults[active],
                    "completed": done[active]}))
                prev_done = done
                prev_flag = has_fault | (pain >= p.pain_threshold)
    if not frames:
        return pd.DataFrame(columns=schema.TABLES["sessions"].column_names)
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["participant_id", "session", "exercise"], kind="stable").reset_index(drop=True)

"""Write a sensitivity grid's summary: tables (raw and for people), forest plots, Markdown
and a self-contained HTML page. Every file is written beside its final name and renamed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from jdmbayes.estimands.names import describe, is_key, null_value
from jdmbayes.inference.power_scaling import THRESHOLD
from jdmbayes.results.formatting import (
    RECONSTRUCTED_NOTE,
    diagnostic,
    estimate_with_interval,
    interval_label,
    markdown_table,
    significant,
)
from jdmbayes.results.html import data_uri, render
from jdmbayes.results.plots import forest_figure, save_png
from jdmbayes.results.runfolder import write_text_atomic


def _atomic_csv(path: Path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.17g"))


def label(outcome: str, quantity: str, group: str) -> str:
    """A key estimand in words, a parameter as ``name[outcome, element]``."""
    if is_key(outcome, quantity, group):
        return describe(outcome, quantity, group)
    inside = ", ".join(x for x in (outcome, group) if x)
    return f"{quantity}[{inside}]" if inside else quantity


def estimand_table(estimands: pd.DataFrame, prior_names: list[str], verdicts: pd.DataFrame,
                   model: str) -> pd.DataFrame:
    """Rows: key estimands of ``model``; columns: prior sets ('median (interval)'), verdict."""
    part = estimands[estimands["model"] == model]
    verdict = verdicts[verdicts["model"] == model].set_index(["outcome", "quantity", "group"])
    rows = []
    for (outcome, quantity, group), by in part.groupby(["outcome", "quantity", "group"],
                                                       sort=False):
        by = by.set_index("prior_set")
        v = verdict.loc[(outcome, quantity, group)]
        rows.append({"estimand": describe(outcome, quantity, group),
                     **{p: estimate_with_interval(by.loc[p]) if p in by.index else "NA"
                        for p in prior_names},
                     "verdict": v["verdict"] + (f" (moved by {v['moved_by']})"
                                                if v["moved_by"] else "")})
    return pd.DataFrame(rows)


def forest_frame(estimands: pd.DataFrame, model: str) -> pd.DataFrame:
    part = estimands[estimands["model"] == model]
    return pd.DataFrame({"label": [describe(o, q, g) for o, q, g in
                                   zip(part["outcome"], part["quantity"], part["group"])],
                         "quantity": part["quantity"], "set": part["prior_set"],
                         "median": part["median"], "ci_low": part["ci_low"],
                         "ci_high": part["ci_high"]})


def write_sensitivity(out: Path, tables: dict, verdicts: pd.DataFrame, prior_names: list[str],
                      speed: dict, config: dict, provenance: dict) -> None:
    estimands, diagnostics, psense = (tables["estimands"], tables["diagnostics"],
                                      tables["psense"])
    _atomic_csv(out / "sensitivity.csv", estimands)
    _atomic_csv(out / "robustness.csv", verdicts)
    _atomic_csv(out / "psense.csv", psense)
    _atomic_csv(out / "fits.csv", diagnostics)
    ci = interval_label(config["ci_prob"], config["ci_kind"])
    reference = verdicts["reference"].iloc[0] if len(verdicts) else prior_names[0]
    models = []
    for model in config["models"]:
        frame = forest_frame(estimands, model)
        quantity_of = dict(zip(frame["label"], frame["quantity"]))
        png = out / "plots" / f"forest_{model}.png"
        save_png(forest_figure(frame, f"{model}: key estimands by prior set ({ci})",
                               lambda label, q=quantity_of: null_value(q[label])), png)
        v = verdicts[verdicts["model"] == model]
        flagged = psense[(psense["model"] == model) & (psense["prior_set"] == reference)
                         & (psense["diagnosis"] != "-")]
        models.append({
            "name": model, "png": png.relative_to(out).as_posix(), "uri": data_uri(png),
            "table": estimand_table(estimands, prior_names, verdicts, model),
            "robust": v.loc[v["verdict"] == "robust", "estimand"].tolist(),
            "sensitive": [f"{r.estimand} (moved by {r.moved_by})"
                          for r in v.itertuples() if r.verdict == "prior-sensitive"],
            "undetermined": v.loc[v["verdict"] == "undetermined", "estimand"].tolist(),
            "fits": diagnostics[diagnostics["model"] == model],
            "fit_rows": [{"prior_set": f.prior_set, "verdict": f.verdict,
                          "failures": f.failures, "r_hat": diagnostic("r_hat", f.r_hat_max),
                          "ess": diagnostic("ess", f.ess_bulk_min),
                          "divergences": f.divergences,
                          "seconds": diagnostic("seconds", f.sample_s),
                          "reused": "yes" if f.reused_compiled else "no"}
                         for f in diagnostics[diagnostics["model"] == model].itertuples()],
            "psense": pd.DataFrame({
                "estimand or parameter": [label(o, q, g) for o, q, g in zip(
                    flagged["outcome"], flagged["quantity"], flagged["group"])],
                "prior": [diagnostic("sensitivity", x) for x in flagged["prior_sensitivity"]],
                "likelihood": [diagnostic("sensitivity", x)
                               for x in flagged["likelihood_sensitivity"]],
                "diagnosis": flagged["diagnosis"]}),
        })
    context = {"models": models, "prior_names": prior_names, "reference": reference,
               "ci": ci, "speed": speed, "config": config, "threshold": THRESHOLD,
               "reconstructed": provenance.get("reconstructed", False),
               "reconstructed_note": RECONSTRUCTED_NOTE, "rule": RULE,
               "speed_text": speed_sentence(speed)}
    write_text_atomic(out / "summary.md", sensitivity_markdown(context))
    write_text_atomic(out / "summary.html", render("sensitivity.html.j2", **context))
    write_text_atomic(out / "speed.json", json.dumps(speed, indent=2) + "\n")


RULE = ("A contrast's conclusion (interval above, below or including the null: 1 for time "
        "ratios, 0 for differences) holds if it is the same under every prior set; any other "
        "estimand holds if its posterior median under every other prior set lies inside the "
        "reference prior's interval. Fits that failed a diagnostic gate are shown, not used.")


def sensitivity_markdown(c: dict) -> str:
    lines = ["# Prior sensitivity", ""]
    if c["reconstructed"]:
        lines += [f"> **{c['reconstructed_note']}**", ""]
    speed = c["speed"]
    lines += [f"Prior sets: {', '.join(c['prior_names'])}; reference: {c['reference']}. "
              f"Intervals: {c['ci']}; estimates are posterior medians rounded to their Monte "
              "Carlo error (`sensitivity.csv` has them unrounded).", "",
              f"Rule: {RULE}", ""]
    for m in c["models"]:
        lines += [f"## {m['name']}", "", f"![forest plot]({m['png']})", ""]
        lines += ["**Holds under every prior set:** " + ("; ".join(m["robust"]) or "none"), "",
                  "**Depends on the prior:** " + ("; ".join(m["sensitive"]) or "none"), ""]
        if m["undetermined"]:
            lines += ["**Undetermined** (fits failed a gate): " + "; ".join(m["undetermined"]),
                      ""]
        lines += [markdown_table(m["table"]), ""]
        fits = m["fits"]
        failed = fits[fits["verdict"] != "pass"]
        for r in failed.itertuples():
            lines.append(f"- Fit under '{r.prior_set}' FAILED a diagnostic gate ({r.failures});"
                         " its numbers are shown but not used for the verdicts.")
        if len(failed):
            lines.append("")
        lines += [f"Power-scaling sensitivity under '{c['reference']}' (threshold "
                  f"{c['threshold']}):"]
        if len(m["psense"]):
            lines += ["", markdown_table(m["psense"]), ""]
        else:
            lines += [" no estimand or parameter flagged.", ""]
    lines += ["## Speed", "", speed_sentence(speed), ""]
    return "\n".join(lines)


def speed_sentence(speed: dict) -> str:
    text = (f"{speed['fits']} fits ({speed['fitted']} computed, {speed['reused_from_disk']} "
            f"reused from an earlier interrupted run) in "
            f"{diagnostic('seconds', speed['wall_seconds'])} s wall time, with "
            f"{speed['compiles']} compilation(s).")
    if "ratio_to_cold_fits" in speed:
        cold = speed["cold_fit_seconds"]
        text += (f" The computed fits took {significant(speed['ratio_to_cold_fits'], 2)} times "
                 "as long as "
                 f"the same number of cold fits (a cold fit, compile included, took "
                 f"{diagnostic('seconds', sum(cold) / len(cold))} s on average here).")
    return text

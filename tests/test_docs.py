"""Documentation stays true: README's variant table and the public API's docstrings."""
import inspect
import os
import re

import grukit
from grukit.__main__ import options_markdown, variants_markdown

from conftest import REPO


def test_readme_variant_table_is_current():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    m = re.search(r"<!-- variants-table:.*?-->\n(.*?)<!-- /variants-table -->", readme, re.S)
    assert m, "README.md lost its variants-table markers"
    assert m.group(1) == variants_markdown(), "regenerate with `grukit variants --markdown`"


def test_readme_options_table_is_current():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    m = re.search(r"<!-- options-table:.*?-->\n(.*?)<!-- /options-table -->", readme, re.S)
    assert m, "README.md lost its options-table markers"
    assert m.group(1) == options_markdown(), "regenerate with `grukit variants --options --markdown`"
    # every cell argument of an option is in the table, and every row's paper has an arXiv id
    for argument in ("norm=", "zoneout=", "recurrent_weight_dropout="):
        assert f"`{argument}" in m.group(1)
    assert all("arXiv" in o.paper for o in grukit.cell_options())


def test_readme_opens_with_two_setup_commands():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [l.split("#")[0].strip() for l in block.splitlines() if l.split("#")[0].strip()]
    assert commands == ['pip install -e ".[zoo]" && grukit demo', "bash tests/run.sh"]
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    assert "bash tests/run.sh" in ci


def test_public_api_has_docstrings():
    missing = []
    for name in grukit.__all__:
        obj = getattr(grukit, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip():
            missing.append(name)
    for name in grukit.layers.__all__:
        if not (getattr(grukit.layers, name).__doc__ or "").strip():
            missing.append("layers." + name)
    assert not missing


def test_every_variant_cell_docstring_states_its_equations():
    for v in grukit.variants():
        doc = grukit.CELLS[v.name].__doc__
        assert "arXiv" in doc and "h' =" in doc, v.name


def test_param_formula_matches_param_count():
    # The text formula and the numeric count agree (m=3, n=5 chosen to make coefficients distinct).
    m, n = 3, 5
    for v in grukit.variants():
        text = v.param_formula.split(" (")[0].replace("²", "^2")
        total = 0
        for term in text.split(" + "):
            term = term.split(" BN")[0]
            coef = re.match(r"(\d*)", term).group(1)
            coef = int(coef) if coef else 1
            body = term[len(str(coef)) if term[0].isdigit() else 0:]
            total += coef * {"mn": m * n, "n^2": n * n, "n": n}[body]
        expected = v.param_count(m, n, reset_after=False)["trainable"]
        assert total == expected, (v.name, text, total, expected)


def test_no_machine_paths_or_kernel_builds_in_committed_files():
    """Docs, code, notebooks and recorded metadata name no path of a particular machine
    (temporary folders, home or work directories) and no kernel build strings."""
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if files.returncode != 0:
        import pytest
        pytest.skip("not a git checkout")
    pattern = re.compile(r"(?<![\w.])/(tmp|work|home|root|Users)/|Linux-\d+\.\d+\.\d+")
    found = []
    for name in files.stdout.split():
        if name.startswith("tests/") or not name.endswith((".py", ".md", ".json", ".ipynb",
                                                           ".toml", ".sh", ".csv")):
            continue
        with open(os.path.join(REPO, name), encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if pattern.search(line):
                    found.append(f"{name}:{number}: {line.strip()[:120]}")
    assert found == [], "\n".join(found)


def _performance_section():
    """README's Performance section."""
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    return readme[readme.index("## Performance"):readme.index("## Known limitations")]


def _interleaved_runs(which):
    """``{backend: report}`` of ``benchmarks/cpu/<which>/<backend>.json`` (written by
    ``experiments/cell_options/speed.py --set <which>``)."""
    import json

    runs = {}
    for backend in ("tensorflow", "jax", "torch"):
        with open(os.path.join(REPO, "benchmarks", "cpu", which, f"{backend}.json"),
                  encoding="utf-8") as f:
            runs[backend] = json.load(f)
    return runs


def test_readme_mgu_forms_table_is_the_committed_interleaved_run():
    """README's table of the MGU's training speed relative to the GRU, in its paper's form
    and with ``reset_after=True``, is the medians of `benchmarks/cpu/forms/<backend>.json`
    (``experiments/cell_options/speed.py --set forms``, one file per backend)."""
    section = _performance_section()
    rows = {"`mgu`, its paper's form (default)": "mgu",
            "`mgu`, `reset_after=True`": "mgu reset_after=True"}
    columns = ("tensorflow", "jax", "torch")
    runs = _interleaved_runs("forms")
    for backend, run in runs.items():
        assert (run["backend"], run["set"], run["baseline"]) == (backend, "forms", "gru"), run
        assert f"--rounds {run['rounds']} --steps {run['steps']}" in run["command"]
        assert f"--rounds {run['rounds']} --steps {run['steps']}" in section
    seen = 0
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in rows:
            for backend, text in zip(columns, cells[1:]):
                median = runs[backend]["ratios"][rows[cells[0]]]["median"]
                assert text == f"{median:.2f}x", (cells[0], backend, text, median)
                seen += 1
    assert seen == 6, f"{seen} figures of README's MGU table were checked"
    # and the sentence that reads the table
    paper = {b: runs[b]["ratios"]["mgu"]["median"] for b in columns}
    fused = {b: runs[b]["ratios"]["mgu reset_after=True"]["median"] for b in columns}
    assert min(paper["jax"], paper["torch"], fused["tensorflow"]) >= 1.3, (paper, fused)
    text = " ".join(section.split())
    assert ("In this run the MGU trained at least 1.3x as fast as the GRU on every backend: in "
            "its paper's form on JAX and PyTorch, with `reset_after=True` on TensorFlow" in text)


def test_readme_baselines_table_is_the_committed_interleaved_run():
    """README's table of grukit's training speed over keras.layers.GRU, torch.nn.GRU and
    keras.layers.RNN(cell) is `benchmarks/cpu/baselines/<backend>.json`'s medians
    (``experiments/cell_options/speed.py --set baselines``, one file per backend)."""
    section = " ".join(_performance_section().split())
    expected = {"over `keras.layers.GRU`": [],
                "over `torch.nn.GRU` (plain PyTorch, same process)": [],
                "over `keras.layers.RNN(cell)`, lowest-highest of the variants but Li-GRU": []}
    for backend, run in _interleaved_runs("baselines").items():
        assert (run["backend"], run["set"], run["baseline"]) == (backend, "baselines",
                                                                 "grukit gru"), run
        assert f"--rounds {run['rounds']} --steps {run['steps']}" in run["command"]
        assert (f"speed.py --set baselines \\ --rounds {run['rounds']} --steps {run['steps']} "
                "--out benchmarks/cpu/baselines/$b.json") in section
        pairs = {name: r["median"] for name, r in run["pairs"].items()}
        expected["over `keras.layers.GRU`"].append(f"{pairs['grukit gru / keras.layers.GRU']:.2f}x")
        expected["over `torch.nn.GRU` (plain PyTorch, same process)"].append(
            f"{pairs['grukit gru / torch.nn.GRU']:.2f}x")
        cells = [m for name, m in pairs.items()
                 if "/ keras.layers.RNN(" in name and "ligru" not in name]
        assert len(cells) == len(grukit.variants()) - 1 == 9
        expected["over `keras.layers.RNN(cell)`, lowest-highest of the variants but Li-GRU"].append(
            f"{min(cells):.2f}-{max(cells):.2f}x")
    for row, figures in expected.items():
        line = "| " + row + " | " + " | ".join(figures) + " |"
        assert line in section, f"README should read: {line}"


def test_readme_performance_table_is_the_committed_benchmark():
    """README's training table is `benchmarks/cpu/results.json`'s T=100 train medians, its
    minGRU sentence gives that run's range of sequential / parallel-scan speed ratios, and
    its fractions of the machine's limit are that run's."""
    import json

    with open(os.path.join(REPO, "benchmarks", "cpu", "results.json"), encoding="utf-8") as f:
        report = json.load(f)
    medians = {(r["impl"], r["variant"], r["backend"], r["T"], mode): r["result"][mode]["median"]
               for r in report["results"] for mode in ("train", "infer") if mode in r["result"]}
    section = _performance_section()
    rows = {"`keras.layers.GRU`": ("keras_gru", "gru"),
            "`keras.layers.RNN(grukit.GRUCell)`": ("keras_rnn", "gru"),
            "`grukit.layers.GRU` (gru)": ("grukit", "gru"),
            "`grukit.layers.GRU` (mgu)": ("grukit", "mgu"),
            "`grukit.layers.GRU` (mingru)": ("grukit", "mingru"),
            "`torch.nn.GRU` (plain PyTorch)": ("torch_gru", "gru")}
    columns = ("tensorflow", "jax", "torch")
    seen = 0
    for line in section.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if cells[0] not in rows:
            continue
        impl, variant = rows[cells[0]]
        for backend, text in zip(columns, cells[1:]):
            key = (impl, variant, "torch-native" if impl == "torch_gru" else backend, 100, "train")
            if text:
                assert key in medians, f"README gives {cells[0]} on {backend}: not in the run"
                assert text == f"{medians[key]:.2f}", (cells[0], backend, text, medians[key])
                seen += 1
    assert seen == 16, f"{seen} figures of README's performance table were checked"
    ratios = [medians["grukit", "mingru", b, t, mode]
              / medians["grukit_par", "mingru", b, t, mode]
              for (impl, variant, b, t, mode) in medians
              if impl == "grukit_par" and ("grukit", "mingru", b, t, mode) in medians]
    assert ratios
    low, high = min(ratios), max(ratios)
    text = " ".join(section.split())
    assert (f"minGRU's sequential loop is {low:.1f}-{high:.0f}x faster than its parallel scan"
            in text), (low, high)
    fraction = {f["backend"]: f["of_recurrent"] for f in report["fractions"]
                if (f["variant"], f["impl"], f["T"]) == ("gru", "grukit", 100)}
    assert (f"({report['limit']['recurrent']['3']:.1f} GFLOP/s for the GRU's)" in text
            and f"trains at {fraction['jax']:.2f} of it on JAX, {fraction['tensorflow']:.2f} on "
                f"TensorFlow and {fraction['torch']:.2f} on PyTorch" in text), fraction

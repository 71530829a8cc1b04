"""Where the test suite's CPU time goes: every Python process of a ``tests/run.sh`` run.

``tests/run.sh`` runs three pytest passes side by side on a 2-core machine, and the tests
start more Python processes (notebook kernels, the zoo's commands, tuner workers, the
benchmark's workers, other-backend checks). On such a machine the run's wall time is about
the CPU time of all of them over the two cores, so that is what to cut. This runs
``bash tests/run.sh [PYTEST ARGS]`` with a ``sitecustomize`` on ``PYTHONPATH`` that, when
each Python process exits normally, records its CPU time (user + system), wall time,
``argv``, ``KERAS_BACKEND``, the test running when it started (``PYTEST_CURRENT_TEST``)
and which of TensorFlow, JAX, PyTorch and keras-tuner it had imported; then prints them,
largest first, and the total. Processes killed by a signal (the tests' SIGKILLed workers)
record nothing. From the repository root::

    python experiments/test_suite_cpu.py            # the whole suite
    python experiments/test_suite_cpu.py -k mgu     # arguments go to tests/run.sh
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
import textwrap

HOOK = textwrap.dedent('''
    import atexit, json, os, resource, sys, time

    _start = time.time()

    def _record():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        heavy = [m for m in ("tensorflow", "jax", "torch", "keras_tuner") if m in sys.modules]
        record = {"cpu": usage.ru_utime + usage.ru_stime, "wall": time.time() - _start,
                  "argv": sys.argv[:4], "backend": os.environ.get("KERAS_BACKEND"),
                  "test": os.environ.get("PYTEST_CURRENT_TEST"), "imported": heavy}
        with open(os.path.join(os.environ["GRUKIT_CPU_LOG"], f"{os.getpid()}.json"), "w") as f:
            json.dump(record, f)

    atexit.register(_record)
''')


def main(argv):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as hook_dir, tempfile.TemporaryDirectory() as log:
        with open(os.path.join(hook_dir, "sitecustomize.py"), "w") as f:
            f.write(HOOK)
        path = os.pathsep.join(p for p in (hook_dir, os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONPATH=path, GRUKIT_CPU_LOG=log)
        status = subprocess.call(["bash", "tests/run.sh", *argv], cwd=repo, env=env)
        records = []
        for name in glob.glob(os.path.join(log, "*.json")):
            with open(name) as f:
                records.append(json.load(f))
    records.sort(key=lambda r: -r["cpu"])
    print(f"\n{len(records)} Python processes recorded, {sum(r['cpu'] for r in records):.0f} "
          f"CPU seconds in all (tests/run.sh exited with {status})")
    print(f"{'cpu s':>7s} {'wall s':>7s}  {'backend':10s} {'imported':28s} command / started by")
    for r in records:
        command = " ".join(os.path.basename(a) if i == 0 else a
                           for i, a in enumerate(r["argv"]))[:60]
        test = (r["test"] or "").split(" ")[0]
        print(f"{r['cpu']:7.1f} {r['wall']:7.1f}  {str(r['backend']):10s} "
              f"{','.join(r['imported']):28s} {command}" + (f"  [{test}]" if test else ""))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

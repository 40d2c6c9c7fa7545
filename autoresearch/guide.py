"""``program.md``, the guide an LLM agent follows to drive the loop, as ``autoresearch init``
writes it: the project's own editable file, metric, direction and run time filled in.

Every command in it is in a fenced ``bash`` block whose first line is a comment naming it
(``# start``, ``# alive``, ...): tests/test_guide.py drives a scripted agent from those blocks
alone, so what the guide says to run is what works.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: metric names that are better when higher; any other is taken as one to minimize
HIGHER = re.compile(r"(?i)acc|score|f1|auc|reward|mfu|throughput|per_?sec|tokens_per")
METRICISH = re.compile(r"(?i)loss|bpb|bpc|acc|ppl|perplex|score|f1|auc|error|reward|nll")


def detect_metric(root: Path, script: str) -> tuple[str, str] | None:
    """(metric, direction) from what the training script prints as ``name: value`` (the
    summary's format), a validation metric first; None when nothing looks like one."""
    try:
        text = (root / script).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    names = re.findall(r"""print\(\s*f?["']\s*([A-Za-z_][\w.-]*)\s*[:=]""", text)
    found = [n for n in dict.fromkeys(names) if METRICISH.search(n) and not re.search(r"[A-Z]\w*(Error|Exception)$", n)]
    if not found:
        return None
    name = sorted(found, key=lambda n: not n.lower().startswith(("val", "eval", "test")))[0]
    return name, "maximize" if HIGHER.search(name) else "minimize"


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


def program(editable: str, metric: str | None, direction: str, settings: dict[str, Any], source: str) -> str:
    """The guide's text. `metric` None: not known yet (a TODO in pyproject.toml); `source` says
    where the metric came from ("pyproject.toml", "detected in train.py's output")."""
    budget = settings.get("budget")
    repeats = int(settings.get("repeats") or 5)
    max_repeats = int(settings.get("max_repeats") or 5)
    run_time = f"about {fmt_seconds(float(budget))} (the `budget` setting) plus start-up" if budget else \
        "the workload's own budget plus start-up (`budget` in pyproject.toml sets it)"
    from autoresearch.reports import MINIMIZE

    better = "lower" if direction == MINIMIZE else "higher"
    cmp = "<" if direction == MINIMIZE else ">"
    if metric:
        goal = f"the metric **`{metric}`** gets better: **{better} is better** ({direction}; from {source})"
        name = metric
    else:
        goal = ("the metric named by `metric` in `pyproject.toml` gets better (init could not tell which: set "
                "`metric` and `direction` there; `autoresearch status --json` prints them as `metric`, `direction`)")
        name = "METRIC"
    text = GUIDE
    for key, value in (("@EDITABLE@", editable), ("@GOAL@", goal), ("@METRIC@", name), ("@CMP@", cmp),
                       ("@BETTER@", better), ("@REPEATS@", str(repeats)), ("@MAX_REPEATS@", str(max_repeats)),
                       ("@RUN_TIME@", run_time)):
        text = text.replace(key, value)
    return text


GUIDE = """\
# program.md: how you, an LLM agent, run experiments in this repository

You improve `@EDITABLE@` so that @GOAL@. autoresearch runs every experiment for you the same
way: the unmodified code first (the baseline, @REPEATS@ times, to measure the noise), then one git
commit per hypothesis, a fixed budget per run, the metric read from the log, and keep (the
branch advances) or discard (it resets). You write hypotheses; you never edit the code by hand
and you never run the training yourself.

**Never stop, never ask.** Once the loop runs, keep it going until a person stops you. Do not
pause to ask whether to continue, do not wait for approval, do not end your turn with a question
or a summary. When unsure, write the most promising idea as a hypothesis: a wrong guess costs
one run, waiting costs the whole night.

## Setup (once, and again after a reboot)

1. The run's tag names its branch, `autoresearch/TAG`: the default is today's date (`nov22`);
   `--tag NAME` chooses another. A new tag starts a new run; `--resume` continues one.
2. The data: the workload's data must be prepared before the first run (folders git ignores
   are linked into every run by the `link` setting). If the baseline crashes, the runner stops
   and says why.
3. Check every hypothesis file (an error is one line, `path:line: what is wrong (what is allowed)`):

```bash
# check
autoresearch run --collect-only
```

4. Start the runner **in the background**, its output going to `run.log`. In the foreground it
   never returns (it watches `experiments/` for new files until it is stopped), and you would
   block forever:

```bash
# start
nohup autoresearch run --watch > run.log 2>&1 &
```

   After a reboot, or when the runner has stopped, continue the same run (starting the same
   tag again is refused: it exists):

```bash
# resume
nohup autoresearch run --watch --resume > run.log 2>&1 &
```

5. Check that it is alive: `"alive": true` under `"runner"` (with its pid), and the end of its log
   (`watching 1 path ...` once it waits for your hypotheses):

```bash
# alive
autoresearch status --json
tail -n 5 run.log
```

   Never start a second runner (it is refused), never edit `@EDITABLE@` or the protected files,
   never touch `.autoresearch/`.

## The loop

1. Read `autoresearch status --json`, not the journal. It holds, as data: `best` and `baseline`
   (value, commit), `running` (each experiment in flight: `step`, `share` of the budget done,
   `loss`, `eta_s`), `experiments` (every result: `status`, `value`, `expectation`, `reason`,
   `root_cause`, `duration_s`), `queued`, `noise` (`sigma`) and `lessons` (the rules the results
   support: ALWAYS / NEVER). Do not repeat what the lessons rule out.
2. Write one to three hypothesis files in `experiments/`, TOML only (Python hypothesis files are
   turned off: `python_hypotheses = false`):

   ```toml
   description = "lower learning rate"            # one line: the commit subject
   hypothesis = "Why you expect it to help, and by how much."
   [set]
   NAME = 0.03                                    # a module-level constant of @EDITABLE@
   [expect]
   @METRIC@ = "@CMP@ baseline"
   ```

   `autoresearch new "lower learning rate" --set NAME=0.03 --hypothesis "..."` writes one for
   you. Use `[[replace]]` tables (`old` / `new`, exact text that occurs once) for changes that
   are not constants. The runner picks a new file up within seconds.
3. Wait, then read again (below). Each verdict says how sure it is: *beyond the noise* means
   the change is real; *not beyond the noise* means the runs could not tell it from chance, so do
   not build on it.

## How long to wait

One run takes @RUN_TIME@. The first verdict comes only after the baseline's @REPEATS@ runs and
the first hypothesis' own (1 to @MAX_REPEATS@ runs each: the more, the closer its result is to the
noise). So measure, then pace yourself: the baseline's `duration_s` in `experiments` (all its runs)
divided by @REPEATS@ is one run's time. Poll `autoresearch status --json` about once per run time:
`running[].eta_s` says when the experiment in flight should end; sleep that long (`sleep 300`),
never in a tight loop. Keep two or three hypotheses queued so the runner never idles
(`run.log` says `idle: ... last result ... ago` when it does).

## After a crash

- An experiment crashed (`"status": "crash"`, its `root_cause`): that is a result, the loop goes
  on. Fix a trivial mistake once (a typo in a `replace`), otherwise drop the idea.
- The runner stopped (`"alive": false`; the end of `run.log` says why, after `stopped:`): if the
  baseline crashed for a cause outside `@EDITABLE@` (data, environment), fix that; then start it
  again with the `resume` command above, and check that it is alive.

## What to aim for, and ideas when stuck

- **The simplicity criterion.** A small gain that adds much code is not worth it; equal results
  with simpler code are a win. Removing something that does not help is a fine experiment.
- One idea per hypothesis, so that the verdict says which idea worked.
- Gains smaller than the noise cannot be seen (`autoresearch status` prints the smallest it can
  detect): make changes big enough to matter.
- When stuck: read the lessons (`lessons` in `status --json`, `experiments/lessons.md`) and
  follow the rules' directions further; combine near-misses (two changes that each helped a
  little, or fell just within the noise); try the opposite of a change that hurt; change a
  parameter no experiment has touched yet (`autoresearch show` lists what each one changed);
  revisit a discard that was not beyond the noise with a bolder step.
"""

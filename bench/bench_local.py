"""The embedded local model's first minute, measured in one run (prints, never asserts).

    python bench/bench_local.py [--model PATH.gguf] [--question TEXT] [--no-anchor]

Run it with an interpreter that has llama-cpp-python and watt installed. It works under a
temporary WATT_HOME whose ``models/`` links the GGUF (default: the 1.5B model ``watt model
pull`` installs) with its sha256 marker, so every ``watt ask`` below uses the default local
model exactly as the README's main job does, each in a session of its own (no history).
It prints, one line each:

1. the backend check (``agent.models.probe.run_check``: a 1,200-token prompt in a child);
2. loading the model in this process;
3. evaluating the system prompt and the question from scratch (tokens, seconds, tokens/s);
4. generation tokens/s (the first reply, grammar-constrained, its prompt already evaluated),
   then the same reply with llama-cpp-python's own grammar sampling (masking every token);
5. a new process's ask (the library path ``watt ask`` takes, through ``agent.app.ask``):
   time to first token and to the answer: the first ask on a machine (no check recorded, no
   saved state: the check's child evaluates the system prompt and the ask restores it), then
   with the check recorded and no saved state, then with the saved state;
6. ``watt ask`` itself, with the saved state (wall time of the command);
7. the anchor: the same new-process ask against llama-cpp-python's own server
   (``python -m llama_cpp.server``, n_ctx 8192, threads as here), its prefix cache warmed by
   one ask before the one measured.

Target: a new process's ask with the saved state in <= 35% of step 3's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUESTION = "How many words are in 'the quick brown fox'?"


def default_model() -> Path:
    """The 1.5B model `watt model pull` installed under WATT_HOME (or ~/.watt)."""
    from agent.models.weights import MODELS, models_dir

    home = os.environ.get("WATT_HOME")
    return (
        models_dir(Path(home).expanduser() if home else Path.home() / ".watt") / MODELS["1.5b"].file
    )


def child(session: str, question: str) -> int:
    """One ask in this (new) process, as ``watt ask`` runs it: prints FIRST at the first token,
    then one JSON line (answer, steps, how each call's prompt was prepared)."""
    from agent.app import ask, open_parts
    from agent.config import load_settings
    from agent.outcome import task_outcome

    settings = load_settings({"session": session})
    first: list[bool] = []

    def on_text(text: str) -> None:
        if not first:
            first.append(True)
            print("FIRST", flush=True)

    with open_parts(settings) as parts:
        model, prefills = parts.model, []
        complete = model.complete

        def timed(*args: Any, **kwargs: Any) -> Any:
            out = complete(*args, **kwargs)
            if hasattr(model, "last_prefill"):
                prefills.append(asdict(model.last_prefill))
            return out

        model.complete = timed  # type: ignore[method-assign]
        events = list(ask(parts, question, on_text=on_text))
    outcome = task_outcome(events)
    steps = max((e.step for e in events), default=0)
    print(json.dumps({"answer": outcome.answer, "steps": steps, "prefills": prefills}), flush=True)
    return 0


def new_process_ask(home: Path, session: str, question: str, env: dict[str, str]) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", session, "--question", question],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "WATT_HOME": str(home)},
    )
    assert proc.stdout is not None
    first, result = None, {}
    for line in proc.stdout:
        if line.strip() == "FIRST" and first is None:
            first = time.perf_counter() - start
        elif line.startswith("{"):
            result = json.loads(line)
    proc.wait()
    total = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.read() if proc.stderr else ""
        raise SystemExit(f"child ask failed ({proc.returncode}): {err[-800:]}")
    return {"first": first, "total": total, **result}


def setup_home(model: Path) -> Path:
    from agent.models.weights import MODELS, marker_path, sha256_file

    home = Path(tempfile.mkdtemp(prefix="watt-bench-local-"))
    (home / "models").mkdir()
    link = home / "models" / model.name
    link.symlink_to(model.resolve())
    pins = {spec.file: spec.sha256 for spec in MODELS.values()}
    digest = pins.get(model.name) or sha256_file(model)
    marker_path(link).write_text(f"{digest}  {model.name}\n")
    return home


def in_process(home: Path, model_path: Path, question: str) -> dict[str, float]:
    """Load, evaluate system prompt + question from scratch, then generation speed."""
    from agent.app import open_parts
    from agent.config import load_settings
    from agent.models.local import LocalModel
    from agent.models.messages import Message

    settings = load_settings({"session": "bench-inprocess"})
    with open_parts(settings, use_session=False) as parts:
        system, grammar = parts.system_prompt(), parts.reply_grammar()
    model = LocalModel(model_path)  # no home: nothing read or saved
    start = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - start
    messages = [Message.system(system), Message.user(question)]
    model.complete(messages, max_tokens=1)
    prefill = model.last_prefill
    stamps: list[float] = []
    model.use_grammar(grammar)
    reply = model.complete(messages, on_text=lambda text: stamps.append(time.perf_counter()))
    masked: list[float] = []  # the same reply with llama-cpp-python's own grammar sampling
    vars(model._llama).pop("_init_sampler", None)  # what agent.models.sampling installed
    again = model.complete(messages, on_text=lambda text: masked.append(time.perf_counter()))
    model.close()
    n = reply.usage.completion
    gen_rate = (n - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    m = again.usage.completion
    masked_rate = (m - 1) / (masked[-1] - masked[0]) if len(masked) > 1 else 0.0
    return {
        "masked_rate": masked_rate,
        "masked_tokens": m,
        "load_s": load_s,
        "prompt_tokens": prefill.evaluated,
        "system_tokens": prefill.system,
        "prompt_s": prefill.seconds,
        "gen_tokens": n,
        "gen_rate": gen_rate,
    }


def watt_ask(home: Path, session: str, question: str, env: dict[str, str]) -> tuple[float, int]:
    """The command's wall time and exit code (1: the agent did not answer)."""
    watt = shutil.which("watt", path=str(Path(sys.executable).parent)) or "watt"
    start = time.perf_counter()
    proc = subprocess.run(
        [watt, "ask", "--session", session, "--quiet", question],
        env={**env, "WATT_HOME": str(home)},
        check=False,
        capture_output=True,
    )
    return time.perf_counter() - start, proc.returncode


def anchor(model: Path, home: Path, question: str, env: dict[str, str]) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias",
         "bench", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192",
         "--n_threads", str(os.cpu_count() or 1)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("llama_cpp.server did not start") from None
                time.sleep(0.5)
        endpoint = {**env, "WATT_BASE_URL": base, "WATT_API_KEY": "local", "WATT_MODEL": "bench"}
        warm = new_process_ask(home, "bench-anchor-warm", question, endpoint)
        measured = new_process_ask(home, "bench-anchor", question, endpoint)
        return {"warm": warm, "measured": measured}
    finally:
        server.terminate()
        server.wait(timeout=30)


def report(label: str, value: str) -> None:
    print(f"{label:<58} {value}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--child", metavar="SESSION")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.question)
    return run(args.model or default_model(), args.question, anchor_too=not args.no_anchor)


def run(model: Path, question: str, *, anchor_too: bool) -> int:
    from agent.models import probe, prompt_state

    home = setup_home(model)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATT_", "OPENAI_"))}
    os.environ.update({"WATT_HOME": str(home)})
    try:
        print(f"model {model.name}, {os.cpu_count()} CPUs, question {question!r}", flush=True)
        check = probe.run_check(home / "models" / model.name)
        report("backend check (child, once per install)", f"{check.seconds:.1f} s: {check.line()}")
        fingerprint = probe.backend_fingerprint()
        if check.ok and fingerprint is not None:
            probe.record_pass(home, fingerprint, check)
        figures = in_process(home, home / "models" / model.name, question)
        scratch = figures["prompt_s"]
        report("load the model (in process)", f"{figures['load_s']:.2f} s")
        report(
            "system prompt + question from scratch",
            f"{scratch:.1f} s for {figures['prompt_tokens']:.0f} tokens "
            f"({figures['prompt_tokens'] / scratch:.0f} tokens/s; system prompt "
            f"{figures['system_tokens']:.0f})",
        )
        report(
            "generation (first reply, grammar on)",
            f"{figures['gen_rate']:.1f} tokens/s over {figures['gen_tokens']:.0f} tokens",
        )
        report(
            "generation, grammar masking the vocabulary first",
            f"{figures['masked_rate']:.1f} tokens/s over {figures['masked_tokens']:.0f} tokens "
            f"(llama-cpp-python's own; {figures['gen_rate'] / figures['masked_rate']:.2f}x)"
            if figures["masked_rate"]
            else "not measured",
        )
        directory = prompt_state.state_dir(home)
        prompt_state.clear(directory)
        probe.forget(home)
        first = new_process_ask(home, "bench-first", question, env)
        _ask_line("first ask on a machine (check evaluates the prompt)", first, scratch)
        prompt_state.clear(directory)
        cold = new_process_ask(home, "bench-cold", question, env)
        _ask_line("new-process ask, no saved state", cold, scratch)
        count, size = prompt_state.size(directory)
        report("saved prompt state", f"{count} file(s), {size / 2**20:.1f} MiB")
        warm = new_process_ask(home, "bench-warm", question, env)
        _ask_line("new-process ask, saved state", warm, scratch)
        total, code = watt_ask(home, "bench-cli", question, env)
        report(
            "`watt ask` (the command), saved state",
            f"exit {code} after {total:.1f} s ({total / scratch:.0%} of scratch)",
        )
        if anchor_too:
            figures_anchor = anchor(model, home, question, env)
            _ask_line(
                "anchor: llama_cpp.server, prefix cache warm", figures_anchor["measured"], scratch
            )
        ratio = warm["total"] / scratch
        verdict = "met" if ratio <= 0.35 else "NOT met"
        report("target: new-process ask <= 35% of scratch", f"{ratio:.0%} ({verdict})")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _ask_line(label: str, figures: dict[str, Any], scratch: float) -> None:
    first = figures["first"]
    prefills = figures.get("prefills") or [{}]
    restored = prefills[0].get("restored", 0)
    evaluated = prefills[0].get("evaluated", 0)
    detail = f"; 1st call restored {restored}, evaluated {evaluated} tokens" if prefills[0] else ""
    report(
        label,
        f"first token {first:.1f} s, answer {figures['total']:.1f} s "
        f"({figures['total'] / scratch:.0%} of scratch), {figures.get('steps')} step(s), "
        f"answer {str(figures.get('answer'))[:40]!r}{detail}",
    )


if __name__ == "__main__":
    raise SystemExit(main())

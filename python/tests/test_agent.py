"""`sfess.Agent` with Python rewards, its run folder as the CLI reads it, and `sfess.train`."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

import sfess

N, K = 20, 4
VALUES = torch.linspace(-1.0, 1.0, N)[torch.randperm(N, generator=torch.Generator().manual_seed(1))]


def hidden_values(actions: torch.Tensor) -> torch.Tensor:
    """The sum of the chosen items' hidden values, with noise."""
    return actions @ VALUES + 0.1 * torch.randn(actions.shape[0])


def test_an_agent_finds_the_best_subset_of_a_hidden_value_problem():
    agent = sfess.Agent(hidden_values, N, K, samples=8, learning_rate=0.1, seed=3)
    rewards = agent.train(300)
    assert len(rewards) == 300 and agent.steps == 300
    assert agent.best_subset() == sorted(VALUES.topk(K).indices.tolist())
    assert sum(rewards[-20:]) / 20 > sum(rewards[:20]) / 20
    assert agent.evaluate()["reward"] > agent.baselines()["random"] + 2.0


def test_a_reward_may_return_a_list_and_options_are_checked():
    agent = sfess.Agent(lambda actions: actions.sum(-1).tolist(), 6, 2, samples=2)
    assert len(agent.train(3)) == 3
    with pytest.raises(ValueError, match="samples"):
        sfess.Agent(hidden_values, N, K, samples="many")
    with pytest.raises(ValueError, match="no_such_option|no-such-option"):
        sfess.Agent(hidden_values, N, K, no_such_option=1)
    with pytest.raises(ValueError, match="k"):
        sfess.Agent(hidden_values, 3, 5)
    # Negative numbers are values (and refused by the option's own check).
    with pytest.raises(ValueError, match="learning rate must be positive"):
        sfess.Agent(hidden_values, N, K, learning_rate=-1)
    with pytest.raises(ValueError, match="invalid value '-3' for '--seed"):
        sfess.Agent(hidden_values, N, K, seed=-3)
    # Hostile values: a name that is not one (a path, a newline), more items than memory.
    with pytest.raises(ValueError, match="environment name"):
        sfess.Agent(hidden_values, N, K, name="../../evil\nname")
    with pytest.raises(ValueError, match="allocating the policy's 1000000000000 logits"):
        sfess.Agent(hidden_values, 10**12, 2)
    with pytest.raises(ValueError, match="one reward per subset"):
        sfess.Agent(lambda actions: [1.0], 6, 2).train(1)


def test_an_exception_in_the_reward_reaches_the_caller_as_itself_with_the_step():
    calls, raised = [], []

    def broken(actions):
        calls.append(actions)
        if len(calls) == 3:
            raised.append(KeyError("sensor 7 is offline"))
            raise raised[-1]
        return actions.sum(-1)

    agent = sfess.Agent(broken, 6, 2, samples=2)
    with pytest.raises(KeyError) as caught:
        agent.train(10)
    assert caught.value is raised[0]
    assert any("training step 2" in note for note in caught.value.__notes__)
    # The agent stays usable: the failed step did not count.
    assert agent.steps == 2
    assert len(agent.train(2)) == 2


def test_a_run_folder_written_from_python_is_drawn_by_sfess_agent_show(sfess_agent_binary, tmp_path):
    out = tmp_path / "python-run"
    agent = sfess.Agent(hidden_values, N, K, samples=4, seed=1, eval_every=10, out=out)
    agent.train(30)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["env"] == "python-reward"
    figures = out / "figures"
    assert (figures / "subset.json").exists()
    drawn = ["curve.svg", "curve.png", "marginals.svg", "marginals.png"]
    for name in drawn:
        (figures / name).unlink()
    # The records' figures: the environment is this program's, which the command line
    # cannot rebuild.
    shown = subprocess.run([sfess_agent_binary, "show", str(out)], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert sorted(shown.stdout.split()) == sorted(str(figures / name) for name in drawn)
    for name in drawn:
        assert (figures / name).stat().st_size > 0, name


def test_train_runs_a_registered_environment_as_the_command_does(tmp_path):
    names = [env["name"] for env in sfess.envs()]
    assert "knn-mnist" in names and "max-coverage" in names
    summary = sfess.train("max-coverage", steps=40, eval_every=20, out=tmp_path / "run", quiet=True, no_figures=True)
    assert summary["env"] == "max-coverage" and summary["steps"] == 40
    assert summary["run_folder"] == str(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test"] == summary["test"]
    with pytest.raises(RuntimeError, match="already holds a run"):
        sfess.train("max-coverage", steps=40, out=tmp_path / "run", quiet=True)
    with pytest.raises(ValueError, match="no-such-flag"):
        sfess.train("max-coverage", no_such_flag=3)


def test_ctrl_c_stops_train_at_a_step_with_its_checkpoint_and_raises_keyboard_interrupt(tmp_path):
    out = tmp_path / "stopped"
    script = f"import sfess; sfess.train('max-coverage', steps=1_000_000, eval_every=100, out={str(out)!r}, quiet=True)"
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() or (out / "metrics.jsonl").stat().st_size == 0:
        assert process.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "KeyboardInterrupt" in stderr, stderr
    assert (out / "checkpoint.ot").exists(), sorted(p.name for p in out.iterdir())

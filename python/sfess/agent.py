"""``sfess.Agent`` (the toolkit's trainer with a Python reward) and ``sfess.train`` (any
registered environment, as ``sfess-agent train`` runs it)."""

from __future__ import annotations

import json
import os

import torch

from . import _sfess

__all__ = ["Agent", "train", "envs"]


def _flags(options: dict) -> list[str]:
    """Keyword options as the command line's flags: ``learning_rate=0.1`` is
    ``--learning-rate=0.1``, ``quiet=True`` is ``--quiet`` (``False`` leaves it out), a list
    repeats the flag, and ``env_option={"k": "v"}`` is ``--env-option=k=v``. Each value is
    joined to its flag with ``=``, so that a negative number is read as a value."""
    flags = []
    for name, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, dict):
            flags.extend(f"{flag}={key}={v}" for key, v in value.items())
        elif isinstance(value, (list, tuple)):
            flags.extend(f"{flag}={v}" for v in value)
        elif isinstance(value, os.PathLike):
            flags.append(f"{flag}={os.fspath(value)}")
        else:
            flags.append(f"{flag}={value}")
    return flags


def _as_rewards(result) -> torch.Tensor:
    """What a reward function returned (a tensor, a NumPy array, a list of numbers) as a
    flat float64 CPU tensor."""
    rewards = result.detach() if isinstance(result, torch.Tensor) else torch.as_tensor(result)
    return rewards.to(device="cpu", dtype=torch.float64).reshape(-1)


class Agent:
    """Learns which ``k`` of ``n`` items to choose from a reward it cannot differentiate.

    ``reward(actions)`` gets a k-hot float tensor ``[R, n]`` (each row a subset; a copy, the
    function may change it) and returns ``R`` rewards, higher is better, as a tensor or a
    sequence of numbers. An exception it raises reaches the caller of ``train`` (or
    ``evaluate``) as itself, with a note naming the step.

    Options, named as ``sfess-agent train`` names them: ``estimator`` (``"sfess-vr"``; any of
    ``sfess-agent estimators`` that works on a black box), ``samples`` (S per step, 16),
    ``learning_rate`` (Adam's, 0.05), ``seed`` (0; it also seeds PyTorch's generator, as
    ``torch.manual_seed`` does), ``device`` (``"cpu"``), ``eval_every``, ``out`` (a run
    folder written after each ``train``, which ``sfess-agent show`` draws and ``report``
    reads), ``name`` (the environment's name in the records), and the estimators' own
    (``sampler``, ``normalizer``, ...).
    """

    def __init__(self, reward, n: int, k: int, **options):
        if not callable(reward):
            raise TypeError(f"reward must be callable, got {type(reward).__name__}")
        self._reward = reward
        self._agent = _sfess.Agent(self._call_reward, int(n), int(k), _flags(options))

    def _call_reward(self, actions: torch.Tensor) -> torch.Tensor:
        rewards = _as_rewards(self._reward(actions))
        if rewards.numel() != actions.shape[0]:
            raise ValueError(
                f"the reward returned {rewards.numel()} values for {actions.shape[0]} subsets; "
                "it must return one reward per subset (row of its argument)"
            )
        return rewards

    def train(self, steps: int) -> list[float]:
        """Trains ``steps`` more steps; returns the mean sampled reward of each."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        return self._agent.train(steps)

    @property
    def steps(self) -> int:
        """Steps trained so far."""
        return self._agent.steps

    def evaluate(self, phase: str = "test") -> dict:
        """The reward of the policy's most probable subset (its top-k), as ``{"reward": r}``."""
        return self._agent.evaluate(phase)

    def best_subset(self) -> list[int]:
        """The policy's most probable subset: its top-k items, sorted."""
        return self._agent.best_subset()

    def baselines(self, phase: str = "test") -> dict:
        """The score of random subsets (``{"random": r}``), to compare ``evaluate`` with."""
        return self._agent.baselines(phase)

    @property
    def records(self) -> list[dict]:
        """Every record so far: the training loss windows and the validations."""
        text = self._agent.records_json()
        return [json.loads(line) for line in text.splitlines() if line]

    def write_run_folder(self, out) -> dict:
        """Writes the run folder ``out`` now (the ``out`` option does it after each
        ``train``); returns the run's summary."""
        return json.loads(self._agent.write_run_folder(os.fspath(out)))

    def save(self, path) -> None:
        """Saves the policy and its optimiser to a checkpoint file."""
        self._agent.save(os.fspath(path))

    def load(self, path) -> None:
        """Loads a checkpoint written by ``save``."""
        self._agent.load(os.fspath(path))


def train(env: str, **options) -> dict:
    """Trains a registered environment (``sfess.envs()``), exactly as ``sfess-agent train
    --env ENV`` with the options as flags does, and returns the run's summary, with
    ``"run_folder"`` added. ``out`` chooses the run folder (default
    ``runs/ENV-ESTIMATOR-seedSEED``); Ctrl-C stops the run at its next step, resumable with
    ``resume=FOLDER``."""
    if not isinstance(env, str):
        raise TypeError(f"env must be a str, got {type(env).__name__}")
    if "json" in options:
        raise ValueError("json is not an option of sfess.train: the summary is returned")
    folder, summary = _sfess.train(["--env", env, *_flags(options)])
    summary = json.loads(summary)
    summary["run_folder"] = folder
    return summary


def envs() -> list[dict]:
    """The registered environments, each as a dict: ``name``, ``description``, ``k`` (the
    default), ``metric``, ``higher_is_better``, ``differentiable``, ``data``."""
    return _sfess.envs()

"""MAML (Finn et al. 2017) with a correct second-order meta-gradient.

A thin layer on the gradient-based family's skeleton (:mod:`jmeta.algos._gradient`): K VPG inner
steps per task over the linear feature baseline, the meta-gradient through the inner steps (the
inner surrogate is ProMP's LVC by default, see :mod:`jmeta.rl.surrogates`; ``first_order`` drops
the second derivatives), and a TRPO outer update (or PPO-clip with Adam). Meta-test: returns after
0..K inner steps on held-out tasks. See docs/algorithms/maml.md.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jmeta.algos._gradient import GradientConfig, GradientMetaLearner, GradientState
from jmeta.algos.base import Preset


@dataclasses.dataclass(frozen=True)
class MAMLConfig(GradientConfig):
    """MAML with a VPG inner loop and a TRPO (or PPO-clip) outer update."""


MAMLState = GradientState

#: Tiny settings for tests: a few episodes, a one-layer policy, 3 CG iterations.
TINY = MAMLConfig(episodes_per_task=3, hidden_sizes=(16,), eval_adapt_steps=1, eval_episodes_per_task=2, cg_iters=3)

#: The run settings of the HalfCheetah presets on a 2-core CPU (pytorch-maml-rl's H 100 and action
#: scale 10; 300 iterations x 20 tasks instead of 500 x 40).
CHEETAH_CPU_RUN: dict = {"meta_iters": 300, "meta_batch_size": 20, "env_horizon": 100, "action_scale": 10.0,
                         "eval_every": 50, "checkpoint_every": 50}

def _fig5_run(meta_iters: int) -> dict:
    """The run settings of the MAML paper's MuJoCo protocol (Fig. 5): 40 tasks per meta-batch, actions
    in [-1, 1] mapped onto the motor box (rllab's ``normalize``), 40 held-out tasks; checkpoints every 5
    iterations so that background runs resume with little lost."""
    return {"meta_iters": meta_iters, "meta_batch_size": 40, "action_scale": 1.0, "eval_every": 25,
            "checkpoint_every": 5, "chunk_size": 5, "eval_tasks": 40}


#: The MAML paper's policy and inner loop (cbfinn/maml_rl, Fig. 5): ReLU (100, 100), 20 episodes per
#: task at H 200 (the variant's horizon), fast lr 0.1, one inner step, TRPO step 0.01 (the defaults).
_FIG5_ALGO: dict = {"episodes_per_task": 20, "inner_lr": 0.1, "hidden_sizes": (100, 100), "activation": "relu",
                    "eval_episodes_per_task": 20, "eval_adapt_steps": 3}

PRESETS: dict[str, Preset] = {
    "cheetah_vel:maml_rllab": Preset(
        run=_fig5_run(475),
        algo={**_FIG5_ALGO, "episodes_per_task": 10},
        source="cbfinn/maml_rl, MAML ICML 2017 Fig. 5 (cheetah velocity): the model its test script loads "
               "(maml_examples/test_maml_cheetah.py: maml1_fbs10_mbs40_flr_0.1_mlr0.01/itr_475), trained by "
               "cluster_maml_trpo_cheetah.py: ReLU (100, 100), linear feature baseline, fast lr 0.1, TRPO step "
               "0.01, 40 tasks x 10 episodes x H 200 per phase, 475 iterations (76M env steps); 40 held-out "
               "velocities, 0-3 steps",
    ),
    "cheetah_dir:maml_rllab": Preset(
        run=_fig5_run(100),
        algo={**_FIG5_ALGO, "max_kl": 0.02},
        source="cbfinn/maml_rl, MAML ICML 2017 Fig. 5 (cheetah forward/back): the model its test script loads "
               "(maml_examples/test_maml_cheetah_direc.py: maml1_fbs20_mbs40_flr_0.1_mlr0.02/itr_100): ReLU "
               "(100, 100), linear feature baseline, fast lr 0.1, TRPO step 0.02, 40 tasks x 20 episodes x H 200 "
               "per phase, 100 iterations (32M env steps); 40 held-out tasks, 0-3 steps",
    ),
    "point_nav": Preset(
        run={"meta_iters": 100, "meta_batch_size": 20, "eval_every": 25, "checkpoint_every": 25},
        algo={"episodes_per_task": 20, "inner_lr": 0.1, "hidden_sizes": (100, 100)},
        source="cbfinn/maml_rl point navigation: (100, 100) ReLU policy, 20 episodes per task, H 100, "
               "TRPO step 0.01, inner lr 0.1; 20 tasks per batch (40 in the paper) to fit a CPU",
    ),
    "cheetah_vel": Preset(
        run=CHEETAH_CPU_RUN,
        algo={"episodes_per_task": 10, "inner_lr": 0.1, "hidden_sizes": (64, 64), "activation": "tanh",
              "eval_episodes_per_task": 10},
        source="tristandeleu/pytorch-maml-rl configs/maml/halfcheetah-vel.yaml (tanh (64, 64), H 100, 20 episodes "
               "per task, fast lr 0.1, 1 inner step, gamma 0.99, GAE lambda 1, TRPO max-kl 0.01, 10 CG "
               "iterations, damping 1e-5, backtrack 0.8; 40 tasks x 500 batches), scaled for a 2-core CPU: "
               "20 tasks x 10 episodes, 300 meta-iterations; actions normalised with scale 10 as there",
    ),
    "cheetah_dir": Preset(
        run=CHEETAH_CPU_RUN,
        algo={"episodes_per_task": 10, "inner_lr": 0.1, "hidden_sizes": (64, 64), "activation": "tanh",
              "eval_episodes_per_task": 10},
        source="tristandeleu/pytorch-maml-rl configs/maml/halfcheetah-dir.yaml (the vel config's settings: tanh "
               "(64, 64), H 100, 20 episodes per task, fast lr 0.1, TRPO max-kl 0.01; 40 tasks x 500 batches), "
               "scaled for a 2-core CPU as cheetah_vel: 20 tasks x 10 episodes, 300 meta-iterations",
    ),
}


def same_budget_as_maml(note: str, **algo_overrides) -> dict[str, Preset]:
    """MAML's presets (same run budgets) for a family member, with ``note`` prefixed to each source."""
    return {
        env: dataclasses.replace(preset, algo={**preset.algo, **algo_overrides},
                                 source=f"MAML's preset for {env} ({note}); {preset.source}")
        for env, preset in PRESETS.items()
    }


@dataclasses.dataclass(frozen=True)
class MAML(GradientMetaLearner):
    """MAML meta-learner: the gradient-based skeleton with MAML's defaults."""

    name: ClassVar[str] = "maml"
    Config: ClassVar[type] = MAMLConfig
    TINY: ClassVar[MAMLConfig] = TINY
    PRESETS: ClassVar[dict[str, Preset]] = PRESETS

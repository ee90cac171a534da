"""One DREAM trial on a pixel env, drawn: the exploration episode, then the execution episode on the
embedding decoded from it, as a GIF and a frame strip.

    python experiments/dream_trial.py --run runs/<a dream run on visual_nav or maze3d> [--task-index 0]
        [--seed 0] [--stochastic] [--out experiments/results/dream_visual_nav_trial]

Loads the run's latest checkpoint and one task of the trainer's held-out bank, runs the exploration
policy for one episode (the mode of each action unless ``--stochastic``), decodes ``z = g(tau^exp)``,
runs the execution policy on it and writes ``{out}.gif`` (every frame, 4x upscaled, with a caption
bar: episode, step, action, reward) and ``{out}_strip.png`` (up to 8 frames of each episode), plus
``{out}.json`` with the returns, the actions and the decoder's distance to the task's own embedding
before and after exploration. The frames are the agent's own observations.
"""

from __future__ import annotations

from jmeta._xla_flags import configure_cpu_flags

configure_cpu_flags()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jmeta.envs.wrappers import unwrap  # noqa: E402
from jmeta.networks.cnn import image_shape  # noqa: E402
from jmeta.networks.task_embedding import squared_distances  # noqa: E402
from jmeta.tasks import evaluation_bank  # noqa: E402
from jmeta.trainer import restore_run  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCALE = 4
CAPTION = 14


def run_trial(algo, state, task, key, deterministic: bool) -> dict:
    """Exploration then execution on one task: frames [T_valid, H, W, 3] uint8 per episode and the record."""
    shape = image_shape(algo.env)
    if shape is None:
        raise SystemExit(f"{algo.env.spec.name} has no pixel observations: use a run on visual_nav or maze3d")
    tasks = jax.tree_util.tree_map(lambda x: x[None], task)
    explore_key, exec_key = jax.random.split(key)
    params = state.params
    explore = algo.explore(params["explore"], tasks, explore_key, deterministic)
    contexts = algo.decode(params["decoder"], explore)  # [1, T + 1, E]
    execute = algo.execute(params["exec"], contexts[:, -1], tasks, exec_key, deterministic)
    f = algo.task_id(params["task_id"], algo._features(tasks))
    distances = np.asarray(squared_distances(contexts, f)[0])
    episodes = []
    for name, traj in (("exploration", explore), ("execution", execute)):
        t = jax.tree_util.tree_map(lambda x: np.asarray(x[0, 0]), traj)
        length = int(t.mask.sum())
        obs = np.concatenate([t.obs[:length], t.next_obs[length - 1:length]]) if t.next_obs is not None else t.obs[:length]
        size = math.prod(shape)
        frames = np.round(obs[:, :size] * 255).astype(np.uint8).reshape(-1, *shape)
        episodes.append({"name": name, "frames": frames, "actions": t.action[:length].tolist(),
                         "rewards": t.reward[:length].tolist(), "return": float(t.reward[:length].sum())})
    return {"episodes": episodes, "distance_before": float(distances[0]), "distance_after": float(distances[-1])}


def caption_frames(episodes: list[dict], action_names: list[str]) -> list[np.ndarray]:
    from PIL import Image, ImageDraw

    out = []
    for ep in episodes:
        for i, frame in enumerate(ep["frames"]):
            h, w, _ = frame.shape
            img = Image.new("RGB", (w * SCALE, h * SCALE + CAPTION), (255, 255, 255))
            img.paste(Image.fromarray(frame).resize((w * SCALE, h * SCALE), Image.NEAREST), (0, CAPTION))
            draw = ImageDraw.Draw(img)
            if i < len(ep["actions"]):
                text = f"{ep['name']} t={i} {action_names[ep['actions'][i]]} r={ep['rewards'][i]:+.0f}"
            else:
                text = f"{ep['name']} end, return {ep['return']:+.0f}"
            draw.text((2, 1), text, fill=(0, 0, 0))
            out.append(np.asarray(img))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a dream run directory on visual_nav or maze3d")
    parser.add_argument("--task-index", type=int, default=0, help="index in the run's held-out bank")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    parser.add_argument("--out", default=None, help="output path without extension")
    args = parser.parse_args()

    config, dist, algo, state = restore_run(args.run)
    if algo.name != "dream":
        raise SystemExit(f"{args.run} is a {algo.name} run; this script draws DREAM trials")
    bank = evaluation_bank(dist, config.eval_tasks)
    task = jax.tree_util.tree_map(lambda x: x[args.task_index], bank.tasks)
    record = run_trial(algo, state, task, jax.random.key(args.seed), not args.stochastic)
    module = sys.modules[type(unwrap(algo.env)).__module__]
    names = list(getattr(module, "ACTION_NAMES", [str(a) for a in range(algo.env.spec.action_space.n)]))
    frames = caption_frames(record["episodes"], names)
    out = args.out or os.path.join(HERE, "results", f"dream_{config.env}_trial")
    os.makedirs(os.path.dirname(out), exist_ok=True)

    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(out + ".gif", save_all=True, append_images=images[1:], duration=250, loop=0)
    strip = []
    for ep in record["episodes"]:
        n = len(ep["frames"])
        picks = sorted(set(np.linspace(0, n - 1, min(8, n)).round().astype(int).tolist()))
        start = sum(len(e["frames"]) for e in record["episodes"][: record["episodes"].index(ep)])
        strip.append(np.concatenate([frames[start + i] for i in picks], axis=1))
    width = max(s.shape[1] for s in strip)
    strip = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strip]
    Image.fromarray(np.concatenate(strip, axis=0)).save(out + "_strip.png")
    summary = {"run": args.run, "task_index": args.task_index, "seed": args.seed, "deterministic": not args.stochastic,
               "distance_before_exploration": record["distance_before"],
               "distance_after_exploration": record["distance_after"],
               "episodes": [{k: v for k, v in ep.items() if k != "frames"} for ep in record["episodes"]],
               "command": "python experiments/dream_trial.py " + " ".join(
                   f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False))}
    with open(out + ".json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps({k: v for k, v in summary.items() if k != "episodes"}, indent=2))
    print("returns:", [ep["return"] for ep in record["episodes"]], "->", out + ".gif", out + "_strip.png")


if __name__ == "__main__":
    main()

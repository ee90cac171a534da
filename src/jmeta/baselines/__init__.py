"""Non-learning reference policies for the jmeta envs: what a random, a guessing, an informed and
an oracle agent score, so that learned agents (and the tasks themselves) can be checked.

* :mod:`jmeta.baselines.toy`: bandit (greedy, Thompson, UCB1) and grid_nav (oracle, exact-posterior
  search) policies as recurrent step functions run by :func:`jmeta.rollout.rollout_trial`
  (``python -m jmeta.baselines.toy`` prints the tables quoted in the env cards).
* :mod:`jmeta.baselines.maze`: scripted maze2d / maze3d policies and their jitted episode runner.
* :mod:`jmeta.baselines.visual_nav`: scripted visual_nav policies (one reads the sign's pixels) and
  their trial runner.

The modules are not imported here; import the one you need.
"""

"""Pure-JAX toy task families: point_nav, grid_nav, bandit, tabular_mdp."""

"""Information-seeking envs observed through a pure-JAX renderer: the mazes and visual_nav."""

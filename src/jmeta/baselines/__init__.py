"""Non-learning reference policies (scripted, oracle, Bayes-optimal) for the jmeta envs."""

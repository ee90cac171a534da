"""MuJoCo task families (locomotion, MAESN), their two physics paths and their MJCF models."""

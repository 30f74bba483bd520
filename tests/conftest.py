"""Test-wide setup: JAX's persistent compilation cache, so a second run does not recompile."""

from noisejax import experiment

experiment.enable_compilation_cache()

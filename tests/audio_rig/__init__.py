"""Test helpers for the transports: a pipecat pipeline harness, signals, a private PulseAudio."""

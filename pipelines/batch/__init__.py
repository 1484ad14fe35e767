"""The batch runner: many conversations over a pool of prewarmed worker processes.

``python -m pipelines.batch`` / ``voicelive-batch`` (see :mod:`pipelines.batch.__main__`):
:mod:`.jobs` finds the conversations, :mod:`.pool` runs them over worker processes
(:mod:`.worker`), each conversation is one session (:mod:`.conversation`, turns recorded by
:mod:`.turns`), and :mod:`.summary` writes the batch's summary and latency plot.
"""

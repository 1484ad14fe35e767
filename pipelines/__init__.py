"""Pipelines: the ``voicelive-agent`` script and the pieces that assemble and run it.

:mod:`pipelines.agent` builds the agent pipeline and runs the default script, :mod:`.config`
turns flags, environment and ``.env`` into an ``AgentConfig``, :mod:`.batch` runs many
conversations; the rest runs parts of a pipeline in child processes or shows the live console.
"""

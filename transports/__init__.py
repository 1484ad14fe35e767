"""Audio transports for the Voice Live pipeline (pipecat input/output processors).

* :mod:`transports.pyaudio` — ``PyAudioInputTransport`` / ``PyAudioOutputTransport``: mic and
  speaker in PortAudio callback mode (:mod:`transports.devices` lists and chooses devices).
* :mod:`transports.wav` — ``WavInputTransport`` / ``WavOutputTransport``: a WAV paced like a
  mic, and a WAV recording of the speaker's real-time timeline.
* :mod:`transports.playback` — ``PlaybackBuffer``, what every output plays from: per response
  item, how many frames the device was handed (used to truncate interrupted answers).
* :mod:`transports.buffered_output` — the output base class shared by both speakers.
* :mod:`transports.streams` — PortAudio devices and the speaker's start/abort control thread,
  without pipecat (shared by the PyAudio transports and the audio process).
* ``--audio-process``: :mod:`transports.audio_process` (the pipeline's handle),
  :mod:`transports.audio_child` (the lean child), :mod:`transports.shm_ring` (the shared
  rings), :mod:`transports.shared_playback` (``PlaybackBuffer`` over the speaker ring).

Submodules are imported explicitly (``from transports.wav import ...``) so that using the WAV
transports never loads PortAudio, and the audio child loads no pipecat: keep this file free of
imports.
"""

"""Audio transports for the Voice Live pipeline (pipecat input/output processors).

* :mod:`transports.pyaudio` — ``PyAudioInputTransport`` / ``PyAudioOutputTransport``: mic and
  speaker in PortAudio callback mode (:mod:`transports.devices` lists and chooses devices).
* :mod:`transports.wav` — ``WavInputTransport`` / ``WavOutputTransport``: a WAV paced like a
  mic, and a WAV recording of the speaker's real-time timeline.
* :mod:`transports.playback` — ``PlaybackBuffer``, what every output plays from: per response
  item, how many frames the device was handed (used to truncate interrupted answers).
* :mod:`transports.buffered_output` — the output base class shared by both speakers.

Submodules are imported explicitly (``from transports.wav import ...``) so that using the WAV
transports never loads PortAudio.
"""

"""The default script with one extra processor, in its own process or not:

    python -m tests.support.mp_agent [--own-process] [--hang-timeout S] FACTORY [ARG...] -- FLAGS

``FACTORY`` is ``tests.support.mp_processors.<name>``; the processor goes between the logging
processors and the output, as a user's would. Everything after ``--`` goes to
``pipelines.agent.main`` (so signals, exit codes and logs are the default script's).
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    from pipelines.agent import main as agent_main
    from tests.support import mp_processors

    ours = sys.argv[1 : sys.argv.index("--")]
    parser = argparse.ArgumentParser()
    parser.add_argument("--own-process", action="store_true")
    parser.add_argument("--hang-timeout", type=float, default=5.0)
    parser.add_argument("factory")
    parser.add_argument("args", nargs="*")
    args = parser.parse_args(ours)
    factory = getattr(mp_processors, args.factory)

    def processors() -> list:
        if not args.own_process:
            return [factory(*args.args)]
        from pipelines.multiprocess import OwnProcessProcessor

        return [OwnProcessProcessor(factory, tuple(args.args), hang_timeout_s=args.hang_timeout)]

    return agent_main(sys.argv[sys.argv.index("--") + 1 :], processors=processors)


if __name__ == "__main__":
    from pipelines.processes import exit_without_finalizing

    exit_without_finalizing(main())

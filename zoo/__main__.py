"""The zoo's command: ``zoo <command> …`` (console script) or ``python -m zoo <command> …``, from any directory.

    zoo fit --config <config.yaml> | --model <method or pkg.Class> --data <dataset> [options]   (= train.py fit)
    zoo compare --methods vanilla my_pkg.MyGAN --data ring8 --seeds 3 --budget 2000steps          (= zoo.compare)
    zoo leaderboard runs/compare --metric modes                                                   (= zoo.leaderboard)
    zoo demo                                                                                      (= zoo.demo)

The method configs ship with the package (``zoo/configs/<method>/<data>.yaml``), so an installed zoo finds them
without a checkout; a plug-in is any importable LightningModule class path, importable from the directory the
command runs in.
"""

from __future__ import annotations

import sys
from typing import List, Optional

COMMANDS = ("fit", "compare", "leaderboard", "demo")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.path[0] not in ("", "."):  # a console script runs with its bin/ first: make the user's directory importable
        sys.path.insert(0, "")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("\n".join(__doc__.strip().splitlines()[:7]), file=sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}: use one of {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "fit":
        from zoo.cli import main as fit

        fit(["fit", *rest])
        return 0
    if cmd == "compare":
        from zoo.compare import main as compare

        return compare(rest)
    if cmd == "leaderboard":
        from zoo.leaderboard import main as leaderboard

        leaderboard(rest)
        return 0
    from zoo.demo import main as demo

    demo(rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The main job, `cafe-tf train` on the built-in synthetic data (what `bash .ci/main` runs).

python -m cafe_tf.main [cafe-tf train options]
"""

import sys
from collections.abc import Sequence

from cafe_tf import cli


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `cafe-tf train` with `argv` (default: the process arguments)."""
    return cli.main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())

"""`make demo`: tap-mparticle over the bundled sample drop, through Meltano, into JSON lines.

No cloud account: the `demo` environment in meltano.yml points the tap at
samples/drop (local-directory mode). Each demo run is a full refresh so it shows
the same output every time; a plain `meltano run` would be incremental.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The demo environment's target-jsonl folder (meltano.yml), emptied on each demo run;
#: the rest of output/ (a real run's dead letters) is left alone.
OUTPUT = ROOT / "output" / "demo"


def main() -> int:
    """Run the job (`make plugins` installed Meltano's plugins) and report what landed where."""
    meltano = str(Path(sys.executable).with_name("meltano"))
    env = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_ENVIRONMENT": "demo",
    }
    shutil.rmtree(OUTPUT, ignore_errors=True)
    steps = ([meltano, "run", "--full-refresh", "tap-mparticle", "target-jsonl"],)
    for step in steps:
        print("$", " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)))
        done = subprocess.run(step, cwd=ROOT, env=env, check=False)
        if done.returncode:
            print(f"demo failed: {' '.join(step[1:])} exited {done.returncode}", file=sys.stderr)
            return done.returncode
    print(f"\nOutput went to {OUTPUT}/")
    for path in sorted(OUTPUT.glob("*.jsonl")):
        with path.open("rb") as handle:
            count = sum(1 for _ in handle)
        print(f"  {path.stem:<28} {count:>7} records  ({path.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m benchmarks._profiled run NODE ...`: the service CLI under cProfile (benchmarks only).

The profile goes to $LGS_BENCH_PROFILE_OUT when the service stops (SIGTERM ends it cleanly).
"""

import cProfile
import os
import sys
import time


def main() -> None:
    out = os.environ.get("LGS_BENCH_PROFILE_OUT", "service.prof")
    profiler = cProfile.Profile(time.process_time)  # CPU time: 2 cores shared by 6 processes
    profiler.enable()
    try:
        from lunar_gs.services.cli import app

        app(args=sys.argv[1:], prog_name="lunar-gs")
    except SystemExit:
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()

"""Writer process for the SWMR tests: appends rows on command, reports when they are flushed.

Commands on stdin, one per line: ``rows N`` (append N rows, wait until flushed, print
``flushed TOTAL``), ``unflushed N`` (append N rows and do not wait), ``finish``.
"""

import sys
import time

from daqapp.storage import RunWriter


def main(path: str) -> None:
    w = RunWriter(path, procedure="tests.swmr_child",
                  parameters={"step": {"value": 1e-3, "units": "V"}},
                  metadata={"operator": "child", "sample": "Nb"},
                  columns={"dc_voltage": "V", "didv": "S", "temperature": "K", "time": "s",
                           "sweep": ""},
                  sweep_axis="dc_voltage", flush_interval=0.1)
    w.start(snapshot={"lockin": {"idn": "SR830"}})
    print("started", flush=True)
    total = 0
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd in ("rows", "unflushed"):
            for _ in range(int(arg[0])):
                w.append({"dc_voltage": total * 1e-3, "didv": float(total),
                          "temperature": 4.2, "time": float(total), "sweep": total // 50})
                total += 1
            if cmd == "rows":
                while w.rows_flushed < total:
                    time.sleep(0.01)
                print(f"flushed {total}", flush=True)
        elif cmd == "finish":
            w.finish("finished", snapshot={"lockin": {"idn": "SR830", "end": True}})
            print("finished", flush=True)
            return


if __name__ == "__main__":
    main(sys.argv[1])

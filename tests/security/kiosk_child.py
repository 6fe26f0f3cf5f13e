"""Child process for P0-3: a real kiosk taken to REVIEW; reports its pids, then waits to be killed."""

from __future__ import annotations

import json
import sys
import time

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk


def main() -> None:
    cfg = KioskConfig.model_validate({"store": {"path": sys.argv[1]}})
    kiosk = Kiosk(cfg)
    kiosk.start()
    kiosk.start_session()
    kiosk.consent(True)
    kiosk.capture()
    s = kiosk._visit
    assert s is not None and s.worker is not None
    print(json.dumps({"worker": s.worker.pid, "session": s.id, "store": str(kiosk.store.path)}), flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
